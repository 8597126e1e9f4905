#include "shm/gref_list.h"

#include <cstring>

namespace xsw {

uint32_t GrefListPages(uint32_t entries) {
  uint32_t pages = (entries + kGrefItemsPerPage - 1) / kGrefItemsPerPage;
  return pages == 0 ? 1 : pages;
}

bool EncodeGrefList(const grant_ref_t* grefs, const uint32_t* pfns, uint32_t n, uint8_t* pages,
                    uint32_t n_pages) {
  uint64_t capacity = uint64_t(n_pages) * kGrefItemsPerPage;
  if (n > capacity) return false;
  std::memset(pages, 0, capacity * sizeof(GrefListItem));  // also writes the terminator
  auto* items = reinterpret_cast<GrefListItem*>(pages);
  for (uint32_t i = 0; i < n; ++i) {
    items[i].gref = grefs[i];
    items[i].pfn = pfns ? pfns[i] : 0;
  }
  return true;
}

GrefListStatus DecodeGrefList(const uint8_t* pages, uint32_t n_pages, uint32_t max_entries,
                              std::vector<grant_ref_t>* out) {
  out->clear();
  GrefListStatus st;
  auto fail = [&st](std::string reason) {
    st.ok = false;
    st.reason = std::move(reason);
    return st;
  };
  if (n_pages == 0) return fail("gref list has no pages: publish at least one list page");
  if (n_pages > kMaxGrefListPages) {
    return fail("gref list has " + std::to_string(n_pages) + " pages, more than the limit of " +
                std::to_string(kMaxGrefListPages) + ": use a smaller mempool or ring");
  }
  uint32_t capacity = n_pages * kGrefItemsPerPage;
  out->reserve(capacity < max_entries ? capacity : max_entries);
  // The guest can rewrite these pages at any time: load each item once, as
  // one 64-bit value (gref is the low half: little-endian layout).
  const auto* items = reinterpret_cast<const uint64_t*>(pages);
  for (uint32_t i = 0; i < capacity; ++i) {
    uint64_t item = __atomic_load_n(&items[i], __ATOMIC_RELAXED);
    grant_ref_t gref = static_cast<grant_ref_t>(item & 0xffffffffu);
    if (static_cast<int32_t>(gref) <= 0) break;  // terminator: 0 or negative (-1)
    if (i == max_entries) {
      return fail("gref list has more than " + std::to_string(max_entries) +
                  " entries (no terminator within the bound): end the list with a zero gref or ask for fewer pages");
    }
    if (gref < kGnttabReservedEntries) {
      return fail("gref list entry " + std::to_string(i) + " is gref " + std::to_string(gref) +
                  ", which is reserved (refs 0-7): publish only grefs from gntalloc");
    }
    out->push_back(gref);
  }
  return st;
}

}  // namespace xsw
