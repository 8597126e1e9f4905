// addon.netif: the netif (vif) back end's engine (native/netif/) and the
// event channels (native/grant/evtchn.h), for the back end and for the tests'
// fake netfront. Typed by native/addon.ts, wrapped by native/netif.ts.
#include <memory>
#include <string>

#include "grant/evtchn.h"
#include "napi/convert.h"
#include "napi/registry.h"
#include "netif/engine.h"

namespace {

using xsw::napi::Guard;
using xsw::napi::OptString;
using xsw::napi::OptU32;
using xsw::napi::ReadU32;

xsw::GrantOptions PlatformOf(const Napi::Object& o) {
  xsw::GrantOptions g;
  g.platform = OptString(o, "platform", "auto");
  g.sim_dir = OptString(o, "simDir", "");
  g.self_domid = xsw::domid_t(OptU32(o, "self", 0, 0, xsw::kDomidFirstReserved - 1));
  return g;
}

Napi::BigInt Addr(Napi::Env env, const void* p) {
  return Napi::BigInt::New(env, uint64_t(reinterpret_cast<uintptr_t>(p)));
}

class VifWrap : public Napi::ObjectWrap<VifWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeVif",
                       {InstanceMethod<&VifWrap::Local>("local"), InstanceMethod<&VifWrap::Start>("start"),
                        InstanceMethod<&VifWrap::Fault>("fault"), InstanceMethod<&VifWrap::Counters>("counters"),
                        InstanceMethod<&VifWrap::Close>("close")});
  }

  // new NativeVif({ platform, simDir, self, domid, devid, txRingRef, rxRingRef, txEvtchn, rxEvtchn, maxFrame, busy })
  explicit VifWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VifWrap>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = xsw::napi::ReadObject(info[0], "options");
    xsw::netif::VifParams p;
    p.platform = PlatformOf(o);
    p.domid = xsw::domid_t(ReadU32(o.Get("domid"), "domid", 0, xsw::kDomidFirstReserved - 1));
    p.devid = ReadU32(o.Get("devid"), "devid");
    p.tx_ring_ref = ReadU32(o.Get("txRingRef"), "txRingRef");
    p.rx_ring_ref = ReadU32(o.Get("rxRingRef"), "rxRingRef");
    p.tx_evtchn = ReadU32(o.Get("txEvtchn"), "txEvtchn");
    p.rx_evtchn = ReadU32(o.Get("rxEvtchn"), "rxEvtchn");
    p.max_frame = OptU32(o, "maxFrame", 1514, 60, 2048);
    p.busy_poll = o.Has("busy") && o.Get("busy").ToBoolean();
    engine_ = Guard(env, [&] { return xsw::netif::OpenVif(p); });
  }

 private:
  xsw::netif::Engine& E(Napi::Env env) {
    if (!engine_) throw Napi::Error::New(env, "this vif is closed");
    return *engine_;
  }

  Napi::Value Local(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const xsw::netif::LocalDevice& l = E(env).local();
    Napi::Object o = Napi::Object::New(env);
    o.Set("txRing", Addr(env, l.tx_ring));
    o.Set("rxRing", Addr(env, l.rx_ring));
    o.Set("ringSize", Napi::Number::New(env, l.ring_size));
    o.Set("ringLen", Napi::Number::New(env, double(l.ring_len)));
    o.Set("flag", Addr(env, l.flag));
    o.Set("pool", Addr(env, l.pool));
    o.Set("poolLen", Napi::Number::New(env, double(l.pool_len)));
    return o;
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    E(info.Env()).Start();
    return info.Env().Undefined();
  }

  Napi::Value Fault(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), xsw::netif::FaultName(E(info.Env()).fault()));
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const xsw::netif::EngineCounters& c = E(env).counters();
    Napi::Object o = Napi::Object::New(env);
    auto put = [&](const char* k, const std::atomic<uint64_t>& v) {
      o.Set(k, Napi::Number::New(env, double(v.load(std::memory_order_relaxed))));
    };
    put("tx_frames", c.tx_frames);
    put("tx_bytes", c.tx_bytes);
    put("tx_slots", c.tx_slots);
    put("tx_dropped", c.tx_dropped);
    put("tx_csum_completed", c.tx_csum_completed);
    put("rx_frames", c.rx_frames);
    put("rx_bytes", c.rx_bytes);
    put("rx_dropped", c.rx_dropped);
    put("rx_no_buffer", c.rx_no_buffer);
    put("events_in", c.events_in);
    put("events_out", c.events_out);
    return o;
  }

  // Stops the thread, unbinds, unmaps the rings and frees the local memory:
  // call only after the switch let go of the device.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    engine_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<xsw::netif::Engine> engine_;
};

class EventsWrap : public Napi::ObjectWrap<EventsWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeEventChannels",
                       {InstanceMethod<&EventsWrap::AllocateUnbound>("allocateUnbound"),
                        InstanceMethod<&EventsWrap::Bind>("bindInterdomain"),
                        InstanceMethod<&EventsWrap::Unbind>("unbind"), InstanceMethod<&EventsWrap::Notify>("notify"),
                        InstanceMethod<&EventsWrap::Pending>("pending"), InstanceMethod<&EventsWrap::Unmask>("unmask"),
                        InstanceMethod<&EventsWrap::Close>("close")});
  }

  // new NativeEventChannels({ platform, simDir, self })
  explicit EventsWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EventsWrap>(info) {
    Napi::Object o = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(info.Env());
    xsw::GrantOptions g = PlatformOf(o);
    events_ = Guard(info.Env(), [&] { return xsw::OpenEventChannels(g); });
  }

 private:
  xsw::EventChannels& E(Napi::Env env) {
    if (!events_) throw Napi::Error::New(env, "these event channels are closed");
    return *events_;
  }
  Napi::Value AllocateUnbound(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t remote = ReadU32(info[0], "remoteDomid", 0, xsw::kDomidFirstReserved - 1);
    return Napi::Number::New(env, Guard(env, [&] { return E(env).AllocateUnbound(xsw::domid_t(remote)); }));
  }
  Napi::Value Bind(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t remote = ReadU32(info[0], "remoteDomid", 0, xsw::kDomidFirstReserved - 1);
    uint32_t port = ReadU32(info[1], "remotePort");
    return Napi::Number::New(env, Guard(env, [&] { return E(env).BindInterdomain(xsw::domid_t(remote), port); }));
  }
  Napi::Value Unbind(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t port = ReadU32(info[0], "port");
    Guard(env, [&] { E(env).Unbind(port); });
    return env.Undefined();
  }
  Napi::Value Notify(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Napi::Boolean::New(env, E(env).Notify(ReadU32(info[0], "port")));
  }
  Napi::Value Pending(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    xsw::evtchn_port_t ports[64];
    uint32_t n = E(env).Pending(ports, 64);
    Napi::Array a = Napi::Array::New(env, n);
    for (uint32_t i = 0; i < n; ++i) a.Set(i, Napi::Number::New(env, ports[i]));
    return a;
  }
  Napi::Value Unmask(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    E(env).Unmask(ReadU32(info[0], "port"));
    return env.Undefined();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    events_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<xsw::EventChannels> events_;
};

void InitNetif(Napi::Env env, Napi::Object group) {
  group.Set("NativeVif", VifWrap::Define(env));
  group.Set("NativeEventChannels", EventsWrap::Define(env));
}

}  // namespace

XSW_NAPI_EXPORTS(netif, InitNetif);
