#include "shm/regions.h"

namespace xsw {

bool RegionTable::Add(const Region& r) {
  if (count_ == kCapacity || r.len == 0 || r.hva == nullptr || r.map_len < r.len) return false;
  if (r.gva > UINT64_MAX - r.len) return false;
  if (reinterpret_cast<uintptr_t>(r.hva) > UINTPTR_MAX - r.len) return false;
  uint64_t end = r.gva + r.len;  // exclusive
  for (uint32_t i = 0; i < count_; ++i) {
    const Region& o = regions_[i];
    if (r.gva < o.gva + o.len && o.gva < end) return false;
  }
  regions_[count_++] = r;
  return true;
}

uint8_t* RegionTable::Translate(uint64_t gva, uint64_t len, bool for_write, Violation* why, uint32_t* found) const {
  Violation v = Violation::kAddrOutsideRegion;
  if (gva > UINT64_MAX - len) {
    v = Violation::kLenOverflow;
  } else {
    for (uint32_t i = 0; i < count_; ++i) {
      const Region& r = regions_[i];
      if (gva < r.gva) continue;
      uint64_t offset = gva - r.gva;
      if (offset >= r.len) continue;  // regions do not overlap: keep looking
      if (len > r.len - offset) break;  // starts here but runs past the end
      if (for_write && !r.writable) {
        v = Violation::kWriteToReadOnly;
        break;
      }
      if (found) *found = i;
      return r.hva + offset;
    }
  }
  if (why) *why = v;
  return nullptr;
}

}  // namespace xsw
