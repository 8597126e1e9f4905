// N-API surface of the front end: the granted mempool, devices (rings, flag,
// PMD), their engine thread, and a batch API for JS applications. Packets
// cross into JS only through rxBurst/txBurst, one call per batch.
//
//   frontOpenPool({platform, simDir, domid, nbMbuf, backendDomid}) -> FrontPool
//     .info() -> {va, gref, pages, nbMbuf, unassigned}    .close()
//   frontOpenDevice(pool, {mac: Buffer(6), ringSize, nbBufs, maxPktLen, backendDomid}) -> FrontDevice
//     .info() -> {txGref, rxGref, flagGref, rxPosted, rxSegs, nbBufs, platform}
//     .setLive(bool)  .flag() -> number
//     .rxBurst(max) -> Buffer[]   .txBurst(Buffer[]) -> number
//     .start({mode, poll, burst, peer: Buffer(6), txpkts, rate, count, verify, tap})  .stop()  .running()
//     .stats() -> {rx_packets, ...}   .close()
#include <memory>
#include <set>
#include <stdexcept>
#include <string>

#include "core/front_engine.h"
#include "core/front_grants.h"
#include "core/front_port.h"
#include "core/front_tap.h"
#include "core/grant.h"
#include "core/status.h"
#include "napi/registry.h"

#include <unistd.h>

namespace {

using namespace xsw;

// One grant provider per process, never destroyed: at exit an engine thread
// may still be polling the memory it maps (the platform cleans up after us).
std::shared_ptr<GrantProvider>& Provider() {
  static auto* provider = new std::shared_ptr<GrantProvider>();
  return *provider;
}

[[noreturn]] void ThrowJs(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  throw e;
}

// Runs a control-path call, turning C++ errors into JS errors with a code.
template <typename F>
auto Guard(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const SysError& e) {
    ThrowJs(env, ErrnoName(e.err()), e.what());
  } catch (const std::invalid_argument& e) {
    ThrowJs(env, "EINVAL", e.what());
  } catch (const std::bad_alloc&) {
    ThrowJs(env, "ENOMEM", "out of memory setting up the device: lower --nb-mbuf or --ring-size");
  }
}

uint32_t U32(const Napi::Object& o, const char* key, uint32_t fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("Expected ") + key + " to be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != double(uint64_t(d))) {
    throw Napi::TypeError::New(o.Env(), std::string("Expected ") + key + " to be a 32-bit unsigned integer");
  }
  return uint32_t(d);
}

std::string Str(const Napi::Object& o, const char* key, const std::string& fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string("Expected ") + key + " to be a string");
  return v.As<Napi::String>().Utf8Value();
}

void Mac(const Napi::Object& o, const char* key, uint8_t out[6], bool required) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && !required) return;
  if (!v.IsBuffer() || v.As<Napi::Buffer<uint8_t>>().Length() != 6) {
    throw Napi::TypeError::New(o.Env(), std::string("Expected ") + key + " to be a 6-byte Buffer");
  }
  std::memcpy(out, v.As<Napi::Buffer<uint8_t>>().Data(), 6);
}

Napi::Object Options(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsObject()) throw Napi::TypeError::New(info.Env(), "Expected an options object");
  return info[i].As<Napi::Object>();
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
    g.platform = Str(o, "platform", "auto");
    g.sim_dir = Str(o, "simDir", "");
    g.self_domid = domid_t(U32(o, "domid", 0));
    const uint32_t nb_mbuf = U32(o, "nbMbuf", 8192);
    const domid_t backend = domid_t(U32(o, "backendDomid", 0));
    pool_ = Guard(info.Env(), [&] {
      if (!Provider()) Provider() = std::shared_ptr<GrantProvider>(OpenGrantProvider(g));
      return std::make_shared<FrontPool>(Provider(), nb_mbuf, backend);
    });
  }
  std::shared_ptr<FrontPool> pool(Napi::Env env) {
    if (!pool_) ThrowJs(env, "EBADF", "the mempool is closed: open a new one");
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
  static Napi::FunctionReference* ctor;
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
    pool_ = PoolWrap::Unwrap(info[0].As<Napi::Object>())->pool(env);
    Napi::Object o = Options(info, 1);
    Mac(o, "mac", mac_, true);
    const uint32_t ring_size = U32(o, "ringSize", kDefaultRingSize);
    const uint32_t nb_bufs = U32(o, "nbBufs", 0);
    const uint32_t max_pkt_len = U32(o, "maxPktLen", 0);
    const domid_t backend = domid_t(U32(o, "backendDomid", 0));
    Guard(env, [&] {
      rings_ = std::make_unique<FrontRings>(Provider(), ring_size, backend);
      uint32_t first = 0;
      if (!pool_->TakeSlice(nb_bufs, &first)) {
        throw std::invalid_argument("the mempool has " + std::to_string(pool_->unassigned()) +
                                    " unassigned mbufs, not the " + std::to_string(nb_bufs) +
                                    " this device needs: raise --nb-mbuf");
      }
      FrontPortConfig c;
      c.pool_base = pool_->base();
      c.layout = pool_->layout();
      c.first_buf = first;
      c.nb_bufs = nb_bufs;
      c.tx_ring = rings_->tx_ring();
      c.rx_ring = rings_->rx_ring();
      c.ring_size = ring_size;
      c.max_pkt_len = max_pkt_len;
      port_ = std::make_unique<FrontPort>(c);
      return 0;
    });
    LiveDevices().insert(this);
  }

  ~DeviceWrap() override { Shutdown(); }

  // Stops the engine, clears the flag, releases rings and TAP. Idempotent.
  void Shutdown() {
    if (engine_) engine_->Stop();
    engine_.reset();
    CloseTap();
    if (rings_) rings_->SetLive(false);
    port_.reset();
    rings_.reset();
    pool_.reset();
    LiveDevices().erase(this);
  }

 private:
  FrontPort& port(Napi::Env env) {
    if (!port_) ThrowJs(env, "EBADF", "the device is closed: open a new one");
    return *port_;
  }
  void IdleOrThrow(Napi::Env env, const char* what) {
    if (engine_ && engine_->running()) {
      ThrowJs(env, "EBUSY", std::string("cannot ") + what + " while the device's engine runs: stop it first");
    }
  }
  void CloseTap() {
    if (tap_fd_ >= 0) close(tap_fd_);
    tap_fd_ = -1;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    FrontPort& p = port(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("txGref", rings_->TxGrefKey());
    o.Set("rxGref", rings_->RxGrefKey());
    o.Set("flagGref", double(rings_->flag_gref()));
    // The ring belongs to the engine thread while it runs: report what it started with.
    o.Set("rxPosted", double(engine_ && engine_->running() ? rx_posted_at_start_ : p.rx_in_flight()));
    o.Set("rxSegs", double(p.rx_segs()));
    o.Set("maxPktLen", double(p.max_pkt_len()));
    o.Set("platform", Provider()->kind());
    return o;
  }

  // setLive(true) also fills the RX ring first, so the device is announced
  // with buffers posted (the original's dev_start order).
  Napi::Value SetLive(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    port(env);
    const bool live = info.Length() > 0 && info[0].ToBoolean().Value();
    if (live && !(engine_ && engine_->running())) port_->RefillRx();  // a running engine refills itself
    rings_->SetLive(live);
    return env.Undefined();
  }

  Napi::Value Flag(const Napi::CallbackInfo& info) {
    port(info.Env());
    return Napi::Number::New(info.Env(), rings_->flag());
  }

  Napi::Value RxBurst(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    FrontPort& p = port(env);
    IdleOrThrow(env, "receive from JS");
    uint32_t max = kBurst;
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "Expected max to be a number");
      max = info[0].As<Napi::Number>().Uint32Value();
    }
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

  Napi::Value TxBurst(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    FrontPort& p = port(env);
    IdleOrThrow(env, "send from JS");
    if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "Expected an array of Buffers");
    Napi::Array frames = info[0].As<Napi::Array>();
    if (frames.Length() > kBurst) {
      ThrowJs(env, "EINVAL", "txBurst takes at most 32 frames per call: split the batch");
    }
    const uint32_t n = frames.Length();
    for (uint32_t i = 0; i < n; i++) {
      Napi::Value v = frames.Get(i);
      if (!v.IsBuffer()) throw Napi::TypeError::New(env, "Expected frame " + std::to_string(i) + " to be a Buffer");
      const size_t len = v.As<Napi::Buffer<uint8_t>>().Length();
      if (len < kEthHdrLen || len > p.max_pkt_len()) {
        ThrowJs(env, "EINVAL", "frame " + std::to_string(i) + " has " + std::to_string(len) +
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
    FrontPort& p = port(env);
    if (engine_ && engine_->running()) ThrowJs(env, "EBUSY", "the device's engine already runs: stop it first");
    Napi::Object o = Options(info, 0);
    EngineConfig c;
    const std::string mode = Str(o, "mode", "io");
    if (!ParseFwdMode(mode, &c.mode)) {
      ThrowJs(env, "EINVAL", "unknown forwarding mode '" + mode + "': use io, mac, macswap, rxonly, txonly or tap");
    }
    const std::string poll = Str(o, "poll", "adaptive");
    if (poll != "busy" && poll != "adaptive") {
      ThrowJs(env, "EINVAL", "unknown poll mode '" + poll + "': use busy or adaptive");
    }
    c.poll = poll == "busy" ? PollMode::kBusy : PollMode::kAdaptive;
    c.burst = U32(o, "burst", kBurst);
    std::memcpy(c.own_mac, mac_, 6);
    Mac(o, "peer", c.peer_mac, false);
    c.txpkts = U32(o, "txpkts", 64);
    Napi::Value rate = o.Get("rate");
    c.rate = rate.IsNumber() ? rate.As<Napi::Number>().DoubleValue() : 0;
    Napi::Value count = o.Get("count");
    c.count = count.IsNumber() ? uint64_t(count.As<Napi::Number>().DoubleValue()) : 0;
    c.verify = o.Get("verify").ToBoolean().Value();
    const std::string tap = Str(o, "tap", "");
    Guard(env, [&] {
      CloseTap();
      if (c.mode == FwdMode::kTap && !tap.empty()) tap_fd_ = OpenTap(tap, mac_);
      c.tap_fd = tap_fd_;
      engine_ = std::make_unique<FrontEngine>(&p, c);
      p.RefillRx();
      rx_posted_at_start_ = p.rx_in_flight();
      engine_->Start();
      return 0;
    });
    return env.Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (engine_) engine_->Stop();
    engine_.reset();
    CloseTap();
    return info.Env().Undefined();
  }

  Napi::Value Running(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), engine_ && engine_->running());
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    FrontPort& p = port(env);
    FrontStats& s = p.stats();
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

  std::shared_ptr<FrontPool> pool_;
  std::unique_ptr<FrontRings> rings_;
  std::unique_ptr<FrontPort> port_;
  std::unique_ptr<FrontEngine> engine_;
  uint8_t mac_[6] = {};
  int tap_fd_ = -1;
  uint32_t rx_posted_at_start_ = 0;
};
Napi::FunctionReference* DeviceWrap::ctor = nullptr;

// At environment teardown no engine thread may outlive the objects it uses.
void StopAllEngines(void*) {
  while (!LiveDevices().empty()) (*LiveDevices().begin())->Shutdown();
}

void InitFront(Napi::Env env, Napi::Object exports) {
  Napi::Function pool = PoolWrap::Define(env);
  PoolWrap::ctor = new Napi::FunctionReference(Napi::Persistent(pool));
  Napi::Function device = DeviceWrap::Define(env);
  DeviceWrap::ctor = new Napi::FunctionReference(Napi::Persistent(device));
  Napi::Object front = Napi::Object::New(env);
  front.Set("FrontPool", pool);
  front.Set("FrontDevice", device);
  exports.Set("front", front);
  napi_add_env_cleanup_hook(env, StopAllEngines, nullptr);
}

}  // namespace

XSW_NAPI_EXPORTS(front, InitFront);
