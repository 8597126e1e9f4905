// The simulated provider: per-process bookkeeping and address-space work on
// top of SimDomain (the shared table) and the process registry.
//
// Mappings are built like gntdev's: reserve one contiguous PROT_NONE range,
// then MAP_FIXED each run of consecutive frames of the granting domain's
// frame store into it, so the caller always gets one contiguous mapping.
#include "grant/sim_provider.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "grant/sim_dir.h"
#include "grant/sim_domain.h"

namespace xsw {
namespace {

using sim::SimDomain;

// The reaper wakes when a registration file in procs/ is closed after being
// written: only its owner has it open for writing, so that is its death (the
// kernel closes the files of a killed process too). The close is reported
// before the kernel drops the file's flock, so a reap right then may still
// see the owner alive: it reaps again kRecheckMs later. kSafetyIntervalMs
// covers an event lost to a full inotify queue. Without inotify (its limits
// reached) it polls every kPollIntervalMs, as it always did.
constexpr int kRecheckMs = 20;
constexpr int kSafetyIntervalMs = 5000;
constexpr int kPollIntervalMs = 100;


// Maps `frames` of a frame store into one contiguous range.
uint8_t* MapFrames(int frames_fd, const std::vector<uint32_t>& frames, bool writable) {
  size_t len = frames.size() * size_t(kPageSize);
  void* base = mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {
    int err = errno;
    throw SysError(err, "cannot reserve " + std::to_string(len) + " bytes of address space (" + ErrnoText(err) + ")");
  }
  auto* at = static_cast<uint8_t*>(base);
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  for (size_t i = 0; i < frames.size();) {
    size_t run = 1;
    while (i + run < frames.size() && frames[i + run] == frames[i] + run) ++run;
    void* p = mmap(at + i * kPageSize, run * kPageSize, prot, MAP_SHARED | MAP_FIXED, frames_fd,
                   off_t(frames[i]) * kPageSize);
    if (p == MAP_FAILED) {
      int err = errno;
      munmap(base, len);
      throw SysError(err, "cannot map granted frames (" + ErrnoText(err) + ")");
    }
    i += run;
  }
  return at;
}

// The domains one process has open, reopened when removed under it.
class DomainCache {
 public:
  explicit DomainCache(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }

  // Runs fn with domain `domid` locked.
  void With(domid_t domid, bool create, const std::function<void(SimDomain&)>& fn) {
    for (int attempt = 0; attempt < 20; ++attempt) {
      auto it = domains_.find(domid);
      if (it == domains_.end()) it = domains_.emplace(domid, SimDomain::Open(dir_, domid, create)).first;
      SimDomain& d = *it->second;
      if (!d.Lock()) {
        domains_.erase(it);
        continue;
      }
      try {
        fn(d);
      } catch (...) {
        d.Unlock();
        throw;
      }
      d.Unlock();
      if (d.removed()) domains_.erase(domid);
      return;
    }
    throw SysError(EAGAIN, "domain " + std::to_string(domid) + " of the sim keeps being removed: retry");
  }

  // Undoes what every dead process left in every domain.
  void ReapDeadProcesses(uint32_t self_token) {
    std::vector<sim::DeadProc> dead = sim::FindDeadProcs(dir_, self_token);
    if (dead.empty()) return;
    for (domid_t domid : sim::ListDomains(dir_)) {
      try {
        With(domid, false, [&](SimDomain& d) {
          for (const sim::DeadProc& p : dead) d.Reap(p.token);
          d.RemoveIfUnused();
        });
      } catch (const SysError&) {
        // A domain removed or half-created meanwhile has nothing of theirs.
      }
    }
    for (sim::DeadProc& p : dead) p.Finish();
  }

 private:
  std::string dir_;
  std::map<domid_t, std::unique_ptr<SimDomain>> domains_;
};

class SimGrantProvider : public GrantProvider {
 public:
  SimGrantProvider(const std::string& dir, domid_t self)
      : self_(self), domains_(dir), limit_(sim::ReadGntallocLimit(dir)), reg_(dir, self) {
    stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (stop_fd_ < 0) {
      const int err = errno;
      throw SysError(err, "cannot create the sim reaper's eventfd (" + ErrnoText(err) + "): too many open files?");
    }
    inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_fd_ >= 0 && inotify_add_watch(inotify_fd_, (dir + "/procs").c_str(), IN_CLOSE_WRITE) < 0) {
      close(inotify_fd_);
      inotify_fd_ = -1;  // polled instead
    }
    reaper_ = std::thread([this] { ReaperLoop(); });
  }

  ~SimGrantProvider() override {
    const uint64_t one = 1;
    ssize_t n = write(stop_fd_, &one, sizeof one);
    (void)n;
    reaper_.join();
    close(stop_fd_);
    if (inotify_fd_ >= 0) close(inotify_fd_);
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, a] : allocations_) {
      try {
        ReleaseAllocation(a);
      } catch (const SysError&) {
      }
    }
    for (auto& [id, m] : mappings_) {
      try {
        ReleaseMapping(m);
      } catch (const SysError&) {
      }
    }
  }

  const char* kind() const override { return "sim"; }

  GrantAllocation Allocate(domid_t to, uint32_t pages, bool writable) override {
    CheckAllocateArgs(to, pages);
    std::lock_guard<std::mutex> lock(mu_);
    GrantAllocation a;
    domains_.With(self_, true, [&](SimDomain& d) {
      SimDomain::Granted g = d.Grant(reg_.token(), to, pages, writable, limit_);
      try {
        a.addr = MapFrames(d.frames_fd(), g.frames, true);
      } catch (...) {
        d.EndGrants(reg_.token(), g.refs);
        throw;
      }
      a.grefs = g.refs;
      a.pfns = g.frames;
    });
    std::memset(a.addr, 0, size_t(pages) * kPageSize);  // gntalloc hands out zeroed pages
    a.id = next_id_++;
    a.pages = pages;
    a.granted_to = to;
    a.writable = writable;
    allocations_[a.id] = a;
    return a;
  }

  void Free(uint64_t allocation_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = allocations_.find(allocation_id);
    if (it == allocations_.end()) throw UnknownHandle("allocation", allocation_id);
    GrantAllocation a = it->second;
    allocations_.erase(it);
    ReleaseAllocation(a);
  }

  void SetUnmapNotify(uint64_t allocation_id, uint64_t offset) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = allocations_.find(allocation_id);
    if (it == allocations_.end()) throw UnknownHandle("allocation", allocation_id);
    const GrantAllocation& a = it->second;
    if (offset >= uint64_t(a.pages) * kPageSize)
      throw SysError(EINVAL, "unmap-notify offset " + std::to_string(offset) + " is outside the allocation of " +
                                 std::to_string(a.pages) + " pages");
    grant_ref_t ref = a.grefs[offset / kPageSize];
    domains_.With(self_, false, [&](SimDomain& d) {
      d.SetUnmapNotify(reg_.token(), ref, uint16_t(offset % kPageSize));
    });
  }

  GrantMapping Map(domid_t from, const grant_ref_t* refs, uint32_t count, bool writable) override {
    CheckMapArgs(from, count);
    std::lock_guard<std::mutex> lock(mu_);
    Mapping m;
    m.refs.assign(refs, refs + count);
    domains_.With(from, false, [&](SimDomain& d) {
      std::vector<uint32_t> frames = d.MapGrants(self_, reg_.token(), refs, count, writable);
      try {
        m.info.addr = MapFrames(d.frames_fd(), frames, writable);
      } catch (...) {
        d.UnmapGrants(reg_.token(), m.refs, writable);
        throw;
      }
    });
    m.info.id = next_id_++;
    m.info.pages = count;
    m.info.from = from;
    m.info.writable = writable;
    mappings_[m.info.id] = m;
    return m.info;
  }

  void Unmap(uint64_t mapping_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = mappings_.find(mapping_id);
    if (it == mappings_.end()) throw UnknownHandle("mapping", mapping_id);
    Mapping m = it->second;
    mappings_.erase(it);
    ReleaseMapping(m);
  }

  // Like the hypervisor: each segment checked against the granting domain's
  // table under its lock (one lock per run of segments of one domain).
  void Copy(GrantCopySeg* segs, uint32_t count) override {
    if (!PrecheckCopy(segs, count)) return;
    std::lock_guard<std::mutex> lock(mu_);
    for (uint32_t i = 0; i < count;) {
      uint32_t end = i;
      while (end < count && segs[end].domid == segs[i].domid) ++end;
      try {
        domains_.With(segs[i].domid, false, [&](SimDomain& d) {
          for (uint32_t k = i; k < end; ++k) CopyOne(d, segs[k]);
        });
      } catch (const SysError& e) {
        for (uint32_t k = i; k < end; ++k)
          if (segs[k].status == GNTST_general_error) segs[k].status = e.err() == ENOENT ? GNTST_bad_domain : GNTST_general_error;
      }
      i = end;
    }
  }

 private:
  void CopyOne(SimDomain& d, GrantCopySeg& s) {
    if (s.status != GNTST_general_error) return;  // refused by PrecheckCopy
    off_t at = 0;
    s.status = d.CheckCopy(self_, s.ref, s.offset, s.len, s.to_foreign, &at);
    if (s.status != GNTST_okay) return;
    ssize_t n = s.to_foreign ? pwrite(d.frames_fd(), s.local, s.len, at) : pread(d.frames_fd(), s.local, s.len, at);
    if (n != ssize_t(s.len)) {
      // A frame past the end of the file reads as zeros: the page was never written.
      if (!s.to_foreign && n >= 0) std::memset(s.local + n, 0, size_t(s.len) - size_t(n));
      else s.status = GNTST_general_error;
    }
  }

  struct Mapping {
    GrantMapping info;
    std::vector<grant_ref_t> refs;
  };

  static SysError UnknownHandle(const char* what, uint64_t id) {
    return SysError(EINVAL, std::string("no grant ") + what + " with id " + std::to_string(id) +
                                ": it was already released or belongs to another Grants object");
  }

  // Local munmap first, then end the grants (clearing notify bytes), as
  // gntalloc does when the last local user goes.
  void ReleaseAllocation(const GrantAllocation& a) {
    munmap(a.addr, size_t(a.pages) * kPageSize);
    try {
      domains_.With(self_, false, [&](SimDomain& d) {
        d.EndGrants(reg_.token(), a.grefs);
        d.RemoveIfUnused();
      });
    } catch (const SysError& e) {
      if (e.err() != ENOENT) throw;  // our domain was destroyed: its grants already ended
    }
  }

  void ReleaseMapping(const Mapping& m) {
    munmap(m.info.addr, size_t(m.info.pages) * kPageSize);
    try {
      domains_.With(m.info.from, false, [&](SimDomain& d) {
        d.UnmapGrants(reg_.token(), m.refs, m.info.writable);
        d.RemoveIfUnused();
      });
    } catch (const SysError& e) {
      if (e.err() != ENOENT) throw;  // a domain already gone holds nothing of ours
    }
  }

  void ReaperLoop() {
    bool recheck = false;  // a death was reported: reap once more shortly
    for (;;) {
      pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
      const int timeout = inotify_fd_ < 0 ? kPollIntervalMs : recheck ? kRecheckMs : kSafetyIntervalMs;
      const int r = poll(fds, inotify_fd_ < 0 ? 1 : 2, timeout);
      if (r > 0 && (fds[0].revents & POLLIN)) break;
      recheck = false;
      if (r > 0 && (fds[1].revents & POLLIN)) {
        alignas(inotify_event) char buf[4096];
        while (read(inotify_fd_, buf, sizeof buf) > 0) {
        }
        recheck = true;
      }
      std::lock_guard<std::mutex> lock(mu_);
      try {
        domains_.ReapDeadProcesses(reg_.token());
      } catch (const std::exception&) {
        // Retried on the next wake-up; the reaper must never take the process down.
      }
    }
  }

  domid_t self_;
  DomainCache domains_;
  uint32_t limit_;
  sim::ProcRegistration reg_;
  std::mutex mu_;
  int stop_fd_ = -1;     // eventfd: the destructor stops the reaper
  int inotify_fd_ = -1;  // procs/ closed after writing; -1: the reaper polls
  std::thread reaper_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, GrantAllocation> allocations_;
  std::map<uint64_t, Mapping> mappings_;
};

}  // namespace

std::unique_ptr<GrantProvider> OpenSimGrantProvider(const std::string& sim_dir, domid_t self_domid) {
  if (self_domid >= kDomidFirstReserved)
    throw SysError(EINVAL, "sim domain id " + std::to_string(self_domid) + " is not a real domain id: use 0 to " +
                               std::to_string(kDomidFirstReserved - 1));
  std::string dir = sim::ResolveSimDir(sim_dir);
  sim::EnsureSimDir(dir);
  return std::make_unique<SimGrantProvider>(dir, self_domid);
}

void SimInit(const std::string& dir, uint32_t gntalloc_limit) {
  std::string resolved = sim::ResolveSimDir(dir);
  sim::EnsureSimDir(resolved);
  sim::WriteSimConfig(resolved, gntalloc_limit);
}

void SimDestroyDomain(const std::string& dir, domid_t domid) {
  std::string resolved = sim::ResolveSimDir(dir);
  DomainCache domains(resolved);
  domains.ReapDeadProcesses(0);
  try {
    domains.With(domid, false, [](SimDomain& d) {
      d.Destroy();
      d.RemoveIfUnused();
    });
  } catch (const SysError& e) {
    if (e.err() != ENOENT) throw;  // never granted anything: nothing to destroy
  }
}

}  // namespace xsw
