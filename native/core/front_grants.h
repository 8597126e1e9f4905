// The granted memory of xsw-front: the mempool (data pages + gref-list pages)
// and each device's rings (+ gref-list pages) and vring-flag page, all
// allocated through a GrantProvider (gntalloc or the sim) and granted
// writable to the back end's domain, as DPDK's xenvirt did. These objects
// only own memory; XenStore publication is the TypeScript side's job
// (frontend/publish.ts), with the values exposed here. Control path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/grant.h"
#include "core/mempool.h"

namespace xsw {

// One gntalloc allocation holding the gref list that describes another one.
struct GrefList {
  GrantAllocation pages;
  // The value of a `*_gref` key: the list pages' grefs, comma-separated.
  std::string Key() const;
};

class FrontPool {
 public:
  // Allocates ceil(nb_mbuf / bufs_per_page) data pages in one allocation and
  // the gref-list pages describing them in a second one. Throws SysError
  // (ENOSPC at the gntalloc limit, with a sentence saying how to raise it)
  // or std::invalid_argument for a bad nb_mbuf.
  FrontPool(std::shared_ptr<GrantProvider> grants, uint32_t nb_mbuf, domid_t backend);
  ~FrontPool();
  FrontPool(const FrontPool&) = delete;
  FrontPool& operator=(const FrontPool&) = delete;

  const MempoolLayout& layout() const { return layout_; }
  uint8_t* base() const { return data_.addr; }
  // M_mempool_va: the pool's address in this process, "0x" + lower-case hex.
  std::string VaKey() const;
  // M_mempool_gref.
  std::string GrefKey() const { return list_.Key(); }
  uint32_t data_pages() const { return data_.pages; }
  const std::vector<grant_ref_t>& data_grefs() const { return data_.grefs; }

  // Hands out the next `count` buffers as one device's slice; false when
  // fewer remain.
  bool TakeSlice(uint32_t count, uint32_t* first);
  uint32_t unassigned() const { return layout_.nb_mbuf - next_free_; }

 private:
  std::shared_ptr<GrantProvider> grants_;
  MempoolLayout layout_;
  GrantAllocation data_;
  GrefList list_;
  uint32_t next_free_ = 0;
};

class FrontRings {
 public:
  // Allocates the TX ring, the RX ring (VringPages(ring_size) pages each,
  // one allocation each), their gref lists, and the flag page with its
  // unmap-notify registered on byte 0. The flag byte starts at 0; SetLive
  // writes 0xA5. Throws like FrontPool.
  FrontRings(std::shared_ptr<GrantProvider> grants, uint32_t ring_size, domid_t backend);
  ~FrontRings();
  FrontRings(const FrontRings&) = delete;
  FrontRings& operator=(const FrontRings&) = delete;

  uint8_t* tx_ring() const { return tx_.addr; }
  uint8_t* rx_ring() const { return rx_.addr; }
  std::string TxGrefKey() const { return tx_list_.Key(); }
  std::string RxGrefKey() const { return rx_list_.Key(); }
  grant_ref_t flag_gref() const { return flag_.grefs.at(0); }

  void SetLive(bool live);
  uint8_t flag() const;

 private:
  std::shared_ptr<GrantProvider> grants_;
  GrantAllocation tx_, rx_, flag_;
  GrefList tx_list_, rx_list_;
};

// Turns a provider's ENOSPC into the sentence a user needs (what was being
// allocated and how to raise the limit on each platform); other errors pass.
[[noreturn]] void RethrowGrantError(const SysError& e, const std::string& what, uint32_t pages,
                                    const char* platform);

}  // namespace xsw
