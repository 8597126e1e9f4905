// addon.switch: the back end's switch (native/switch.ts wraps it):
//   NativeSwitch   the switch: addresses arrive as BigInt, stats leave as plain objects
//   NicPortProbe   a NIC port driven from JS, frame by frame (tests and diagnostics)
//   dropNames      every drop counter name, in table order (switch/drops.h)
// Every call is coarse and synchronous; the data thread never calls into JS.
#include <algorithm>
#include <cstring>
#include <vector>
#include <memory>
#include <string>

#include "common/errors.h"
#include "grant/evtchn.h"
#include "common/ethernet.h"
#include "napi/convert.h"
#include "napi/registry.h"
#include "napi/switch_access.h"
#include "switch/nic_port.h"
#include "switch/switch.h"

namespace {

using xsw::napi::Guard;
using xsw::napi::ReadAddress;
using xsw::napi::ReadObject;
using xsw::napi::ReadU32;

Napi::Object DropsObject(Napi::Env env, const uint64_t* drops) {
  Napi::Object o = Napi::Object::New(env);
  for (uint32_t r = 1; r < xsw::kDropCount; ++r) {
    if (drops[r] != 0) o.Set(xsw::DropName(r), Napi::Number::New(env, double(drops[r])));
  }
  return o;
}

// The switch's view of this process's event channels (switch.h's DeviceEvents).
class SwitchEvents : public xsw::DeviceEvents {
 public:
  explicit SwitchEvents(std::unique_ptr<xsw::EventChannels> e) : e_(std::move(e)) {}
  int fd() const override { return e_->fd(); }
  bool Notify(uint32_t port) override { return e_->Notify(port); }
  uint32_t Pending(uint32_t* ports, uint32_t max) override { return e_->Pending(ports, max); }
  void Unmask(uint32_t port) override { e_->Unmask(port); }
  xsw::EventChannels& channels() { return *e_; }

 private:
  std::unique_ptr<xsw::EventChannels> e_;
};

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
                        InstanceMethod<&NativeSwitch::CaptureStart>("captureStart"),
                        InstanceMethod<&NativeSwitch::CaptureStop>("captureStop"),
                        InstanceMethod<&NativeSwitch::CaptureRead>("captureRead"),
                        InstanceMethod<&NativeSwitch::Loops>("loops"),
                        InstanceMethod<&NativeSwitch::Wakeups>("wakeups"),
                        InstanceMethod<&NativeSwitch::Close>("close")});
  }

  // new NativeSwitch({ vm2vm, busy, interrupt?, mtu, maxDevices, port?, events?: { platform, simDir? } })
  // events: open this platform's event channels, which devices' guest ports
  // (addDevice's evtchn) are bound in; if they cannot be opened every device
  // stays polled and wakeups().error says why.
  explicit NativeSwitch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeSwitch>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = ReadObject(info[0], "options");
    xsw::SwitchConfig cfg;
    cfg.vm2vm = o.Get("vm2vm").ToBoolean();
    cfg.busy_poll = o.Get("busy").ToBoolean();
    cfg.interrupt = o.Has("interrupt") && o.Get("interrupt").ToBoolean();
    cfg.mtu = ReadU32(o.Get("mtu"), "mtu", 0, 65535);
    cfg.max_devices = ReadU32(o.Get("maxDevices"), "maxDevices", 0, 65535);
    if (o.Has("cores") && !xsw::napi::IsAbsent(o.Get("cores"))) {
      Napi::Array cores = xsw::napi::ReadArray(o.Get("cores"), "cores");
      for (uint32_t i = 0; i < cores.Length(); ++i) cfg.cores.push_back(int(ReadU32(cores.Get(i), "cores[i]", 0, 65535)));
    }
    Napi::Value port = o.Get("port");
    const std::string port_spec = xsw::napi::IsAbsent(port) ? "" : xsw::napi::ReadString(port, "port");
    sw_ = Guard(env, [&] {
      xsw::Switch::Validate(cfg);
      std::unique_ptr<xsw::NicPort> nic;
      if (!port_spec.empty()) nic = xsw::OpenNicPort(port_spec, xsw::Switch::MaxFrame(cfg.mtu));
      return std::make_unique<xsw::Switch>(cfg, std::move(nic));
    });
    Napi::Value ev = o.Get("events");
    if (!xsw::napi::IsAbsent(ev)) {
      Napi::Object eo = ReadObject(ev, "events");
      xsw::GrantOptions g;
      g.platform = xsw::napi::OptString(eo, "platform", "auto");
      g.sim_dir = xsw::napi::OptString(eo, "simDir", "");
      try {
        events_ = std::make_unique<SwitchEvents>(xsw::OpenEventChannels(g));
        sw_->SetEvents(events_.get());
      } catch (const std::exception& e) {
        events_error_ = e.what();
      }
    }
    bound_.assign(cfg.max_devices, 0);
    // The data thread must be joined before the environment goes away (worker exit, process exit).
    napi_add_env_cleanup_hook(env, &NativeSwitch::CleanupHook, this);
    hooked_ = true;
    napi_type_tag_object(env, info.This(), &xsw::napi::kSwitchTypeTag);
  }

  // For other binding files (switch_access.h): the switch, or null once closed.
  xsw::Switch* Raw() { return sw_.get(); }

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
    events_.reset();  // closing them unbinds every port
    return info.Env().Undefined();
  }

  // wakeups() -> { events: 'sim' | 'xen' | null, error?: string, sleeps: number, bound: [slot...] }
  Napi::Value Wakeups(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("events", events_ ? Napi::Value(Napi::String::New(env, events_->channels().kind())) : env.Null());
    if (!events_error_.empty()) o.Set("error", events_error_);
    o.Set("sleeps", double(Sw(env).Sleeps()));
    Napi::Array bound = Napi::Array::New(env);
    uint32_t n = 0;
    for (uint32_t i = 0; i < bound_.size(); ++i) {
      if (bound_[i] != 0) bound.Set(n++, i);
    }
    o.Set("bound", bound);
    return o;
  }
  Napi::Value PollOnce(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      if (info.Length() > 0 && !xsw::napi::IsAbsent(info[0])) {
        return Napi::Number::New(env, Sw(env).PollOnce(ReadU32(info[0], "thread", 0, xsw::kMaxDataThreads - 1)));
      }
      return Napi::Number::New(env, Sw(env).PollOnce());
    } catch (const std::logic_error& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  // addDevice({ domid, dev, mac: 'xx:..', vlan, tx: {addr, num, mapLen}, rx: {addr, num, mapLen},
  //             flag: {addr, mapLen}, regions: [{ gva, len, hva, mapLen, writable }] }) -> slot
  // mapLen: the bytes mapped at addr / hva, as the mapper reported them; the
  // switch refuses a ring, flag or region whose mapping is shorter than its layout.
  Napi::Value AddDevice(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    xsw::Switch& sw = Sw(env);
    Napi::Object s = ReadObject(info[0], "device");
    xsw::DeviceConfig c;
    c.domid = uint16_t(ReadU32(s.Get("domid"), "domid", 0, 0x7FEF));
    c.dev = ReadU32(s.Get("dev"), "dev");
    const std::string mac = xsw::napi::ReadString(s.Get("mac"), "mac");
    auto parsed = xsw::ParseMac(mac);
    if (!parsed) throw Napi::TypeError::New(env, "Expected mac to look like 02:00:00:00:00:11, got '" + mac + "'");
    c.mac = *parsed;
    c.vlan = uint16_t(ReadU32(s.Get("vlan"), "vlan", 0, xsw::kMaxVlanId));
    // network: optional, 1..4094 (absent or null: none, the guide's one switching domain).
    Napi::Value network = s.Get("network");
    if (!network.IsUndefined() && !network.IsNull()) c.network = uint16_t(ReadU32(network, "network", 1, 4094));
    Napi::Object tx = ReadObject(s.Get("tx"), "tx"), rx = ReadObject(s.Get("rx"), "rx");
    c.tx_ring = ReadAddress(tx.Get("addr"), "tx.addr");
    c.tx_num = ReadU32(tx.Get("num"), "tx.num", 0, xsw::kMaxRingSize);
    c.tx_ring_len = xsw::napi::ReadUint(tx.Get("mapLen"), "tx.mapLen");
    c.rx_ring = ReadAddress(rx.Get("addr"), "rx.addr");
    c.rx_num = ReadU32(rx.Get("num"), "rx.num", 0, xsw::kMaxRingSize);
    c.rx_ring_len = xsw::napi::ReadUint(rx.Get("mapLen"), "rx.mapLen");
    Napi::Object flag = ReadObject(s.Get("flag"), "flag");
    c.flag = ReadAddress(flag.Get("addr"), "flag.addr");
    c.flag_len = xsw::napi::ReadUint(flag.Get("mapLen"), "flag.mapLen");
    Napi::Array regions = xsw::napi::ReadArray(s.Get("regions"), "regions");
    for (uint32_t i = 0; i < regions.Length(); ++i) {
      Napi::Object r = ReadObject(regions.Get(i), "region");
      xsw::Region reg;
      reg.gva = xsw::napi::ReadBigU64(r.Get("gva"), "region.gva");
      reg.len = xsw::napi::ReadUint(r.Get("len"), "region.len", 1, uint64_t(1) << 48);
      reg.hva = ReadAddress(r.Get("hva"), "region.hva");
      reg.map_len = xsw::napi::ReadUint(r.Get("mapLen"), "region.mapLen");
      reg.writable = r.Get("writable").ToBoolean();
      c.regions.push_back(reg);
    }
    // evtchn: optional, the guest's unbound event channel port (XenStore's
    // V_event_channel). Bound here; a port that cannot be bound leaves the
    // device polled (wakeups().bound tells), it is no reason to refuse it.
    Napi::Value evtchn = s.Get("evtchn");
    if (events_ && !xsw::napi::IsAbsent(evtchn)) {
      const uint32_t remote = ReadU32(evtchn, "evtchn", 1, UINT32_MAX);
      try {
        c.evtchn = events_->channels().BindInterdomain(c.domid, remote);
      } catch (const std::exception&) {
        c.evtchn = 0;
      }
    }
    uint32_t slot;
    try {
      slot = Guard(env, [&] { return sw.AddDevice(c); });
    } catch (...) {
      if (c.evtchn != 0) events_->channels().Unbind(c.evtchn);
      throw;
    }
    if (c.evtchn != 0) {
      bound_[slot] = c.evtchn;
      events_->channels().Notify(c.evtchn);  // "bound": the guest may now sleep without a timeout
    }
    return Napi::Number::New(env, slot);
  }

  Napi::Value RemoveDevice(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    xsw::Switch& sw = Sw(env);
    const uint32_t slot = ReadU32(info[0], "slot", 0, 0xFFFF);
    Guard(env, [&] { sw.RemoveDevice(slot); });
    if (slot < bound_.size() && bound_[slot] != 0) {
      if (events_) events_->channels().Unbind(bound_[slot]);
      bound_[slot] = 0;
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
      d.Set("network", s.network == xsw::kNoNetwork ? env.Null() : Napi::Value(Napi::Number::New(env, s.network)));
      d.Set("thread", double(s.thread));
      devices.Set(n++, d);
    }
    xsw::NicStatsSnapshot ns = sw.NicStats();
    Napi::Object nic = Napi::Object::New(env);
    nic.Set("rx", double(ns.rx));
    nic.Set("tx", double(ns.tx));
    nic.Set("dropped", double(ns.dropped));
    nic.Set("drops", DropsObject(env, ns.drops));
    Napi::Array vlans = Napi::Array::New(env);
    uint32_t nv = 0;
    for (const auto& v : sw.NicVlanStats()) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("vlan", double(v.vlan));
      o.Set("rx", double(v.rx));
      o.Set("tx", double(v.tx));
      vlans.Set(nv++, o);
    }
    nic.Set("vlans", vlans);
    Napi::Object out = Napi::Object::New(env);
    out.Set("devices", devices);
    out.Set("nic", nic);
    Napi::Array threads = Napi::Array::New(env);
    uint32_t nt = 0;
    for (const auto& t : sw.ThreadStats()) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("thread", double(t.index));
      o.Set("cpu", t.cpu < 0 ? env.Null() : Napi::Value(Napi::Number::New(env, t.cpu)));
      o.Set("devices", double(t.devices));
      o.Set("loops", double(t.loops));
      o.Set("sleeps", double(t.sleeps));
      o.Set("handed_out", double(t.handed_out));
      o.Set("handed_in", double(t.handed_in));
      o.Set("handoff_dropped", double(t.handoff_dropped));
      o.Set("processing_cycles", double(t.processing_cycles));
      o.Set("idle_cycles", double(t.idle_cycles));
      threads.Set(nt++, o);
    }
    out.Set("threads", threads);
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
    const std::string mac = xsw::napi::ReadString(info[0], "mac");
    auto parsed = xsw::ParseMac(mac);
    if (!parsed) throw Napi::TypeError::New(env, "Expected mac to look like 02:00:00:00:00:11, got '" + mac + "'");
    uint32_t max_age = ReadU32(info[1], "maxAgeS");
    return Napi::Boolean::New(env, Sw(env).NicMacSeen(*parsed, max_age));
  }

  // captureStart(ports: number[] (slots; -1 = the NIC), snaplen, slots) -> id
  Napi::Value CaptureStart(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    xsw::Switch& sw = Sw(env);
    Napi::Array list = xsw::napi::ReadArray(info[0], "ports");
    std::vector<uint32_t> ports;
    for (uint32_t i = 0; i < list.Length(); ++i) {
      Napi::Value v = list.Get(i);
      if (v.IsNumber() && v.As<Napi::Number>().Int32Value() == -1) {
        ports.push_back(xsw::Switch::kCaptureNic);
      } else {
        ports.push_back(ReadU32(v, "port", 0, 0xFFFF));
      }
    }
    const uint32_t snaplen = ReadU32(info[1], "snaplen", 14, 262144);
    const uint32_t slots = ReadU32(info[2], "slots", 2, 1u << 20);
    return Napi::Number::New(env, Guard(env, [&] { return sw.CaptureStart(ports, snaplen, slots); }));
  }
  Napi::Value CaptureStop(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    xsw::Switch& sw = Sw(env);
    const uint32_t id = ReadU32(info[0], "id");
    Guard(env, [&] { sw.CaptureStop(id); });
    return env.Undefined();
  }
  // captureRead(id, maxBytes, maxRecords) -> { blocks: Buffer (pcapng EPBs), records, captured, dropped }
  Napi::Value CaptureRead(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    xsw::CaptureRing* ring = Sw(env).Capture(ReadU32(info[0], "id"));
    if (!ring) throw Napi::Error::New(env, "no such capture session");
    size_t max_bytes = std::max<size_t>(ReadU32(info[1], "maxBytes", 1, 64u << 20), ring->MaxBlockLen());
    const uint32_t max_records = ReadU32(info[2], "maxRecords", 0, 0xFFFFFFFF);
    std::vector<uint8_t> buf(max_bytes);
    uint32_t records = 0;
    const size_t n = ring->DrainPcapng(buf.data(), buf.size(), max_records, &records);
    Napi::Object out = Napi::Object::New(env);
    out.Set("blocks", Napi::Buffer<uint8_t>::Copy(env, buf.data(), n));
    out.Set("records", double(records));
    out.Set("captured", double(ring->captured()));
    out.Set("dropped", double(ring->dropped()));
    return out;
  }
  Napi::Value Loops(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(Sw(info.Env()).Loops()));
  }

  static void CleanupHook(void* self) {
    auto* me = static_cast<NativeSwitch*>(self);
    me->hooked_ = false;
    me->sw_.reset();
  }

  std::unique_ptr<SwitchEvents> events_;  // declared first: outlives the switch's thread
  std::string events_error_;
  std::vector<uint32_t> bound_;  // per slot: the local port bound for its device, 0: none
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
    const std::string spec = xsw::napi::ReadString(info[0], "port");
    const uint32_t mtu = ReadU32(info[1], "mtu", 0, 9000);
    port_ = Guard(env, [&] { return xsw::OpenNicPort(spec, xsw::Switch::MaxFrame(mtu)); });
  }

 private:
  xsw::NicPort& Port(Napi::Env env) {
    if (!port_) throw Napi::Error::New(env, "this port is closed");
    return *port_;
  }
  // send(frame: Buffer) -> boolean (false: the transmit queue was full or the port refused it)
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto frame = xsw::napi::ReadBuffer(info[0], "frame");
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

void InitSwitch(Napi::Env env, Napi::Object group) {
  group.Set("NativeSwitch", NativeSwitch::Define(env));
  group.Set("NicPortProbe", NicPortProbe::Define(env));
  Napi::Array names = Napi::Array::New(env, xsw::kDropCount);
  for (uint32_t r = 0; r < xsw::kDropCount; ++r) names.Set(r, xsw::DropName(r));
  group.Set("dropNames", names);
}

}  // namespace

namespace xsw::napi {

const napi_type_tag kSwitchTypeTag = {0x7873775f73776974ull, 0x63685f6e6174ull};

xsw::Switch* SwitchOf(const Napi::Value& v, const char* name) {
  Napi::Env env = v.Env();
  bool tagged = false;
  if (v.IsObject()) napi_check_object_type_tag(env, v, &kSwitchTypeTag, &tagged);
  if (!tagged) throw Napi::TypeError::New(env, std::string("Expected ") + name + " to be a NativeSwitch");
  xsw::Switch* sw = NativeSwitch::Unwrap(v.As<Napi::Object>())->Raw();
  if (sw == nullptr) throw Napi::Error::New(env, std::string(name) + " is closed: create a new one");
  return sw;
}

}  // namespace xsw::napi

XSW_NAPI_EXPORTS(switch, InitSwitch);
