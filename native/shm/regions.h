// gva -> hva translation for the back end: each region is one guest mapping
// (a mempool, a ring) that dom0 has mapped at `hva`. Fixed capacity, no
// allocation, so Translate can run per descriptor in the data plane.
#pragma once

#include <cstdint>

#include "shm/violation.h"

namespace xsw {

struct Region {
  uint64_t gva = 0;    // guest virtual address of the first byte
  uint64_t len = 0;    // bytes; > 0
  uint8_t* hva = nullptr;  // where dom0 has the same bytes mapped
  bool writable = false;   // dom0's mapping may be written
  uint64_t map_len = 0;    // bytes dom0 has mapped at hva (>= len), as the mapper reported them
};

class RegionTable {
 public:
  static constexpr uint32_t kCapacity = 32;  // 16 mempools + rings, with room to spare

  // Adds a region. Returns false (table unchanged) when len is 0, hva is null,
  // the mapping at hva is shorter than len, gva+len or hva+len overflows, the
  // gva range overlaps an existing region, or the table is full. Control path.
  bool Add(const Region& r);
  // Removes every region.
  void Clear() { count_ = 0; }
  uint32_t size() const { return count_; }
  const Region& at(uint32_t i) const { return regions_[i]; }

  // Host pointer for [gva, gva+len) iff that range lies wholly inside one
  // region (len 0 is allowed only at an address inside a region) and, when
  // `for_write`, that region is writable. Otherwise returns nullptr and sets
  // *why (if non-null) to kLenOverflow (gva+len wraps), kAddrOutsideRegion, or
  // kWriteToReadOnly. Overflow-safe; never allocates, locks or logs.
  // `found`, if non-null, receives the index of the region that matched.
  uint8_t* Translate(uint64_t gva, uint64_t len, bool for_write, Violation* why, uint32_t* found = nullptr) const;

  // The same result as Translate, trying region *hint first (a ring's
  // buffers mostly come from one region) and leaving the match in *hint.
  // Regions never overlap, so the region holding the range is the same
  // whichever is tried first; any *hint value is safe.
  uint8_t* TranslateHinted(uint64_t gva, uint64_t len, bool for_write, uint32_t* hint, Violation* why) const {
    if (*hint < count_) {
      const Region& r = regions_[*hint];
      if (gva >= r.gva) {
        const uint64_t offset = gva - r.gva;
        if (offset < r.len && len <= r.len - offset && (r.writable || !for_write)) return r.hva + offset;
      }
    }
    return Translate(gva, len, for_write, why, hint);
  }

 private:
  Region regions_[kCapacity];
  uint32_t count_ = 0;
};

}  // namespace xsw
