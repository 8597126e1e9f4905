// The wake-up floor of this machine: the pattern of the bench's interrupt-mode
// wake-up row without any xsw code. A pinger (spinning on its reply, alone on
// one CPU) wakes process A, asleep in ppoll; A wakes process B, asleep in a
// blocking read; B wakes A; A answers the pinger. Three wake-ups per round
// trip, A and B sharing the other CPU, a pause before each ping so that both
// are asleep again: what the kernel and the hypervisor charge for that, below
// which no switch's wake-up round trip can go here. Plain eventfds.
//
// Usage: xsw_wakeup_floor COUNT WARMUP GAP_US PINGER_CPU SLEEPERS_CPU
// Prints one JSON line, as bench/pinger.ts does: {"rtt_us": [...], "lost": 0}.
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "xsw_wakeup_floor: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

void Pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) Die("cannot pin to the CPU given");
}

void Signal(int fd) {
  const uint64_t one = 1;
  if (write(fd, &one, sizeof one) != sizeof one) Die("eventfd write");
}

// Blocking read (the fd is blocking): sleeps until signalled.
void Take(int fd) {
  uint64_t v;
  while (read(fd, &v, sizeof v) != sizeof v) {
    if (errno != EINTR) Die("eventfd read");
  }
}

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: xsw_wakeup_floor COUNT WARMUP GAP_US PINGER_CPU SLEEPERS_CPU\n");
    return 2;
  }
  const long count = std::atol(argv[1]);
  const long warmup = std::atol(argv[2]);
  const long gap_us = std::atol(argv[3]);
  const int pinger_cpu = std::atoi(argv[4]);
  const int sleepers_cpu = std::atoi(argv[5]);
  if (count < 1 || warmup < 0 || gap_us < 0) {
    std::fprintf(stderr, "xsw_wakeup_floor: COUNT must be ≥ 1, WARMUP and GAP_US ≥ 0\n");
    return 2;
  }
  // to_a: pinger → A; to_b: A → B; back_a: B → A; to_p: A → pinger (non-blocking: the pinger spins).
  const int to_a = eventfd(0, 0), to_b = eventfd(0, 0), back_a = eventfd(0, 0), to_p = eventfd(0, EFD_NONBLOCK);
  if (to_a < 0 || to_b < 0 || back_a < 0 || to_p < 0) Die("eventfd");

  const pid_t b = fork();
  if (b < 0) Die("fork");
  if (b == 0) {  // B: asleep in read, echoes to A
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    Pin(sleepers_cpu);
    for (;;) {
      Take(to_b);
      Signal(back_a);
    }
  }
  const pid_t a = fork();
  if (a < 0) Die("fork");
  if (a == 0) {  // A: asleep in ppoll on both of its inputs, as a switch waits on its devices
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    Pin(sleepers_cpu);
    pollfd fds[2] = {{to_a, POLLIN, 0}, {back_a, POLLIN, 0}};
    for (;;) {
      if (ppoll(fds, 2, nullptr, nullptr) < 0) {
        if (errno == EINTR) continue;
        Die("ppoll");
      }
      if (fds[0].revents & POLLIN) {
        Take(to_a);
        Signal(to_b);
      }
      if (fds[1].revents & POLLIN) {
        Take(back_a);
        Signal(to_p);
      }
    }
  }

  Pin(pinger_cpu);
  std::vector<double> rtt;
  rtt.reserve(size_t(count));
  const timespec gap = {gap_us / 1000000, (gap_us % 1000000) * 1000};
  for (long i = 0; i < warmup + count; i++) {
    if (gap_us > 0) nanosleep(&gap, nullptr);
    const uint64_t t0 = NowNs();
    Signal(to_a);
    uint64_t v;
    while (read(to_p, &v, sizeof v) != sizeof v) {
      if (errno != EAGAIN && errno != EINTR) Die("eventfd read");
    }
    const uint64_t t1 = NowNs();
    if (i >= warmup) rtt.push_back(double(t1 - t0) / 1000.0);
  }
  kill(a, SIGKILL);
  kill(b, SIGKILL);
  waitpid(a, nullptr, 0);
  waitpid(b, nullptr, 0);

  std::printf("{\"rtt_us\": [");
  for (size_t i = 0; i < rtt.size(); i++) std::printf("%s%.2f", i ? ", " : "", rtt[i]);
  std::printf("], \"lost\": 0}\n");
  return 0;
}
