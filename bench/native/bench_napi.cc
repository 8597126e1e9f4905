// The bench's own addon, build/Release/xsw_bench.node (npm run build:bench;
// bench/native.ts loads it): the CPU crossing-time probe, the memcpy probe,
// the AF_PACKET frame generator and the switch-core harness. None of this is
// in the product addon. Control path.
#include <sched.h>

#include <memory>
#include <string>
#include <vector>

#include "bench/blaster.h"
#include "bench/probes.h"
#include "bench/switch_loop.h"
#include "napi/convert.h"

namespace {

using xsw::napi::Guard;
using xsw::napi::ReadI32;
using xsw::napi::ReadU32;

// crossingTime(cpuA, cpuB, roundTrips, timeoutMs) -> { medianNs, minNs, maxNs, batches }
Napi::Value CrossingTime(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int cpu_a = ReadI32(info[0], "cpuA", 0, CPU_SETSIZE - 1), cpu_b = ReadI32(info[1], "cpuB", 0, CPU_SETSIZE - 1);
  const uint32_t round_trips = ReadU32(info[2], "roundTrips"), timeout_ms = ReadU32(info[3], "timeoutMs");
  auto r = Guard(env, [&] { return xsw::bench::MeasureCrossing(cpu_a, cpu_b, round_trips, timeout_ms); });
  Napi::Object o = Napi::Object::New(env);
  o.Set("medianNs", r.median_ns);
  o.Set("minNs", r.min_ns);
  o.Set("maxNs", r.max_ns);
  o.Set("batches", r.batches);
  return o;
}

// memcpyBandwidth(len, arenaBytes, stride, copies, rounds, cpu) -> { nsPerCopy, gbytesPerS }
Napi::Value MemcpyBandwidth(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t len = ReadU32(info[0], "len"), arena = ReadU32(info[1], "arenaBytes"), stride = ReadU32(info[2], "stride");
  const uint64_t copies = xsw::napi::ReadUint(info[3], "copies");
  const uint32_t rounds = ReadU32(info[4], "rounds");
  const int cpu = ReadI32(info[5], "cpu", 0, CPU_SETSIZE - 1);
  auto r = Guard(env, [&] { return xsw::bench::MeasureMemcpy(len, arena, stride, copies, rounds, cpu); });
  Napi::Object o = Napi::Object::New(env);
  o.Set("nsPerCopy", r.ns_per_copy);
  o.Set("gbytesPerS", r.gbytes_per_s);
  return o;
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
    const std::string ifname = xsw::napi::ReadString(info[0], "ifname");
    auto buf = xsw::napi::ReadBuffer(info[1], "frame");
    std::vector<uint8_t> frame(buf.Data(), buf.Data() + buf.Length());
    const int cpu = xsw::napi::IsAbsent(info[2]) ? -1 : ReadI32(info[2], "cpu", -1, CPU_SETSIZE - 1);  // -1: not pinned
    blaster_ = Guard(info.Env(), [&] { return std::make_unique<xsw::bench::Blaster>(ifname, frame, cpu); });
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
                        InstanceMethod("roundTrips", &SwitchLoopWrap::RoundTrips), InstanceMethod("polls", &SwitchLoopWrap::Polls)});
  }

  // new SwitchLoop({ frameLen, inFlight, switchCpu, guestCpu, latency, idleDevices })
  explicit SwitchLoopWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SwitchLoopWrap>(info) {
    xsw::bench::SwitchLoopConfig cfg;
    if (info[0].IsObject()) {
      Napi::Object o = info[0].As<Napi::Object>();
      cfg.frame_len = xsw::napi::OptU32(o, "frameLen", cfg.frame_len);
      cfg.in_flight = xsw::napi::OptU32(o, "inFlight", cfg.in_flight);
      cfg.switch_cpu = int(xsw::napi::OptU32(o, "switchCpu", uint32_t(cfg.switch_cpu), 0, CPU_SETSIZE - 1));
      cfg.guest_cpu = int(xsw::napi::OptU32(o, "guestCpu", uint32_t(cfg.guest_cpu), 0, CPU_SETSIZE - 1));
      cfg.latency = o.Get("latency").ToBoolean().Value();
      cfg.idle_devices = xsw::napi::OptU32(o, "idleDevices", 0, 0, xsw::bench::SwitchLoopConfig::kMaxIdleDevices);
      if (o.Has("switchCores") && o.Get("switchCores").IsArray()) {
        Napi::Array cores = o.Get("switchCores").As<Napi::Array>();
        for (uint32_t i = 0; i < cores.Length(); ++i) {
          cfg.switch_cores.push_back(int(cores.Get(i).As<Napi::Number>().Uint32Value()));
        }
      }
    }
    loop_ = Guard(info.Env(), [&] { return std::make_unique<xsw::bench::SwitchLoop>(cfg); });
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Guard(info.Env(), [&] { loop_->Start(); });
    return info.Env().Undefined();
  }
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    loop_->Stop();
    return info.Env().Undefined();
  }
  Napi::Value Received(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(loop_->Received())); }
  Napi::Value Drops(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(loop_->SwitchDrops())); }
  // { guestPolls, guestEmpty, switchPolls, switchFrames, switch/guest busy and all cycles } so far.
  Napi::Value Polls(const Napi::CallbackInfo& info) {
    const auto p = loop_->Polls();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("guestPolls", double(p.guest_polls));
    o.Set("guestEmpty", double(p.guest_empty));
    o.Set("switchPolls", double(p.switch_polls));
    o.Set("switchFrames", double(p.switch_frames));
    o.Set("switchBusyCycles", double(p.switch_busy_cycles));
    o.Set("switchCycles", double(p.switch_cycles));
    o.Set("guestBusyCycles", double(p.guest_busy_cycles));
    o.Set("guestCycles", double(p.guest_cycles));
    return o;
  }
  // Latency mode, after stop(): the recorded round trips in µs.
  Napi::Value RoundTrips(const Napi::CallbackInfo& info) {
    const auto& v = loop_->RoundTrips();
    Napi::Float64Array out = Napi::Float64Array::New(info.Env(), v.size());
    for (size_t i = 0; i < v.size(); i++) out[i] = double(v[i]) / 1000.0;
    return out;
  }

  std::unique_ptr<xsw::bench::SwitchLoop> loop_;
};

Napi::Object InitBench(Napi::Env env, Napi::Object exports) {
  exports.Set("crossingTime", Napi::Function::New(env, CrossingTime, "crossingTime"));
  exports.Set("memcpyBandwidth", Napi::Function::New(env, MemcpyBandwidth, "memcpyBandwidth"));
  exports.Set("Blaster", BlasterWrap::Define(env));
  exports.Set("SwitchLoop", SwitchLoopWrap::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(xsw_bench, InitBench)
