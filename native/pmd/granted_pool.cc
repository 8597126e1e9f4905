#include "pmd/granted_pool.h"

#include <cstdio>
#include <stdexcept>

namespace xsw {

FrontPool::FrontPool(std::shared_ptr<GrantProvider> grants, uint32_t nb_mbuf, domid_t backend)
    : grants_(std::move(grants)) {
  const std::optional<MempoolLayout> layout = MempoolLayout::Make(nb_mbuf, kDefaultMbufBufSize);
  if (!layout) {
    throw std::invalid_argument("a mempool of " + std::to_string(nb_mbuf) + " mbufs cannot be described: use 1 to " +
                                std::to_string(kMaxGrefListEntries) + " mbufs");
  }
  layout_ = *layout;
  data_ = GrantPages(*grants_, backend, layout_.pages, "mempool");
  try {
    list_ = GrantGrefList(*grants_, data_, backend, "mempool");
  } catch (...) {
    ReleaseGrantedPages(*grants_, data_);
    throw;
  }
}

FrontPool::~FrontPool() {
  ReleaseGrantedPages(*grants_, list_.pages);
  ReleaseGrantedPages(*grants_, data_);
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

}  // namespace xsw
