// addon.front: the front end, on one FrontDevice per device (pmd/device.h):
// the granted mempool, devices (rings, flag, PMD), their engine thread, and a
// batch API for JS applications. Packets cross into JS only through
// rxBurst/txBurst, one call per batch.
//
//   new FrontPool({platform, simDir, domid, nbMbuf, backendDomid})
//     .info() -> {va, gref, pages, nbMbuf, unassigned, platform}    .close()
//   new FrontDevice(pool, {mac: Buffer(6), ringSize, nbBufs, maxPktLen, backendDomid, events?})
//     .info() -> {txGref, rxGref, flagGref, rxPosted, rxSegs, maxPktLen, platform, evtchn?}
//     .setLive(bool)  .flag() -> number
//     .rxBurst(max) -> Buffer[]   .txBurst(Buffer[]) -> number
//     .start({mode, poll, burst, peer: Buffer(6), txpkts, rate, count, verify, tap})  .stop()  .running()
//     .stats() -> {rx_packets, ...}   .close()
#include <cstring>
#include <memory>
#include <set>
#include <string>

#include "common/errors.h"
#include "grant/provider.h"
#include "napi/convert.h"
#include "napi/registry.h"
#include "pmd/device.h"
#include "pmd/engine.h"
#include "pmd/granted_pool.h"

namespace {

using namespace xsw;

// One grant provider per process, never destroyed: at exit an engine thread
// may still be polling the memory it maps (the platform cleans up after us).
std::shared_ptr<GrantProvider>& Provider() {
  static auto* provider = new std::shared_ptr<GrantProvider>();
  return *provider;
}

using napi::Guard;
using napi::OptString;
using napi::OptU32;

[[noreturn]] void ThrowSys(Napi::Env env, int err, const std::string& message) {
  throw napi::SysErrorToJs(env, SysError(err, message));
}

// A 6-byte Buffer at o[key] into out; absent is an error only when required.
void Mac(const Napi::Object& o, const char* key, uint8_t out[6], bool required) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && !required) return;
  if (!v.IsBuffer() || v.As<Napi::Buffer<uint8_t>>().Length() != 6) {
    throw Napi::TypeError::New(o.Env(), std::string("Expected ") + key + " to be a 6-byte Buffer");
  }
  std::memcpy(out, v.As<Napi::Buffer<uint8_t>>().Data(), 6);
}

Napi::Object Options(const Napi::CallbackInfo& info, size_t i) {
  return napi::ReadObject(info.Length() > i ? info[i] : info.Env().Undefined(), "options");
}

// ---------------------------------------------------------------------------

class PoolWrap : public Napi::ObjectWrap<PoolWrap> {
 public:
  static Napi::FunctionReference* ctor;
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FrontPool",
                       {InstanceMethod("info", &PoolWrap::Info), InstanceMethod("close", &PoolWrap::Close)});
  }
  explicit PoolWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PoolWrap>(info) {
    Napi::Object o = Options(info, 0);
    GrantOptions g;
    g.platform = OptString(o, "platform", "auto");
    g.sim_dir = OptString(o, "simDir", "");
    g.self_domid = domid_t(OptU32(o, "domid", 0, 0, kDomidFirstReserved - 1));
    const uint32_t nb_mbuf = OptU32(o, "nbMbuf", 8192);
    const domid_t backend = domid_t(OptU32(o, "backendDomid", 0, 0, kDomidFirstReserved - 1));
    pool_ = Guard(info.Env(), [&] {
      if (!Provider()) Provider() = std::shared_ptr<GrantProvider>(OpenGrantProvider(g));
      return std::make_shared<FrontPool>(Provider(), nb_mbuf, backend);
    });
    options_ = g;
  }
  const GrantOptions& options() const { return options_; }
  std::shared_ptr<FrontPool> pool(Napi::Env env) {
    if (!pool_) ThrowSys(env, EBADF, "the mempool is closed: open a new one");
    return pool_;
  }

 private:
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto p = pool(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("va", p->VaKey());
    o.Set("gref", p->GrefKey());
    o.Set("pages", double(p->data_pages()));
    o.Set("nbMbuf", double(p->layout().nb_mbuf));
    o.Set("unassigned", double(p->unassigned()));
    o.Set("platform", Provider() ? Provider()->kind() : "none");
    return o;
  }
  // Devices keep the pool alive until they close too.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    pool_.reset();
    return info.Env().Undefined();
  }
  std::shared_ptr<FrontPool> pool_;
  GrantOptions options_;
};
Napi::FunctionReference* PoolWrap::ctor = nullptr;

// ---------------------------------------------------------------------------

class DeviceWrap;
std::set<DeviceWrap*>& LiveDevices() {
  static auto* devices = new std::set<DeviceWrap*>();
  return *devices;
}

class DeviceWrap : public Napi::ObjectWrap<DeviceWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FrontDevice",
                       {InstanceMethod("info", &DeviceWrap::Info), InstanceMethod("setLive", &DeviceWrap::SetLive),
                        InstanceMethod("flag", &DeviceWrap::Flag), InstanceMethod("rxBurst", &DeviceWrap::RxBurst),
                        InstanceMethod("txBurst", &DeviceWrap::TxBurst), InstanceMethod("start", &DeviceWrap::Start),
                        InstanceMethod("stop", &DeviceWrap::Stop), InstanceMethod("running", &DeviceWrap::Running),
                        InstanceMethod("stats", &DeviceWrap::Stats), InstanceMethod("close", &DeviceWrap::Close)});
  }

  explicit DeviceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(PoolWrap::ctor->Value())) {
      throw Napi::TypeError::New(env, "Expected a FrontPool as the first argument");
    }
    PoolWrap* pool_wrap = PoolWrap::Unwrap(info[0].As<Napi::Object>());
    std::shared_ptr<FrontPool> pool = pool_wrap->pool(env);
    Napi::Object o = Options(info, 1);
    FrontDeviceConfig c;
    Mac(o, "mac", c.mac, true);
    c.ring_size = OptU32(o, "ringSize", kDefaultRingSize);
    c.nb_bufs = OptU32(o, "nbBufs", 0);
    c.max_pkt_len = OptU32(o, "maxPktLen", 0);
    const domid_t backend = domid_t(OptU32(o, "backendDomid", 0, 0, kDomidFirstReserved - 1));
    device_ = Guard(env, [&] { return FrontDevice::OpenGranted(std::move(pool), c, backend); });
    // events (default true): offer the back end an event channel; false: a polled device, as DPDK's.
    Napi::Value events = o.Get("events");
    if (napi::IsAbsent(events) || events.ToBoolean().Value()) device_->OpenEvents(pool_wrap->options(), backend);
    LiveDevices().insert(this);
  }

  ~DeviceWrap() override { Shutdown(); }

  // Stops the engine, clears the flag, releases rings and TAP. Idempotent.
  void Shutdown() {
    device_.reset();
    LiveDevices().erase(this);
  }

 private:
  FrontDevice& device(Napi::Env env) {
    if (!device_) ThrowSys(env, EBADF, "the device is closed: open a new one");
    return *device_;
  }
  void IdleOrThrow(Napi::Env env, const char* what) {
    if (device(env).engine_running()) {
      ThrowSys(env, EBUSY, std::string("cannot ") + what + " while the device's engine runs: stop it first");
    }
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    FrontDevice& d = device(env);
    const FrontRings& rings = *d.granted_rings();
    Napi::Object o = Napi::Object::New(env);
    o.Set("txGref", rings.TxGrefKey());
    o.Set("rxGref", rings.RxGrefKey());
    o.Set("flagGref", double(rings.flag_gref()));
    o.Set("rxPosted", double(d.rx_posted()));
    o.Set("rxSegs", double(d.port().rx_segs()));
    o.Set("maxPktLen", double(d.port().max_pkt_len()));
    o.Set("platform", Provider()->kind());
    if (d.evtchn() != 0) o.Set("evtchn", double(d.evtchn()));
    return o;
  }

  // setLive(true) also fills the RX ring first, so the device is announced
  // with buffers posted (the original's dev_start order).
  Napi::Value SetLive(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    device(env).SetLive(info.Length() > 0 && info[0].ToBoolean().Value());
    return env.Undefined();
  }

  Napi::Value Flag(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), device(info.Env()).flag());
  }

  // rxBurst(max = 32) -> Buffer[]
  Napi::Value RxBurst(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    IdleOrThrow(env, "receive from JS");
    FrontPort& p = device(env).port();
    const uint32_t max = napi::IsAbsent(info[0]) ? kBurst : napi::ReadU32(info[0], "max");
    uint32_t pkts[kBurst];
    const uint32_t n = p.RxBurst(pkts, max < kBurst ? max : kBurst);
    Napi::Array out = Napi::Array::New(env, n);
    for (uint32_t i = 0; i < n; i++) {
      Napi::Buffer<uint8_t> b = Napi::Buffer<uint8_t>::New(env, p.PktLen(pkts[i]));
      p.CopyOut(pkts[i], b.Data(), uint32_t(b.Length()));
      p.Free(pkts[i]);
      out.Set(i, b);
    }
    return out;
  }

  // txBurst(frames: Buffer[]) -> frames the TX ring took
  Napi::Value TxBurst(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    IdleOrThrow(env, "send from JS");
    FrontPort& p = device(env).port();
    if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "Expected an array of Buffers");
    Napi::Array frames = info[0].As<Napi::Array>();
    if (frames.Length() > kBurst) {
      ThrowSys(env, EINVAL, "txBurst takes at most 32 frames per call: split the batch");
    }
    const uint32_t n = frames.Length();
    for (uint32_t i = 0; i < n; i++) {
      Napi::Value v = frames.Get(i);
      if (!v.IsBuffer()) throw Napi::TypeError::New(env, "Expected frame " + std::to_string(i) + " to be a Buffer");
      const size_t len = v.As<Napi::Buffer<uint8_t>>().Length();
      if (len < kEthHdrLen || len > p.max_pkt_len()) {
        ThrowSys(env, EINVAL, "frame " + std::to_string(i) + " has " + std::to_string(len) +
                                  " bytes: a frame needs 14 to " + std::to_string(p.max_pkt_len()) + " bytes");
      }
    }
    p.ReclaimTx();
    uint32_t pkts[kBurst];
    uint32_t built = 0;
    for (; built < n; built++) {
      Napi::Buffer<uint8_t> b = frames.Get(built).As<Napi::Buffer<uint8_t>>();
      if (!p.CopyIn(b.Data(), uint32_t(b.Length()), &pkts[built])) break;  // out of buffers
    }
    const uint32_t sent = p.TxBurst(pkts, built);
    p.FreeBurst(pkts + sent, built - sent);
    return Napi::Number::New(env, sent);
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    FrontDevice& d = device(env);
    if (d.engine_running()) ThrowSys(env, EBUSY, "the device's engine already runs: stop it first");
    Napi::Object o = Options(info, 0);
    EngineConfig c;
    const std::string mode = OptString(o, "mode", "io");
    if (!ParseFwdMode(mode, &c.mode)) {
      ThrowSys(env, EINVAL, "unknown forwarding mode '" + mode + "': use io, mac, macswap, rxonly, txonly or tap");
    }
    const std::string poll = OptString(o, "poll", "adaptive");
    if (poll != "busy" && poll != "adaptive" && poll != "interrupt") {
      ThrowSys(env, EINVAL, "unknown poll mode '" + poll + "': use busy, adaptive or interrupt");
    }
    c.poll = poll == "busy" ? PollMode::kBusy : poll == "interrupt" ? PollMode::kInterrupt : PollMode::kAdaptive;
    c.burst = OptU32(o, "burst", kBurst);
    Mac(o, "peer", c.peer_mac, false);
    c.txpkts = OptU32(o, "txpkts", 64);
    Napi::Value rate = o.Get("rate");
    c.rate = napi::IsAbsent(rate) ? 0 : napi::ReadNumber(rate, "rate");
    Napi::Value count = o.Get("count");
    c.count = napi::IsAbsent(count) ? 0 : napi::ReadUint(count, "count");
    c.verify = o.Get("verify").ToBoolean().Value();
    const std::string tap = OptString(o, "tap", "");
    Guard(env, [&] { d.StartEngine(c, tap); });
    return env.Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (device_) device_->StopEngine();
    return info.Env().Undefined();
  }

  Napi::Value Running(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), device_ && device_->engine_running());
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    FrontStats& s = device(env).port().stats();
    Napi::Object o = Napi::Object::New(env);
    auto set = [&](const char* k, const std::atomic<uint64_t>& v) {
      o.Set(k, double(v.load(std::memory_order_relaxed)));
    };
    set("rx_packets", s.rx_packets);
    set("rx_bytes", s.rx_bytes);
    set("rx_dropped", s.rx_dropped);
    set("tx_packets", s.tx_packets);
    set("tx_bytes", s.tx_bytes);
    set("tx_dropped", s.tx_dropped);
    set("rx_nombuf", s.rx_nombuf);
    set("rx_bad", s.rx_bad);
    set("rx_out_of_order", s.rx_out_of_order);
    set("tx_done", s.tx_done);
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  std::unique_ptr<FrontDevice> device_;
};

// At environment teardown no engine thread may outlive the objects it uses.
void StopAllEngines(void*) {
  while (!LiveDevices().empty()) (*LiveDevices().begin())->Shutdown();
}

void InitFront(Napi::Env env, Napi::Object group) {
  Napi::Function pool = PoolWrap::Define(env);
  PoolWrap::ctor = new Napi::FunctionReference(Napi::Persistent(pool));
  group.Set("FrontPool", pool);
  group.Set("FrontDevice", DeviceWrap::Define(env));
  napi_add_env_cleanup_hook(env, StopAllEngines, nullptr);
}

}  // namespace

XSW_NAPI_EXPORTS(front, InitFront);
