#include "bench/probes.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/pin.h"
#include "common/errors.h"

namespace xsw::bench {
namespace {

using Clock = std::chrono::steady_clock;

void CheckCpu(int cpu) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpu < 0 || cpu >= n) {
    throw SysError(EINVAL, "CPU " + std::to_string(cpu) + " is not online (this machine has " + std::to_string(n) +
                               "): the probes need two CPUs, run the bench on a machine with at least two");
  }
}

constexpr uint32_t kBatch = 64;

struct alignas(64) Line {
  std::atomic<uint64_t> value{0};
  char pad[64 - sizeof(std::atomic<uint64_t>)];
};

}  // namespace

CrossingResult MeasureCrossing(int cpu_a, int cpu_b, uint32_t round_trips, uint32_t timeout_ms) {
  CheckCpu(cpu_a);
  CheckCpu(cpu_b);
  const uint32_t batches = std::max<uint32_t>(1, round_trips / kBatch);
  const uint64_t total = uint64_t(batches) * kBatch;
  auto line = std::make_unique<Line>();
  std::atomic<bool> abort{false};
  std::atomic<int> pin_err{0};
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);

  // The responder answers every odd value v with v + 1.
  std::thread responder([&] {
    if (int e = PinThisThread(cpu_b)) {
      pin_err.store(e);
      abort.store(true);
      return;
    }
    for (uint64_t i = 0; i < total; i++) {
      const uint64_t want = 2 * i + 1;
      uint32_t spins = 0;
      while (line->value.load(std::memory_order_acquire) != want) {
        if (++spins == 4096) {
          spins = 0;
          if (abort.load(std::memory_order_relaxed)) return;
        }
      }
      line->value.store(want + 1, std::memory_order_release);
    }
  });

  std::vector<double> one_way;
  one_way.reserve(batches);
  bool timed_out = false;
  std::thread initiator([&] {
    if (int e = PinThisThread(cpu_a)) {
      pin_err.store(e);
      abort.store(true);
      return;
    }
    uint64_t v = 0;
    for (uint32_t b = 0; b < batches && !abort.load(); b++) {
      const auto t0 = Clock::now();
      for (uint32_t k = 0; k < kBatch; k++) {
        line->value.store(v + 1, std::memory_order_release);
        uint32_t spins = 0;
        while (line->value.load(std::memory_order_acquire) != v + 2) {
          if (++spins == 4096) {
            spins = 0;
            if (Clock::now() > deadline) {
              timed_out = true;
              abort.store(true);
              return;
            }
          }
        }
        v += 2;
      }
      const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
      one_way.push_back(ns / (2.0 * kBatch));
    }
  });
  initiator.join();
  responder.join();

  if (int e = pin_err.load()) {
    throw SysError(e, "cannot pin a probe thread to CPU " + std::to_string(cpu_a) + " or " + std::to_string(cpu_b) +
                          ": check the process's CPU affinity (taskset -p $$)");
  }
  if (timed_out || one_way.empty()) {
    throw SysError(ETIMEDOUT, "the CPU " + std::to_string(cpu_a) + "/" + std::to_string(cpu_b) + " crossing probe did not finish in " +
                                  std::to_string(timeout_ms) + " ms: another process is hogging a CPU, stop it and run again");
  }
  std::sort(one_way.begin(), one_way.end());
  CrossingResult r;
  r.batches = uint32_t(one_way.size());
  r.median_ns = one_way[one_way.size() / 2];
  r.min_ns = one_way.front();
  r.max_ns = one_way.back();
  return r;
}

CopyResult MeasureMemcpy(size_t copy_len, size_t arena_bytes, size_t stride, uint64_t copies, uint32_t rounds, int cpu) {
  CheckCpu(cpu);
  if (copy_len == 0 || stride < copy_len || arena_bytes < stride || copies == 0 || rounds == 0) {
    throw SysError(EINVAL, "memcpy probe arguments are inconsistent: need 0 < length <= stride <= arena size, and copies, rounds > 0");
  }
  const size_t slots = arena_bytes / stride;
  std::vector<uint8_t> src(slots * stride, 0x5A), dst(slots * stride, 0);
  double best_ns = 0;
  int pin_err = 0;
  std::thread worker([&] {
    if ((pin_err = PinThisThread(cpu)) != 0) return;
    for (uint32_t r = 0; r < rounds; r++) {
      size_t slot = 0;
      const auto t0 = Clock::now();
      for (uint64_t i = 0; i < copies; i++) {
        std::memcpy(dst.data() + slot * stride, src.data() + slot * stride, copy_len);
        if (++slot == slots) slot = 0;
      }
      const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / double(copies);
      if (r == 0 || ns < best_ns) best_ns = ns;
    }
  });
  worker.join();
  if (pin_err) throw SysError(pin_err, "cannot pin the memcpy probe to CPU " + std::to_string(cpu) + ": check the process's CPU affinity");
  // Keep the copies observable.
  volatile uint8_t sink = dst[(copies - 1) % slots * stride];
  (void)sink;
  CopyResult c;
  c.ns_per_copy = best_ns;
  c.gbytes_per_s = double(copy_len) / best_ns;
  return c;
}

}  // namespace xsw::bench
