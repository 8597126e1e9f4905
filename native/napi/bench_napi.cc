// The bench's native helpers: the CPU crossing-time probe, the memcpy probe
// and the AF_PACKET frame generator (native/core/bench_*.h). Control path.
#include <memory>
#include <string>
#include <vector>

#include "core/bench_blast.h"
#include "core/bench_probe.h"
#include "core/bench_switch.h"
#include "core/status.h"
#include "napi/registry.h"

namespace {

Napi::Error ToJs(Napi::Env env, const xsw::SysError& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  err.Set("code", Napi::String::New(env, xsw::ErrnoName(e.err())));
  return err;
}

uint32_t U32(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a number");
  return v.As<Napi::Number>().Uint32Value();
}

// crossingTime(cpuA, cpuB, roundTrips, timeoutMs) -> { medianNs, minNs, maxNs, batches }
Napi::Value CrossingTime(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    auto r = xsw::bench::MeasureCrossing(int(U32(info[0], "cpuA")), int(U32(info[1], "cpuB")), U32(info[2], "roundTrips"),
                                         U32(info[3], "timeoutMs"));
    Napi::Object o = Napi::Object::New(env);
    o.Set("medianNs", r.median_ns);
    o.Set("minNs", r.min_ns);
    o.Set("maxNs", r.max_ns);
    o.Set("batches", r.batches);
    return o;
  } catch (const xsw::SysError& e) {
    throw ToJs(env, e);
  }
}

// memcpyBandwidth(len, arenaBytes, stride, copies, rounds, cpu) -> { nsPerCopy, gbytesPerS }
Napi::Value MemcpyBandwidth(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    auto r = xsw::bench::MeasureMemcpy(U32(info[0], "len"), U32(info[1], "arenaBytes"), U32(info[2], "stride"),
                                       info[3].As<Napi::Number>().Int64Value(), U32(info[4], "rounds"), int(U32(info[5], "cpu")));
    Napi::Object o = Napi::Object::New(env);
    o.Set("nsPerCopy", r.ns_per_copy);
    o.Set("gbytesPerS", r.gbytes_per_s);
    return o;
  } catch (const xsw::SysError& e) {
    throw ToJs(env, e);
  }
}

class BlasterWrap : public Napi::ObjectWrap<BlasterWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Blaster",
                       {InstanceMethod("start", &BlasterWrap::Start), InstanceMethod("stop", &BlasterWrap::Stop),
                        InstanceMethod("sent", &BlasterWrap::Sent)});
  }

  // new Blaster(ifname, frame: Buffer, cpu)
  explicit BlasterWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BlasterWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString() || !info[1].IsBuffer()) throw Napi::TypeError::New(env, "Blaster(ifname, frame, cpu): ifname a string, frame a Buffer");
    auto buf = info[1].As<Napi::Buffer<uint8_t>>();
    std::vector<uint8_t> frame(buf.Data(), buf.Data() + buf.Length());
    int cpu = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : -1;
    try {
      blaster_ = std::make_unique<xsw::bench::Blaster>(info[0].As<Napi::String>().Utf8Value(), frame, cpu);
    } catch (const xsw::SysError& e) {
      throw ToJs(env, e);
    }
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    blaster_->Start();
    return info.Env().Undefined();
  }
  Napi::Value Stop(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(blaster_->Stop())); }
  Napi::Value Sent(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(blaster_->sent())); }

  std::unique_ptr<xsw::bench::Blaster> blaster_;
};

class SwitchLoopWrap : public Napi::ObjectWrap<SwitchLoopWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SwitchLoop",
                       {InstanceMethod("start", &SwitchLoopWrap::Start), InstanceMethod("stop", &SwitchLoopWrap::Stop),
                        InstanceMethod("received", &SwitchLoopWrap::Received), InstanceMethod("drops", &SwitchLoopWrap::Drops),
                        InstanceMethod("roundTrips", &SwitchLoopWrap::RoundTrips)});
  }

  // new SwitchLoop({ frameLen, inFlight, switchCpu, guestCpu })
  explicit SwitchLoopWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SwitchLoopWrap>(info) {
    Napi::Env env = info.Env();
    xsw::bench::SwitchLoopConfig cfg;
    if (info[0].IsObject()) {
      Napi::Object o = info[0].As<Napi::Object>();
      if (o.Has("frameLen")) cfg.frame_len = U32(o.Get("frameLen"), "frameLen");
      if (o.Has("inFlight")) cfg.in_flight = U32(o.Get("inFlight"), "inFlight");
      if (o.Has("switchCpu")) cfg.switch_cpu = int(U32(o.Get("switchCpu"), "switchCpu"));
      if (o.Has("guestCpu")) cfg.guest_cpu = int(U32(o.Get("guestCpu"), "guestCpu"));
      if (o.Has("latency")) cfg.latency = o.Get("latency").ToBoolean().Value();
    }
    try {
      loop_ = std::make_unique<xsw::bench::SwitchLoop>(cfg);
    } catch (const xsw::SysError& e) {
      throw ToJs(env, e);
    }
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    try {
      loop_->Start();
    } catch (const xsw::SysError& e) {
      throw ToJs(info.Env(), e);
    }
    return info.Env().Undefined();
  }
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    loop_->Stop();
    return info.Env().Undefined();
  }
  Napi::Value Received(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(loop_->Received())); }
  Napi::Value Drops(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(loop_->SwitchDrops())); }
  // Latency mode, after stop(): the recorded round trips in µs.
  Napi::Value RoundTrips(const Napi::CallbackInfo& info) {
    const auto& v = loop_->RoundTrips();
    Napi::Float64Array out = Napi::Float64Array::New(info.Env(), v.size());
    for (size_t i = 0; i < v.size(); i++) out[i] = double(v[i]) / 1000.0;
    return out;
  }

  std::unique_ptr<xsw::bench::SwitchLoop> loop_;
};

void InitBench(Napi::Env env, Napi::Object exports) {
  Napi::Object bench = Napi::Object::New(env);
  bench.Set("crossingTime", Napi::Function::New(env, CrossingTime));
  bench.Set("memcpyBandwidth", Napi::Function::New(env, MemcpyBandwidth));
  bench.Set("Blaster", BlasterWrap::Define(env));
  bench.Set("SwitchLoop", SwitchLoopWrap::Define(env));
  exports.Set("bench", bench);
}

}  // namespace

XSW_NAPI_EXPORTS(bench, InitBench);
