// The grant interface: one contract, two implementations (real Xen through the
// Linux gntalloc/gntdev uapi, and the simulated platform), chosen at run time.
//
// Guest side (gntalloc): allocate N pages granted to one domain, as a single
// contiguous mapping in this process; free them; ask for a byte to be cleared
// when the last local user of a page goes away (process death included).
// dom0 side (gntdev): map a list of another domain's grefs as one contiguous
// mapping in one call; unmap.
//
// All methods are control-path: they may allocate, lock and throw SysError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "abi/abi.h"
#include "common/errors.h"

namespace xsw {

struct GrantAllocation {
  uint64_t id = 0;                 // provider-local handle
  uint8_t* addr = nullptr;         // contiguous mapping of all pages, page aligned
  uint32_t pages = 0;
  domid_t granted_to = 0;
  bool writable = true;
  std::vector<grant_ref_t> grefs;  // one per page, in mapping order
  std::vector<uint32_t> pfns;      // the granting domain's frame of each page (informational)
};

struct GrantMapping {
  uint64_t id = 0;
  uint8_t* addr = nullptr;  // contiguous mapping of all pages, page aligned
  uint32_t pages = 0;
  domid_t from = 0;
  bool writable = true;
};

class GrantProvider {
 public:
  virtual ~GrantProvider() = default;
  virtual const char* kind() const = 0;  // "xen" or "sim"

  // gntalloc: throws SysError (ENOSPC over the page limit, ENOENT/EACCES for a
  // missing device, EINVAL for a bad count or domid).
  virtual GrantAllocation Allocate(domid_t to, uint32_t pages, bool writable) = 0;
  // Revokes the grants and unmaps locally. A page the peer still maps is
  // released only when the peer unmaps it (as Linux defers it).
  virtual void Free(uint64_t allocation_id) = 0;
  // UNMAP_NOTIFY_CLEAR_BYTE on the byte at `offset` inside the allocation.
  virtual void SetUnmapNotify(uint64_t allocation_id, uint64_t offset) = 0;

  // gntdev: maps every ref or none (the first failure unmaps the rest and
  // throws: EINVAL for a reserved or out-of-range ref, EACCES for a grant not
  // permitted to this domain or read-only when `writable`, ENOENT...).
  virtual GrantMapping Map(domid_t from, const grant_ref_t* refs, uint32_t count, bool writable) = 0;
  // munmap first, then release the grant mapping.
  virtual void Unmap(uint64_t mapping_id) = 0;
};

// The contract's limits, checked the same way by every provider before it
// touches a device or the sim's table: SysError(EINVAL) with one sentence.
constexpr uint32_t kMaxGrantPagesPerCall = 65536;  // gntdev's per-call limit since Linux 5.5
void CheckAllocateArgs(domid_t to, uint32_t pages);
void CheckMapArgs(domid_t from, uint32_t count);

struct GrantOptions {
  std::string platform = "auto";  // "auto", "xen" or "sim"
  // sim only: the state directory (XSW_SIM_DIR) and who this process is.
  std::string sim_dir;
  domid_t self_domid = 0;
};

// "auto" picks xen when /dev/xen/gntalloc or /dev/xen/gntdev exists.
std::unique_ptr<GrantProvider> OpenGrantProvider(const GrantOptions& options);

// The platform "auto" resolves to on this machine.
std::string DetectPlatform();

}  // namespace xsw
