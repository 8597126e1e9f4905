// Cache hints for the data path, and the one store-load fence it needs.
//
// PrefetchForWrite asks for a line the switch is about to write (an RX
// buffer, a used entry). The line was last written or read by the guest's
// CPU; a plain prefetch brings it shared, and the store after it then needs a
// second trip between the CPUs to take ownership. x86's PREFETCHW takes it
// owned at once. GCC emits PREFETCHW for __builtin_prefetch(p, 1) only when
// built for CPUs that have it (-mprfchw), which the addon is not, so it is
// issued here when the CPU says it has it (CPUID 0x80000001 ECX bit 8).
#pragma once

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace xsw {

#if defined(__x86_64__)
inline bool CpuHasPrefetchW() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(0x80000001u, &a, &b, &c, &d) != 0 && (c & (1u << 8)) != 0;
}
inline const bool kCpuHasPrefetchW = CpuHasPrefetchW();
#endif

inline void PrefetchForRead(const void* p) { __builtin_prefetch(p, 0, 3); }

inline void PrefetchForWrite(const void* p) {
#if defined(__x86_64__)
  if (kCpuHasPrefetchW) {
    __asm__ volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
    return;
  }
#endif
  __builtin_prefetch(p, 1, 3);
}

// A full fence between our stores (used->idx) and the loads after it (the
// peer's flags and event words), as __atomic_thread_fence(__ATOMIC_SEQ_CST),
// but on x86-64 as a locked add to the stack instead of MFENCE, which some
// CPUs (AMD's) execute much more slowly; both order every earlier store
// before every later load.
inline void StoreLoadFence() {
#if defined(__x86_64__)
  __asm__ volatile("lock addl $0, -128(%%rsp)" ::: "memory", "cc");
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

}  // namespace xsw
