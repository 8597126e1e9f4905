// Machine probes for `npm run bench`: how long a cache line takes to cross
// from one CPU to another (the figure that tells this machine's fast and slow
// vCPU placements apart), and how fast one core copies packet-sized buffers
// (the ceiling of any copying switch). Control path only: threads, vectors
// and exceptions are fine here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace xsw::bench {

struct CrossingResult {
  double median_ns = 0;  // one-way time, median over the batches
  double min_ns = 0;
  double max_ns = 0;
  uint32_t batches = 0;
};

// Two threads pinned to cpu_a and cpu_b bounce one cache line round_trips
// times, in batches of 64; one-way = batch time / (2 * 64). Throws
// SysError when a CPU cannot be used or the probe does not finish within
// timeout_ms (the other CPU never ran our thread).
CrossingResult MeasureCrossing(int cpu_a, int cpu_b, uint32_t round_trips, uint32_t timeout_ms);

struct CopyResult {
  double ns_per_copy = 0;
  double gbytes_per_s = 0;  // copy_len bytes copied per ns_per_copy (10^9 bytes/s)
};

// One thread pinned to cpu copies copy_len bytes from a source arena to a
// destination arena of arena_bytes each, advancing by stride (so the
// working set is arena-sized, like a mempool), `copies` times; the best of
// `rounds` rounds. Throws SysError on bad arguments or a CPU that cannot be
// used.
CopyResult MeasureMemcpy(size_t copy_len, size_t arena_bytes, size_t stride, uint64_t copies, uint32_t rounds, int cpu);

}  // namespace xsw::bench
