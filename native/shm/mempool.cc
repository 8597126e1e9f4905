#include "shm/mempool.h"

namespace xsw {

std::optional<MempoolLayout> MempoolLayout::Make(uint32_t nb_mbuf, uint32_t buf_size) {
  if (nb_mbuf == 0 || buf_size == 0 || buf_size > kPageSize) return std::nullopt;
  MempoolLayout l;
  l.nb_mbuf = nb_mbuf;
  l.buf_size = buf_size;
  l.stride = uint32_t(AlignUp(buf_size, kMbufAlign));
  if (l.stride > kPageSize) l.stride = kPageSize;  // buf_size in (4032, 4096]: one per page
  l.bufs_per_page = kPageSize / l.stride;
  uint64_t pages = (uint64_t(nb_mbuf) + l.bufs_per_page - 1) / l.bufs_per_page;
  if (pages > kMaxGrefListEntries) return std::nullopt;
  l.pages = uint32_t(pages);
  return l;
}

int64_t MempoolLayout::BufIndex(uint64_t offset) const {
  if (offset >= Bytes()) return -1;
  uint64_t page = offset / kPageSize;
  uint64_t in_page = offset % kPageSize;
  uint64_t slot = in_page / stride;
  if (slot >= bufs_per_page || in_page % stride >= buf_size) return -1;
  uint64_t i = page * bufs_per_page + slot;
  return i < nb_mbuf ? int64_t(i) : -1;
}

MbufStack::MbufStack(uint32_t capacity)
    : capacity_(capacity), stack_(new uint32_t[capacity]), is_free_(new uint8_t[capacity]()) {}

void MbufStack::FillAll() {
  top_ = 0;
  for (uint32_t i = capacity_; i-- > 0;) {
    stack_[top_++] = i;
    is_free_[i] = 1;
  }
}

bool MbufStack::Push(uint32_t idx) {
  if (idx >= capacity_ || is_free_[idx]) return false;
  is_free_[idx] = 1;
  stack_[top_++] = idx;
  return true;
}

bool MbufStack::Pop(uint32_t* idx) {
  if (top_ == 0) return false;
  *idx = stack_[--top_];
  is_free_[*idx] = 0;
  return true;
}

// The burst forms keep the members in locals: the byte stores to is_free_
// may alias anything to the compiler, which would reload them every index.
uint32_t MbufStack::PopBurst(uint32_t* out, uint32_t n) {
  uint32_t top = top_;
  const uint32_t k = n < top ? n : top;
  const uint32_t* const stack = stack_.get();
  uint8_t* const is_free = is_free_.get();
  for (uint32_t i = 0; i < k; ++i) {
    const uint32_t idx = stack[--top];
    out[i] = idx;
    is_free[idx] = 0;
  }
  top_ = top;
  return k;
}

uint32_t MbufStack::PushBurst(const uint32_t* idx, uint32_t n) {
  uint32_t top = top_;
  const uint32_t capacity = capacity_;
  uint32_t* const stack = stack_.get();
  uint8_t* const is_free = is_free_.get();
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t b = idx[i];
    if (b >= capacity || is_free[b]) continue;  // out of range or already free: skipped, as Push does
    is_free[b] = 1;
    stack[top++] = b;
  }
  const uint32_t accepted = top - top_;
  top_ = top;
  return accepted;
}

}  // namespace xsw
