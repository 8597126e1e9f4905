#include "pmd/granted_rings.h"

#include <stdexcept>

#include "shm/vring.h"

namespace xsw {

FrontRings::FrontRings(std::shared_ptr<GrantProvider> grants, uint32_t ring_size, domid_t backend)
    : grants_(std::move(grants)) {
  if (!VringSizeValid(ring_size)) {
    throw std::invalid_argument("ring size " + std::to_string(ring_size) +
                                " is not a power of two between 1 and 32768: use e.g. --ring-size 256");
  }
  const uint32_t pages = VringPages(ring_size);
  try {
    tx_ = GrantPages(*grants_, backend, pages, "TX ring");
    tx_list_ = GrantGrefList(*grants_, tx_, backend, "TX ring");
    rx_ = GrantPages(*grants_, backend, pages, "RX ring");
    rx_list_ = GrantGrefList(*grants_, rx_, backend, "RX ring");
    flag_ = GrantPages(*grants_, backend, 1, "vring flag");
    flag_.addr[0] = kVringFlagDead;
    grants_->SetUnmapNotify(flag_.id, 0);
  } catch (...) {
    ReleaseGrantedPages(*grants_, flag_);
    ReleaseGrantedPages(*grants_, rx_list_.pages);
    ReleaseGrantedPages(*grants_, rx_);
    ReleaseGrantedPages(*grants_, tx_list_.pages);
    ReleaseGrantedPages(*grants_, tx_);
    throw;
  }
}

FrontRings::~FrontRings() {
  if (flag_.addr != nullptr) SetLive(false);
  ReleaseGrantedPages(*grants_, flag_);
  ReleaseGrantedPages(*grants_, rx_list_.pages);
  ReleaseGrantedPages(*grants_, rx_);
  ReleaseGrantedPages(*grants_, tx_list_.pages);
  ReleaseGrantedPages(*grants_, tx_);
}

void FrontRings::SetLive(bool live) {
  __atomic_store_n(&flag_.addr[0], live ? kVringFlagLive : kVringFlagDead, __ATOMIC_RELEASE);
}

uint8_t FrontRings::flag() const { return __atomic_load_n(&flag_.addr[0], __ATOMIC_ACQUIRE); }

}  // namespace xsw
