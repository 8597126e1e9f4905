// FrontRings: one device's granted rings: the TX and the RX vring, their
// gref lists, and the vring flag page (byte 0: 0xA5 while the device lives,
// cleared by the kernel's unmap-notify when this process dies). All granted
// writable to the back end's domain. Control path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "grant/provider.h"
#include "pmd/grant_pages.h"

namespace xsw {

class FrontRings {
 public:
  // Allocates the TX ring, the RX ring (VringPages(ring_size) pages each,
  // one allocation each), their gref lists, and the flag page with its
  // unmap-notify registered on byte 0. The flag byte starts at 0; SetLive
  // writes 0xA5. Throws SysError (ENOSPC at the gntalloc limit, with a
  // sentence) or std::invalid_argument for a bad ring size.
  FrontRings(std::shared_ptr<GrantProvider> grants, uint32_t ring_size, domid_t backend);
  ~FrontRings();
  FrontRings(const FrontRings&) = delete;
  FrontRings& operator=(const FrontRings&) = delete;

  uint8_t* tx_ring() const { return tx_.addr; }
  uint8_t* rx_ring() const { return rx_.addr; }
  uint8_t* flag_page() const { return flag_.addr; }
  std::string TxGrefKey() const { return tx_list_.Key(); }
  std::string RxGrefKey() const { return rx_list_.Key(); }
  grant_ref_t flag_gref() const { return flag_.grefs.at(0); }

  void SetLive(bool live);
  uint8_t flag() const;

 private:
  std::shared_ptr<GrantProvider> grants_;
  GrantAllocation tx_, rx_, flag_;
  GrantedGrefList tx_list_, rx_list_;
};

}  // namespace xsw
