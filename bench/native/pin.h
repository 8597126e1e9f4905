// Pins the calling thread to one CPU: the bench's threads each own a CPU.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <cerrno>

namespace xsw::bench {

// 0, or the errno of pthread_setaffinity_np (EINVAL for a CPU that is
// offline or out of range).
inline int PinThisThread(int cpu) {
  if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

}  // namespace xsw::bench
