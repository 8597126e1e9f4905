#include "core/front_grants.h"

#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "core/gref_list.h"
#include "core/vring.h"

namespace xsw {
namespace {

// Allocates with the provider, turning ENOSPC into a sentence for people.
GrantAllocation AllocateOrExplain(GrantProvider& grants, domid_t to, uint32_t pages, const std::string& what) {
  try {
    return grants.Allocate(to, pages, true);
  } catch (const SysError& e) {
    RethrowGrantError(e, what, pages, grants.kind());
  }
}

// A gref list (separate allocation) describing `data`.
GrefList MakeGrefList(GrantProvider& grants, const GrantAllocation& data, domid_t to, const std::string& what) {
  const uint32_t n_pages = GrefListPages(data.pages);
  GrefList list;
  list.pages = AllocateOrExplain(grants, to, n_pages, what + " gref list");
  const uint32_t* pfns = data.pfns.size() == data.grefs.size() ? data.pfns.data() : nullptr;
  if (!EncodeGrefList(data.grefs.data(), pfns, data.pages, list.pages.addr, n_pages)) {
    grants.Free(list.pages.id);
    throw std::invalid_argument("the gref list of the " + what + " does not fit in " + std::to_string(n_pages) +
                                " pages");
  }
  return list;
}

void FreeQuietly(GrantProvider& grants, const GrantAllocation& a) {
  if (a.addr == nullptr) return;
  try {
    grants.Free(a.id);
  } catch (const SysError&) {
    // Already gone (the provider was torn down first): nothing left to free.
  }
}

}  // namespace

std::string GrefList::Key() const {
  std::string out;
  for (size_t i = 0; i < pages.grefs.size(); i++) {
    if (i > 0) out += ',';
    out += std::to_string(pages.grefs[i]);
  }
  return out;
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

// ---------------------------------------------------------------------------

FrontPool::FrontPool(std::shared_ptr<GrantProvider> grants, uint32_t nb_mbuf, domid_t backend)
    : grants_(std::move(grants)) {
  const std::optional<MempoolLayout> layout = MempoolLayout::Make(nb_mbuf, kDefaultMbufBufSize);
  if (!layout) {
    throw std::invalid_argument("a mempool of " + std::to_string(nb_mbuf) + " mbufs cannot be described: use 1 to " +
                                std::to_string(kMaxGrefListEntries) + " mbufs");
  }
  layout_ = *layout;
  data_ = AllocateOrExplain(*grants_, backend, layout_.pages, "mempool");
  try {
    list_ = MakeGrefList(*grants_, data_, backend, "mempool");
  } catch (...) {
    FreeQuietly(*grants_, data_);
    throw;
  }
}

FrontPool::~FrontPool() {
  FreeQuietly(*grants_, list_.pages);
  FreeQuietly(*grants_, data_);
}

std::string FrontPool::VaKey() const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(data_.addr)));
  return buf;
}

bool FrontPool::TakeSlice(uint32_t count, uint32_t* first) {
  if (count == 0 || count > layout_.nb_mbuf - next_free_) return false;
  *first = next_free_;
  next_free_ += count;
  return true;
}

// ---------------------------------------------------------------------------

FrontRings::FrontRings(std::shared_ptr<GrantProvider> grants, uint32_t ring_size, domid_t backend)
    : grants_(std::move(grants)) {
  if (!VringSizeValid(ring_size)) {
    throw std::invalid_argument("ring size " + std::to_string(ring_size) +
                                " is not a power of two between 1 and 32768: use e.g. --ring-size 256");
  }
  const uint32_t pages = VringPages(ring_size);
  try {
    tx_ = AllocateOrExplain(*grants_, backend, pages, "TX ring");
    tx_list_ = MakeGrefList(*grants_, tx_, backend, "TX ring");
    rx_ = AllocateOrExplain(*grants_, backend, pages, "RX ring");
    rx_list_ = MakeGrefList(*grants_, rx_, backend, "RX ring");
    flag_ = AllocateOrExplain(*grants_, backend, 1, "vring flag");
    flag_.addr[0] = kVringFlagDead;
    grants_->SetUnmapNotify(flag_.id, 0);
  } catch (...) {
    FreeQuietly(*grants_, flag_);
    FreeQuietly(*grants_, rx_list_.pages);
    FreeQuietly(*grants_, rx_);
    FreeQuietly(*grants_, tx_list_.pages);
    FreeQuietly(*grants_, tx_);
    throw;
  }
}

FrontRings::~FrontRings() {
  if (flag_.addr != nullptr) SetLive(false);
  FreeQuietly(*grants_, flag_);
  FreeQuietly(*grants_, rx_list_.pages);
  FreeQuietly(*grants_, rx_);
  FreeQuietly(*grants_, tx_list_.pages);
  FreeQuietly(*grants_, tx_);
}

void FrontRings::SetLive(bool live) {
  __atomic_store_n(&flag_.addr[0], live ? kVringFlagLive : kVringFlagDead, __ATOMIC_RELEASE);
}

uint8_t FrontRings::flag() const { return __atomic_load_n(&flag_.addr[0], __ATOMIC_ACQUIRE); }

}  // namespace xsw
