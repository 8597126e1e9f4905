// One simulated domain's grant table, bookkeeping and memory, as seen from one
// process, and the hypervisor's rules applied to them.
//
// Every method except Open and Lock must be called between Lock() and
// Unlock(): the flock serialises all processes (of every domain) that touch
// this domain's state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "abi/abi.h"
#include "grant/sim_layout.h"

namespace xsw::sim {

class SimDomain {
 public:
  // create: make the files (this domain's own processes); otherwise a domain
  // that does not exist is ENOENT.
  static std::unique_ptr<SimDomain> Open(const std::string& sim_dir, domid_t domid, bool create);
  ~SimDomain();
  SimDomain(const SimDomain&) = delete;
  SimDomain& operator=(const SimDomain&) = delete;

  // false: the domain's files were removed meanwhile (reopen it).
  bool Lock();
  void Unlock();

  domid_t domid() const { return domid_; }
  int frames_fd() const { return frames_fd_; }
  bool removed() const { return removed_; }

  struct Granted {
    std::vector<grant_ref_t> refs;
    std::vector<uint32_t> frames;
  };
  // gntalloc: `count` entries granting fresh frames to `to`, owned by `owner`.
  // ENOSPC over `limit` pages (or a full table), ESRCH once destroyed.
  Granted Grant(uint32_t owner, domid_t to, uint32_t count, bool writable, uint32_t limit);
  // The owner frees: clear its notify bytes and end each grant now, or at the
  // last unmap when it is still mapped. Entries no longer owned are skipped.
  void EndGrants(uint32_t owner, const std::vector<grant_ref_t>& refs);
  void SetUnmapNotify(uint32_t owner, grant_ref_t ref, uint16_t offset_in_page);

  // The hypervisor's map check for every ref first (all or none), then the
  // mapping is recorded in `mapper`'s slot. Returns the frames in ref order.
  std::vector<uint32_t> MapGrants(domid_t mapper_domid, uint32_t mapper, const grant_ref_t* refs, uint32_t count,
                                  bool writable);
  void UnmapGrants(uint32_t mapper, const std::vector<grant_ref_t>& refs, bool writable);

  // GNTTABOP_copy's check of one segment against this domain's table: the
  // GNTST_* status, and on okay the byte offset of the data in frames_fd().
  int16_t CheckCopy(domid_t copier, grant_ref_t ref, uint16_t offset, uint16_t len, bool write, off_t* at) const;

  // Undo what a dead process left: its grants end, its mappings go.
  void Reap(uint32_t token);
  // simDestroyDomain: every grant ends (deferred while mapped elsewhere).
  void Destroy();
  // After Reap/Unmap/Destroy: remove the files of a destroyed domain that
  // nothing references any more.
  void RemoveIfUnused();

  // For tests and diagnostics.
  uint32_t used_pages() const;
  GrantEntryV1 ReadEntry(grant_ref_t ref) const;
  uint32_t MapCount(grant_ref_t ref) const;

 private:
  SimDomain() = default;
  void Rebuild();
  void Release(grant_ref_t ref);
  void EndOne(grant_ref_t ref);
  void RefreshFlags(grant_ref_t ref);
  void GrowFrames(uint32_t frames);
  int32_t FindFrameRun(uint32_t count) const;
  bool FrameUsed(uint32_t frame) const;
  void SetFrameUsed(uint32_t frame, bool used);
  SimEntry& Entry(grant_ref_t ref) const;

  std::string dir_;
  domid_t domid_ = 0;
  int lock_fd_ = -1, table_fd_ = -1, shadow_fd_ = -1, frames_fd_ = -1;
  GrantEntryV1* table_ = nullptr;
  uint8_t* shadow_ = nullptr;
  SimHeader* hdr_ = nullptr;
  bool removed_ = false;
};

}  // namespace xsw::sim
