#include "vhost/sigbus_guard.h"

#include <signal.h>
#include <sys/mman.h>

#include <cerrno>
#include <mutex>

#include "common/errors.h"

namespace xsw::vhost {

namespace {

// An entry is free while `lost` is null. The control thread writes base and
// len, then publishes `lost` (release); the handler reads `lost` (acquire)
// first. An entry is only removed once no thread can touch its region (the
// device left the switch), so a handler never races with its removal.
struct Entry {
  std::atomic<uintptr_t> base{0};
  std::atomic<size_t> len{0};
  std::atomic<std::atomic<bool>*> lost{nullptr};
};

Entry g_entries[kGuardEntries];
struct sigaction g_previous;
std::once_flag g_installed;

void Chain(int sig, siginfo_t* info, void* ctx) {
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) g_previous.sa_sigaction(sig, info, ctx);
    return;
  }
  if (g_previous.sa_handler == SIG_IGN) return;
  if (g_previous.sa_handler == SIG_DFL) {
    // The default action: die of this SIGBUS (the access faults again on return).
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGBUS, &dfl, nullptr);
    if (info->si_code <= 0) raise(SIGBUS);  // sent by kill(): no access to repeat
    return;
  }
  g_previous.sa_handler(sig);
}

void OnSigbus(int sig, siginfo_t* info, void* ctx) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  if (info->si_code > 0) {  // raised by a fault, not sent
    for (Entry& e : g_entries) {
      std::atomic<bool>* lost = e.lost.load(std::memory_order_acquire);
      if (lost == nullptr) continue;
      const uintptr_t base = e.base.load(std::memory_order_relaxed);
      const size_t len = e.len.load(std::memory_order_relaxed);
      if (addr < base || addr - base >= len) continue;
      const int saved = errno;
      void* p = mmap(reinterpret_cast<void*>(base), len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      errno = saved;
      if (p == MAP_FAILED) break;  // cannot repair: let the previous handler decide
      lost->store(true, std::memory_order_release);
      return;
    }
  }
  Chain(sig, info, ctx);
}

void Install() {
  struct sigaction sa {};
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &g_previous) != 0) throw SysError(errno, "cannot install the SIGBUS guard for vhost-user memory");
}

}  // namespace

int GuardAdd(void* base, size_t len, std::atomic<bool>* lost) {
  std::call_once(g_installed, Install);
  static std::mutex adding;  // two control threads (tests) never claim one entry
  std::lock_guard<std::mutex> hold(adding);
  for (uint32_t i = 0; i < kGuardEntries; ++i) {
    Entry& e = g_entries[i];
    if (e.lost.load(std::memory_order_relaxed) != nullptr) continue;
    e.base.store(reinterpret_cast<uintptr_t>(base), std::memory_order_relaxed);
    e.len.store(len, std::memory_order_relaxed);
    e.lost.store(lost, std::memory_order_release);
    return int(i);
  }
  return -1;
}

void GuardRemove(int entry) {
  if (entry < 0 || uint32_t(entry) >= kGuardEntries) return;
  g_entries[entry].lost.store(nullptr, std::memory_order_release);
}

}  // namespace xsw::vhost
