// Gref-list pages (DPDK xenvirt's grant_node_item): packed 8-byte
// (u32 gref, u32 pfn) items, 512 per 4 KiB page, in data-page order. The list
// ends at the first item whose gref, read as a signed 32-bit value, is <= 0; a
// list that exactly fills its pages has no terminator (gntalloc pages start
// zeroed, and DPDK wrote none).
//
// The back end decodes pages a hostile guest shares with it: each item is
// loaded exactly once into a local, then validated, then used.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "abi/abi.h"

namespace xsw {

// Number of list pages needed for `entries` items: ceil(entries / 512), at
// least 1 (an empty list is one page holding a terminator).
uint32_t GrefListPages(uint32_t entries);

// Writes n items (gref[i], pfn[i] or 0 when pfns is null) into `pages`
// (n_pages * 4096 bytes, 8-byte aligned), then one zero terminator item when
// there is room, and zeroes the rest of the pages. Returns false, writing
// nothing, when n > n_pages * 512.
bool EncodeGrefList(const grant_ref_t* grefs, const uint32_t* pfns, uint32_t n, uint8_t* pages,
                    uint32_t n_pages);

struct GrefListStatus {
  bool ok = true;
  std::string reason;  // one sentence naming the entry and the fix, when !ok
  explicit operator bool() const { return ok; }
};

// Reads items from `pages` (n_pages * 4096 bytes, 8-byte aligned, shared with
// the guest) until the first gref <= 0 (signed) or the end of the pages, and
// appends the grefs to *out (cleared first). Rejects, with a reason naming the
// entry index: n_pages == 0 or > kMaxGrefListPages; more than max_entries
// entries before a terminator; a reserved gref (1..7). On failure *out holds
// the entries accepted before the bad one. Control path (allocates).
GrefListStatus DecodeGrefList(const uint8_t* pages, uint32_t n_pages, uint32_t max_entries,
                              std::vector<grant_ref_t>* out);

}  // namespace xsw
