// Mempool layout shared by front end and back end: mbuf buffers carved out of
// granted 4 KiB pages, packed from each page's start, never straddling a page
// (like DPDK's mempool with pg_shift = 12). With the default buffer size
// (128 headroom + 2048 data room = 2176 bytes) that is one buffer per page.
//
// Also the front end's free stack of buffer indexes: guest-private memory,
// allocated once at construction, no allocation per operation.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "abi/abi.h"

namespace xsw {

constexpr uint32_t kMbufHeadroom = 128;
constexpr uint32_t kMbufDataRoom = 2048;
constexpr uint32_t kDefaultMbufBufSize = kMbufHeadroom + kMbufDataRoom;  // 2176
constexpr uint32_t kMbufAlign = 64;  // buffers start on a cache line

struct MempoolLayout {
  uint32_t nb_mbuf = 0;
  uint32_t buf_size = 0;       // headroom + data room, as asked
  uint32_t stride = 0;         // buf_size rounded up to kMbufAlign
  uint32_t bufs_per_page = 0;  // 4096 / stride
  uint32_t pages = 0;          // ceil(nb_mbuf / bufs_per_page)

  // The layout for nb_mbuf buffers of buf_size bytes, or nullopt when nb_mbuf
  // is 0, buf_size is 0 or > 4096, or more than kMaxGrefListEntries pages
  // (what one gref list can describe) would be needed.
  static std::optional<MempoolLayout> Make(uint32_t nb_mbuf, uint32_t buf_size = kDefaultMbufBufSize);

  // Byte offset of buffer i (i < nb_mbuf) from the pool's first page.
  uint64_t BufOffset(uint32_t i) const {
    return uint64_t(i / bufs_per_page) * kPageSize + uint64_t(i % bufs_per_page) * stride;
  }
  // Index of the buffer whose [offset, offset + buf_size) holds byte `offset`,
  // or -1 when it falls in a page's tail gap, a stride gap, or past the pool.
  int64_t BufIndex(uint64_t offset) const;
  // Total bytes of the pool's pages.
  uint64_t Bytes() const { return uint64_t(pages) * kPageSize; }
};

// LIFO of free buffer indexes 0..capacity-1. Rejects an index out of range or
// already free (a double free), so a bug cannot hand one buffer out twice.
class MbufStack {
 public:
  // Allocates state for `capacity` indexes; starts empty. Control path.
  explicit MbufStack(uint32_t capacity);
  // Pushes 0..capacity-1 (all free), so the first Pop returns 0.
  void FillAll();
  // Returns false (and changes nothing) for idx >= capacity or idx already free.
  bool Push(uint32_t idx);
  // Returns false when empty.
  bool Pop(uint32_t* idx);
  // Pops min(n, size()) indexes into out; returns how many.
  uint32_t PopBurst(uint32_t* out, uint32_t n);
  // Pushes each index; returns how many were accepted (bad ones are skipped).
  uint32_t PushBurst(const uint32_t* idx, uint32_t n);
  uint32_t size() const { return top_; }
  uint32_t capacity() const { return capacity_; }

 private:
  uint32_t capacity_;
  uint32_t top_ = 0;
  std::unique_ptr<uint32_t[]> stack_;
  std::unique_ptr<uint8_t[]> is_free_;
};

}  // namespace xsw
