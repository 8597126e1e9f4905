#include "pmd/grant_pages.h"

#include <cstring>
#include <stdexcept>

#include "shm/gref_list.h"

namespace xsw {

GrantAllocation GrantPages(GrantProvider& grants, domid_t to, uint32_t pages, const std::string& what) {
  try {
    return grants.Allocate(to, pages, true);
  } catch (const SysError& e) {
    RethrowGrantError(e, what, pages, grants.kind());
  }
}

void ReleaseGrantedPages(GrantProvider& grants, const GrantAllocation& a) {
  if (a.addr == nullptr) return;
  try {
    grants.Free(a.id);
  } catch (const SysError&) {
    // Already gone (the provider was torn down first): nothing left to free.
  }
}

void RethrowGrantError(const SysError& e, const std::string& what, uint32_t pages, const char* platform) {
  if (e.err() != ENOSPC) throw e;
  const std::string how = std::strcmp(platform, "sim") == 0
                              ? "start the simulation with a higher limit (xsw-sim up --gntalloc-limit N)"
                              : "raise the guest's limit (modprobe xen_gntalloc limit=N, or write N to "
                                "/sys/module/xen_gntalloc/parameters/limit)";
  throw SysError(ENOSPC, "the gntalloc limit was reached while granting " + std::to_string(pages) +
                             " pages for the " + what + ": " + how + ", or lower --nb-mbuf");
}

std::string GrantedGrefList::Key() const {
  std::string out;
  for (size_t i = 0; i < pages.grefs.size(); i++) {
    if (i > 0) out += ',';
    out += std::to_string(pages.grefs[i]);
  }
  return out;
}

GrantedGrefList GrantGrefList(GrantProvider& grants, const GrantAllocation& data, domid_t to, const std::string& what) {
  const uint32_t n_pages = GrefListPages(data.pages);
  GrantedGrefList list;
  list.pages = GrantPages(grants, to, n_pages, what + " gref list");
  const uint32_t* pfns = data.pfns.size() == data.grefs.size() ? data.pfns.data() : nullptr;
  if (!EncodeGrefList(data.grefs.data(), pfns, data.pages, list.pages.addr, n_pages)) {
    grants.Free(list.pages.id);
    throw std::invalid_argument("the gref list of the " + what + " does not fit in " + std::to_string(n_pages) +
                                " pages");
  }
  return list;
}

}  // namespace xsw
