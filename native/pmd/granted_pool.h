// FrontPool: the granted mempool of xsw-front. Its data pages and the
// gref-list pages describing them are allocated through a GrantProvider
// (gntalloc or the sim) and granted writable to the back end's domain, as
// DPDK's xenvirt did; each device takes a slice of its buffers. The object
// only owns memory; XenStore publication is the TypeScript side's job
// (frontend/publish.ts), with the values exposed here. Control path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "grant/provider.h"
#include "pmd/grant_pages.h"
#include "shm/mempool.h"

namespace xsw {

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

  // The provider the pool was granted through; a device's rings use it too.
  const std::shared_ptr<GrantProvider>& grants() const { return grants_; }
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
  GrantedGrefList list_;
  uint32_t next_free_ = 0;
};

}  // namespace xsw
