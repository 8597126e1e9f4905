// Granted pages for the guest's device memory: one allocation through a
// GrantProvider (gntalloc or the sim) with the error a user can act on, and
// the gref list (its own allocation) that tells the back end which grefs an
// allocation holds. Control path.
#pragma once

#include <cstdint>
#include <string>

#include "grant/provider.h"

namespace xsw {

// `pages` writable pages granted to `to`. Throws SysError: ENOSPC becomes
// the sentence of RethrowGrantError (what was being granted, how to raise
// the limit); other errors pass unchanged.
GrantAllocation GrantPages(GrantProvider& grants, domid_t to, uint32_t pages, const std::string& what);

// Frees an allocation; one the provider no longer knows (it was torn down
// first) is not an error. An empty allocation (addr null) is skipped.
void ReleaseGrantedPages(GrantProvider& grants, const GrantAllocation& a);

// Turns a provider's ENOSPC into the sentence a user needs (what was being
// allocated and how to raise the limit on each platform); other errors pass.
[[noreturn]] void RethrowGrantError(const SysError& e, const std::string& what, uint32_t pages,
                                    const char* platform);

// The gref-list pages (native/shm/gref_list.h layout) describing another
// allocation, granted like it.
struct GrantedGrefList {
  GrantAllocation pages;
  // The value of a `*_gref` XenStore key: the list pages' grefs, comma-separated.
  std::string Key() const;
};

// Grants and fills the gref list of `data`. Throws like GrantPages.
GrantedGrefList GrantGrefList(GrantProvider& grants, const GrantAllocation& data, domid_t to, const std::string& what);

}  // namespace xsw
