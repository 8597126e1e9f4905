// The bench's native helpers: the switch harness moves frames through the
// real switch and PMD without loss, the probes answer sensibly and refuse
// bad arguments with a sentence.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <unistd.h>

#include "check.h"

#include "bench/blaster.h"
#include "bench/probes.h"
#include "bench/switch_loop.h"
#include "common/errors.h"

namespace {

template <typename F>
std::string ThrowsSysError(F f) {
  try {
    f();
  } catch (const xsw::SysError& e) {
    return e.what();
  }
  return "";
}

bool TwoCpus() { return sysconf(_SC_NPROCESSORS_ONLN) >= 2; }

void SwitchLoopMovesFramesWithoutLoss(uint32_t frame_len) {
  xsw::bench::SwitchLoopConfig cfg;
  cfg.frame_len = frame_len;
  cfg.in_flight = 64;
  xsw::bench::SwitchLoop loop(cfg);
  CHECK(loop.Received() == 0);
  loop.Start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (loop.Received() < 20000 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  loop.Stop();
  const uint64_t got = loop.Received();
  CHECK(got >= 20000);
  CHECK(loop.SwitchDrops() == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(loop.Received() == got);  // stopped means stopped
  // The poll counts behind the bench's empty-poll shares: every frame the
  // switch took came from a poll, and the guest's empty polls are some of its polls.
  const auto p = loop.Polls();
  CHECK(p.switch_frames >= got && p.switch_polls > 0);
  CHECK(p.guest_polls > 0 && p.guest_empty < p.guest_polls);
}

// Idle devices of other guests attached beside the loop: the loop still
// moves every frame, and the idle ones receive nothing.
void SwitchLoopWithIdleDevices() {
  xsw::bench::SwitchLoopConfig cfg;
  cfg.in_flight = 64;
  cfg.idle_devices = 14;
  xsw::bench::SwitchLoop loop(cfg);
  loop.Start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (loop.Received() < 20000 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  loop.Stop();
  CHECK(loop.Received() >= 20000);
  CHECK(loop.SwitchDrops() == 0);
}

void LatencyModeRecordsRoundTrips() {
  xsw::bench::SwitchLoopConfig cfg;
  cfg.latency = true;
  cfg.max_samples = 1000;
  xsw::bench::SwitchLoop loop(cfg);
  loop.Start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (loop.Received() < 4000 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  loop.Stop();
  const auto& rtt = loop.RoundTrips();
  CHECK(rtt.size() == 1000);  // capped at max_samples, never reallocated
  for (uint32_t ns : rtt) CHECK(ns > 0);
  // Each round trip is one arrival at B and one at A.
  CHECK(loop.Received() >= 2 * rtt.size());
  CHECK(loop.SwitchDrops() == 0);
}

}  // namespace

int main() {
  if (!TwoCpus()) {
    std::fprintf(stderr, "bench_test needs two CPUs\n");
    return 1;
  }
  SwitchLoopMovesFramesWithoutLoss(64);
  SwitchLoopMovesFramesWithoutLoss(1500);
  LatencyModeRecordsRoundTrips();
  SwitchLoopWithIdleDevices();

  CHECK(ThrowsSysError([] {
          xsw::bench::SwitchLoopConfig c;
          c.frame_len = 9000;
          xsw::bench::SwitchLoop l(c);
        }).find("frames") != std::string::npos);
  CHECK(ThrowsSysError([] {
          xsw::bench::SwitchLoopConfig c;
          c.nb_mbuf = 100;
          xsw::bench::SwitchLoop l(c);
        }).find("raise nb_mbuf") != std::string::npos);
  CHECK(ThrowsSysError([] {
          xsw::bench::SwitchLoopConfig c;
          c.idle_devices = 63;
          xsw::bench::SwitchLoop l(c);
        }).find("at most 62 idle devices") != std::string::npos);

  auto x = xsw::bench::MeasureCrossing(0, 1, 6400, 5000);
  CHECK(x.batches == 100);
  CHECK(x.min_ns > 0 && x.min_ns <= x.median_ns && x.median_ns <= x.max_ns);
  CHECK(ThrowsSysError([] { xsw::bench::MeasureCrossing(0, 4096, 64, 100); }).find("not online") != std::string::npos);

  auto c = xsw::bench::MeasureMemcpy(1500, 1 << 20, 2048, 10000, 2, 0);
  CHECK(c.ns_per_copy > 0 && std::isfinite(c.gbytes_per_s) && c.gbytes_per_s > 0);
  CHECK(ThrowsSysError([] { xsw::bench::MeasureMemcpy(4096, 1 << 20, 2048, 10, 1, 0); }).find("inconsistent") != std::string::npos);

  CHECK(ThrowsSysError([] { xsw::bench::Blaster b("xswb-no-such0", std::vector<uint8_t>(64), 0); }).find("no interface named xswb-no-such0") !=
        std::string::npos);
  CHECK(ThrowsSysError([] { xsw::bench::Blaster b("lo", std::vector<uint8_t>(8), 0); }).find("14 to 9018") != std::string::npos);

  return xsw::test::Finish("bench_test");
}
