// A cheap per-loop clock for busy accounting: where a poll loop's time went,
// split into processing (loops that found work) and idle (empty loops and
// sleeps), as OVS's pmd-stats-show and testpmd's --record-core-cycles report
// it. One read per loop: the TSC on x86 (constant-rate on every CPU this runs
// on), the monotonic clock in ns elsewhere. Only ratios of these counts mean
// anything; their unit is not given.
#pragma once

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#else
#include <ctime>
#endif

namespace xsw {

inline uint64_t CycleCount() {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
#endif
}

// A poll loop's split of its time. Written by the loop's thread only.
struct LoopCycles {
  uint64_t last = CycleCount();
  // Call once per loop, after the poll, with whether it found work.
  template <class Counter>
  void After(bool worked, Counter& processing, Counter& idle) {
    const uint64_t now = CycleCount();
    (worked ? processing : idle).Add(now - last);
    last = now;
  }
};

}  // namespace xsw
