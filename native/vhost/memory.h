// A vhost-user peer's memory table (SET_MEM_TABLE): each region mapped from
// the fd the peer passed, then translated like a Xen guest's mempool regions
// (shm/regions.h): descriptors carry "guest physical" addresses, ring
// addresses (SET_VRING_ADDR) carry the peer's "user" addresses. Control path.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "shm/regions.h"
#include "vhost/protocol.h"

namespace xsw::vhost {

class GuestMemory {
 public:
  GuestMemory() = default;
  ~GuestMemory() { Unmap(); }
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  // Validates and maps `n` regions, fds[i] backing regions[i] (the fds stay
  // the caller's). On failure nothing stays mapped and *why names the region
  // and the fault: a count outside 1..8, an empty or wrapping region,
  // overlapping guest ranges, an fd shorter than mmap_offset + size, or a
  // failed mmap. Replaces (unmaps) any previous table. Each fd is sealed
  // against shrinking where the peer allows it (F_SEAL_SHRINK); every region
  // is also entered in the SIGBUS guard (sigbus_guard.h), which catches a
  // shrink of an unsealable one.
  bool Map(const MemRegion* regions, uint32_t n, const int* fds, std::string* why);
  void Unmap();
  bool mapped() const { return !maps_.empty(); }
  // How many of the mapped regions' fds are sealed against shrinking.
  uint32_t sealed() const { return sealed_; }
  // Raised by the SIGBUS guard when a region's file shrank under its mapping
  // (the region now reads zeros). The switch's device watches it. Cleared by Map.
  const std::atomic<bool>* lost() const { return &lost_; }
  bool truncated() const { return lost_.load(std::memory_order_acquire); }

  // Where [uaddr, uaddr + len) of the peer's user addresses is mapped here,
  // if wholly inside one region; else nullptr.
  uint8_t* FromUser(uint64_t uaddr, uint64_t len) const;
  // The regions as the switch translates descriptors: guest physical -> here.
  std::vector<Region> Regions() const;

 private:
  struct Mapped {
    MemRegion r;
    uint8_t* base;     // the whole mmap (offset 0 of the fd)
    uint64_t map_len;  // mmap_offset + memory_size
    int guard;         // its SIGBUS guard entry
  };
  std::vector<Mapped> maps_;
  uint32_t sealed_ = 0;
  std::atomic<bool> lost_{false};
};

}  // namespace xsw::vhost
