// N-API surface of the back end's switch (native/switch.ts wraps it):
//   NativeSwitch   the switch: addresses arrive as BigInt, stats leave as plain objects
//   NicPortProbe   a NIC port driven from JS, frame by frame (tests and diagnostics)
//   switchDropNames  every drop counter name, in table order
//   switchTesting  allocPages / unmapPages: page-aligned shared memory for fake guests
// Every call is coarse and synchronous; the data thread never calls into JS.
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "core/frame_eth.h"
#include "core/port_nic.h"
#include "core/status.h"
#include "core/switch_engine.h"
#include "napi/registry.h"

namespace {

using xsw::SysError;

[[noreturn]] void ThrowSys(Napi::Env env, const SysError& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  err.Set("code", Napi::String::New(env, xsw::ErrnoName(e.err())));
  throw err;
}

uint64_t BigU64(Napi::Env env, Napi::Value v, const char* name) {
  if (!v.IsBigInt()) throw Napi::TypeError::New(env, std::string("Expected ") + name + " to be a bigint");
  bool lossless = false;
  uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(env, std::string("Expected ") + name + " to fit in 64 bits");
  return r;
}

uint32_t U32(Napi::Env env, Napi::Value v, const char* name, uint32_t max) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("Expected ") + name + " to be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= max) || d != double(uint32_t(d))) {
    throw Napi::RangeError::New(env, std::string("Expected ") + name + " to be an integer from 0 to " + std::to_string(max));
  }
  return uint32_t(d);
}

Napi::Object Obj(Napi::Env env, Napi::Value v, const char* name) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, std::string("Expected ") + name + " to be an object");
  return v.As<Napi::Object>();
}

uint8_t* Ptr(Napi::Env env, Napi::Value v, const char* name) {
  return reinterpret_cast<uint8_t*>(uintptr_t(BigU64(env, v, name)));
}

Napi::Object DropsObject(Napi::Env env, const uint64_t* drops) {
  Napi::Object o = Napi::Object::New(env);
  for (uint32_t r = 1; r < xsw::kDropCount; ++r) {
    if (drops[r] != 0) o.Set(xsw::DropName(r), Napi::Number::New(env, double(drops[r])));
  }
  return o;
}

// ---------------------------------------------------------------------------

class NativeSwitch : public Napi::ObjectWrap<NativeSwitch> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeSwitch",
                       {InstanceMethod<&NativeSwitch::Start>("start"), InstanceMethod<&NativeSwitch::Stop>("stop"),
                        InstanceMethod<&NativeSwitch::AddDevice>("addDevice"),
                        InstanceMethod<&NativeSwitch::RemoveDevice>("removeDevice"),
                        InstanceMethod<&NativeSwitch::Stats>("stats"), InstanceMethod<&NativeSwitch::Events>("events"),
                        InstanceMethod<&NativeSwitch::PollOnce>("pollOnce"),
                        InstanceMethod<&NativeSwitch::NicMacSeen>("nicMacSeen"),
                        InstanceMethod<&NativeSwitch::Close>("close")});
  }

  // new NativeSwitch({ vm2vm, busy, mtu, maxDevices, port? })
  explicit NativeSwitch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeSwitch>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = Obj(env, info[0], "options");
    xsw::SwitchConfig cfg;
    cfg.vm2vm = o.Get("vm2vm").ToBoolean();
    cfg.busy_poll = o.Get("busy").ToBoolean();
    cfg.mtu = U32(env, o.Get("mtu"), "mtu", 65535);
    cfg.max_devices = U32(env, o.Get("maxDevices"), "maxDevices", 65535);
    try {
      xsw::Switch::Validate(cfg);
      std::unique_ptr<xsw::NicPort> nic;
      Napi::Value port = o.Get("port");
      if (!port.IsUndefined() && !port.IsNull()) {
        if (!port.IsString()) throw Napi::TypeError::New(env, "Expected port to be a string");
        nic = xsw::OpenNicPort(port.As<Napi::String>(), xsw::Switch::MaxFrame(cfg.mtu));
      }
      sw_ = std::make_unique<xsw::Switch>(cfg, std::move(nic));
    } catch (const SysError& e) {
      ThrowSys(env, e);
    }
    // The data thread must be joined before the environment goes away (worker exit, process exit).
    napi_add_env_cleanup_hook(env, &NativeSwitch::CleanupHook, this);
    hooked_ = true;
  }

  ~NativeSwitch() override {
    if (hooked_) napi_remove_env_cleanup_hook(Env(), &NativeSwitch::CleanupHook, this);
  }

 private:
  xsw::Switch& Sw(Napi::Env env) {
    if (!sw_) throw Napi::Error::New(env, "this Switch is closed: create a new one");
    return *sw_;
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Sw(info.Env()).Start();
    return info.Env().Undefined();
  }
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Sw(info.Env()).Stop();
    return info.Env().Undefined();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    sw_.reset();  // stops the thread, closes the port
    return info.Env().Undefined();
  }
  Napi::Value PollOnce(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      return Napi::Number::New(env, Sw(env).PollOnce());
    } catch (const std::logic_error& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  // addDevice({ domid, dev, mac: 'xx:..', vlan, tx: {addr, num}, rx: {addr, num}, flag: {addr},
  //             regions: [{ gva, len, hva, writable }] }) -> slot
  Napi::Value AddDevice(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    xsw::Switch& sw = Sw(env);
    Napi::Object s = Obj(env, info[0], "device");
    xsw::DeviceConfig c;
    c.domid = uint16_t(U32(env, s.Get("domid"), "domid", 0x7FEF));
    c.dev = U32(env, s.Get("dev"), "dev", 0xFFFFFFFFu);
    if (!s.Get("mac").IsString()) throw Napi::TypeError::New(env, "Expected mac to be a string");
    std::string mac = s.Get("mac").As<Napi::String>();
    auto parsed = xsw::ParseMac(mac);
    if (!parsed) throw Napi::TypeError::New(env, "Expected mac to look like 02:00:00:00:00:11, got '" + mac + "'");
    c.mac = *parsed;
    c.vlan = uint16_t(U32(env, s.Get("vlan"), "vlan", xsw::kMaxVlanId));
    Napi::Object tx = Obj(env, s.Get("tx"), "tx"), rx = Obj(env, s.Get("rx"), "rx");
    c.tx_ring = Ptr(env, tx.Get("addr"), "tx.addr");
    c.tx_num = U32(env, tx.Get("num"), "tx.num", xsw::kMaxRingSize);
    c.rx_ring = Ptr(env, rx.Get("addr"), "rx.addr");
    c.rx_num = U32(env, rx.Get("num"), "rx.num", xsw::kMaxRingSize);
    c.flag = Ptr(env, Obj(env, s.Get("flag"), "flag").Get("addr"), "flag.addr");
    if (!s.Get("regions").IsArray()) throw Napi::TypeError::New(env, "Expected regions to be an array");
    Napi::Array regions = s.Get("regions").As<Napi::Array>();
    for (uint32_t i = 0; i < regions.Length(); ++i) {
      Napi::Object r = Obj(env, regions.Get(i), "region");
      xsw::Region reg;
      reg.gva = BigU64(env, r.Get("gva"), "region.gva");
      if (!r.Get("len").IsNumber()) throw Napi::TypeError::New(env, "Expected region.len to be a number");
      double len = r.Get("len").As<Napi::Number>().DoubleValue();
      if (!(len > 0) || len != double(uint64_t(len)) || len > double(1ull << 48)) {
        throw Napi::RangeError::New(env, "Expected region.len to be a positive integer");
      }
      reg.len = uint64_t(len);
      reg.hva = Ptr(env, r.Get("hva"), "region.hva");
      reg.writable = r.Get("writable").ToBoolean();
      c.regions.push_back(reg);
    }
    try {
      return Napi::Number::New(env, sw.AddDevice(c));
    } catch (const SysError& e) {
      ThrowSys(env, e);
    }
  }

  Napi::Value RemoveDevice(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    xsw::Switch& sw = Sw(env);
    try {
      sw.RemoveDevice(U32(env, info[0], "slot", 0xFFFF));
    } catch (const SysError& e) {
      ThrowSys(env, e);
    }
    return env.Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    xsw::Switch& sw = Sw(env);
    Napi::Array devices = Napi::Array::New(env);
    uint32_t n = 0;
    for (const auto& s : sw.Stats()) {
      Napi::Object d = Napi::Object::New(env);
      d.Set("slot", s.slot);
      d.Set("domid", double(s.domid));
      d.Set("dev", double(s.dev));
      d.Set("mac", xsw::FormatMac(s.mac));
      d.Set("vlan", double(s.vlan));
      d.Set("state", xsw::DeviceStateName(s.state));
      d.Set("tx_total", double(s.tx_total));
      d.Set("tx_dropped", double(s.tx_dropped));
      d.Set("rx_total", double(s.rx_total));
      d.Set("rx_dropped", double(s.rx_dropped));
      d.Set("tx_bytes", double(s.tx_bytes));
      d.Set("rx_bytes", double(s.rx_bytes));
      d.Set("drops", DropsObject(env, s.drops));
      devices.Set(n++, d);
    }
    xsw::NicStatsSnapshot ns = sw.NicStats();
    Napi::Object nic = Napi::Object::New(env);
    nic.Set("rx", double(ns.rx));
    nic.Set("tx", double(ns.tx));
    nic.Set("dropped", double(ns.dropped));
    nic.Set("drops", DropsObject(env, ns.drops));
    Napi::Object out = Napi::Object::New(env);
    out.Set("devices", devices);
    out.Set("nic", nic);
    return out;
  }

  Napi::Value Events(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    uint32_t n = 0;
    for (const auto& e : Sw(env).DrainEvents()) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("slot", e.slot);
      o.Set("domid", double(e.domid));
      o.Set("dev", double(e.dev));
      o.Set("kind", e.kind == xsw::FaultKind::kDead ? "dead" : "quarantine");
      o.Set("reason", e.reason);
      out.Set(n++, o);
    }
    return out;
  }

  // nicMacSeen('xx:..', maxAgeS) -> whether a frame from the NIC had this source MAC lately
  Napi::Value NicMacSeen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "Expected mac to be a string");
    std::string mac = info[0].As<Napi::String>();
    auto parsed = xsw::ParseMac(mac);
    if (!parsed) throw Napi::TypeError::New(env, "Expected mac to look like 02:00:00:00:00:11, got '" + mac + "'");
    uint32_t max_age = U32(env, info[1], "maxAgeS", 0xFFFFFFFFu);
    return Napi::Boolean::New(env, Sw(env).NicMacSeen(*parsed, max_age));
  }

  static void CleanupHook(void* self) {
    auto* me = static_cast<NativeSwitch*>(self);
    me->hooked_ = false;
    me->sw_.reset();
  }

  std::unique_ptr<xsw::Switch> sw_;
  bool hooked_ = false;
};

// ---------------------------------------------------------------------------

class NicPortProbe : public Napi::ObjectWrap<NicPortProbe> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NicPortProbe",
                       {InstanceMethod<&NicPortProbe::Send>("send"), InstanceMethod<&NicPortProbe::Recv>("recv"),
                        InstanceMethod<&NicPortProbe::Close>("close")});
  }

  // new NicPortProbe(spec, mtu)
  explicit NicPortProbe(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NicPortProbe>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "Expected port to be a string");
    uint32_t mtu = U32(env, info[1], "mtu", 9000);
    try {
      port_ = xsw::OpenNicPort(info[0].As<Napi::String>(), xsw::Switch::MaxFrame(mtu));
    } catch (const SysError& e) {
      ThrowSys(env, e);
    }
  }

 private:
  xsw::NicPort& Port(Napi::Env env) {
    if (!port_) throw Napi::Error::New(env, "this port is closed");
    return *port_;
  }
  // send(frame: Buffer) -> boolean (false: the transmit queue was full or the port refused it)
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsBuffer()) throw Napi::TypeError::New(env, "Expected frame to be a Buffer");
    auto frame = info[0].As<Napi::Buffer<uint8_t>>();
    xsw::NicPort& port = Port(env);
    if (frame.Length() > port.TxCapacity()) throw Napi::RangeError::New(env, "frame is longer than the port carries");
    uint8_t* buf = port.TxReserve();
    if (!buf) return Napi::Boolean::New(env, false);
    std::memcpy(buf, frame.Data(), frame.Length());
    bool ok = port.TxCommit(uint32_t(frame.Length()));
    port.TxFlush();
    return Napi::Boolean::New(env, ok);
  }
  // recv() -> [{ data: Buffer, vlan: number | null }]: what has arrived, without waiting
  Napi::Value Recv(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    xsw::NicPort& port = Port(env);
    xsw::NicRxFrame frames[xsw::kBurst];
    uint32_t n = port.RxBurst(frames, xsw::kBurst);
    Napi::Array out = Napi::Array::New(env, n);
    for (uint32_t i = 0; i < n; ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("data", Napi::Buffer<uint8_t>::Copy(env, frames[i].data, frames[i].len));
      o.Set("vlan", frames[i].vlan_valid ? Napi::Value(Napi::Number::New(env, frames[i].vlan_tci & xsw::kVlanIdMask))
                                          : env.Null());
      out.Set(i, o);
    }
    port.RxRelease();
    return out;
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    port_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<xsw::NicPort> port_;
};

// ---------------------------------------------------------------------------
// Test memory: page-aligned anonymous shared mappings, as a guest's granted
// pages would be. unmapPages detaches the buffer first, so JS cannot touch
// the bytes afterwards.

Napi::Value AllocPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t pages = U32(env, info[0], "pages", 1u << 18);
  if (pages == 0) throw Napi::RangeError::New(env, "Expected pages to be at least 1");
  size_t bytes = size_t(pages) * xsw::kPageSize;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw Napi::Error::New(env, std::string("cannot map test pages: ") + std::strerror(errno));
  Napi::Object out = Napi::Object::New(env);
  out.Set("buffer", Napi::ArrayBuffer::New(env, p, bytes));  // no finalizer: unmapPages or process exit frees it
  out.Set("addr", Napi::BigInt::New(env, uint64_t(uintptr_t(p))));
  return out;
}

Napi::Value UnmapPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "Expected buffer to be an ArrayBuffer from allocPages");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  void* p = ab.Data();
  size_t bytes = ab.ByteLength();
  if (p == nullptr || bytes == 0) throw Napi::Error::New(env, "these pages are already unmapped");
  ab.Detach();
  munmap(p, bytes);
  return env.Undefined();
}

void InitSwitch(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeSwitch", NativeSwitch::Define(env));
  exports.Set("NicPortProbe", NicPortProbe::Define(env));
  Napi::Array names = Napi::Array::New(env, xsw::kDropCount);
  for (uint32_t r = 0; r < xsw::kDropCount; ++r) names.Set(r, xsw::DropName(r));
  exports.Set("switchDropNames", names);
  Napi::Object testing = Napi::Object::New(env);
  testing.Set("allocPages", Napi::Function::New(env, AllocPages, "allocPages"));
  testing.Set("unmapPages", Napi::Function::New(env, UnmapPages, "unmapPages"));
  exports.Set("switchTesting", testing);
}

}  // namespace

XSW_NAPI_EXPORTS(switch, InitSwitch);
