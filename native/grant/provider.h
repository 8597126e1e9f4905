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

// GNTTABOP_copy's status codes (Xen's public/grant_table.h).
constexpr int16_t GNTST_okay = 0;
constexpr int16_t GNTST_general_error = -1;
constexpr int16_t GNTST_bad_domain = -2;
constexpr int16_t GNTST_bad_gntref = -3;
constexpr int16_t GNTST_permission_denied = -8;
constexpr int16_t GNTST_bad_copy_arg = -10;
const char* GntstName(int16_t status);  // "okay", "bad_gntref", ... ("unknown" otherwise)

// One segment of a batched grant copy between local memory and one page
// granted by another domain. Neither side may cross a page: the foreign side
// is [offset, offset + len) of the granted page.
struct GrantCopySeg {
  bool to_foreign = false;  // false: foreign -> local (read the guest); true: local -> foreign
  domid_t domid = 0;        // the granting domain
  grant_ref_t ref = 0;
  uint16_t offset = 0;
  uint16_t len = 0;
  uint8_t* local = nullptr;
  int16_t status = GNTST_general_error;  // filled by Copy: GNTST_*
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

  // GNTTABOP_copy (gntdev's IOCTL_GNTDEV_GRANT_COPY), batched: each segment
  // gets its own status, as Xen gives it: bad_gntref (reserved, out of
  // range), permission_denied (not granted to this domain, or read-only when
  // written), bad_copy_arg (offset + len past the page), bad_domain. A copy
  // that fails leaves its destination untouched. Data path: no allocation;
  // never throws (a failed call fails every segment with general_error).
  // The base class copies nothing (every segment general_error), so test
  // doubles of the grant interface need not implement it; both real
  // providers do.
  virtual void Copy(GrantCopySeg* segs, uint32_t count) {
    for (uint32_t i = 0; i < count; ++i) segs[i].status = GNTST_general_error;
  }
};

// Checks every segment's page bounds before the provider is asked (gntdev
// refuses a whole batch with EINVAL for one segment past its page): marks the
// bad ones bad_copy_arg and returns whether any is left to copy.
bool PrecheckCopy(GrantCopySeg* segs, uint32_t count);

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
