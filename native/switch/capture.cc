// The capture ring (capture.h) and its pcapng Enhanced Packet Blocks
// (pcapng, IETF draft-ietf-opsawg-pcapng, section 4.3), in host byte order,
// timestamps in nanoseconds (the session's Interface Description Blocks,
// written by the control plane, say if_tsresol = 9).
#include "switch/capture.h"

#include <time.h>

#include <cstring>
#include <stdexcept>

namespace xsw {

namespace {

constexpr uint32_t kEpbType = 6;
constexpr uint16_t kOptEpbFlags = 2;
// type, total length, interface, timestamp (2), captured and original
// lengths; then options (epb_flags: 4 + 4, end of options: 4); then the
// total length again.
constexpr size_t kEpbFixed = 7 * 4 + 8 + 4 + 4;

size_t Pad4(size_t n) { return (n + 3) & ~size_t(3); }

void Put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void Put16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

void Bump(std::atomic<uint64_t>& c) { c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }

}  // namespace

CaptureRing::CaptureRing(uint32_t slots, uint32_t snaplen)
    : mask_(slots - 1), snaplen_(snaplen), stride_((sizeof(SlotHeader) + snaplen + 7) & ~size_t(7)) {
  if (slots < 2 || (slots & (slots - 1)) != 0) throw std::invalid_argument("capture ring slots must be a power of two >= 2");
  if (snaplen < 14) throw std::invalid_argument("capture snaplen must be at least 14");
  mem_.reset(new uint8_t[stride_ * slots]());
}

uint8_t* CaptureRing::Reserve() {
  const uint64_t head = head_.load(std::memory_order_relaxed);
  if (head - tail_.load(std::memory_order_acquire) > mask_) {
    Bump(dropped_);
    return nullptr;
  }
  return Slot(head) + sizeof(SlotHeader);
}

void CaptureRing::Commit(uint16_t iface, CaptureDir dir, uint32_t orig_len, uint32_t cap_len) {
  const uint64_t head = head_.load(std::memory_order_relaxed);
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  SlotHeader h{uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec), orig_len, cap_len < snaplen_ ? cap_len : snaplen_,
               iface, uint8_t(dir)};
  std::memcpy(Slot(head), &h, sizeof h);
  Bump(captured_);
  head_.store(head + 1, std::memory_order_release);
}

size_t CaptureRing::MaxBlockLen() const { return kEpbFixed + Pad4(snaplen_); }

size_t CaptureRing::DrainPcapng(uint8_t* out, size_t out_len, uint32_t max_records, uint32_t* records) {
  uint64_t tail = tail_.load(std::memory_order_relaxed);
  const uint64_t head = head_.load(std::memory_order_acquire);
  size_t used = 0;
  uint32_t n = 0;
  while (tail != head && n < max_records) {
    const uint8_t* slot = Slot(tail);
    SlotHeader h;
    std::memcpy(&h, slot, sizeof h);
    const size_t total = kEpbFixed + Pad4(h.cap_len);
    if (used + total > out_len) break;
    uint8_t* b = out + used;
    std::memset(b, 0, total);
    Put32(b, kEpbType);
    Put32(b + 4, uint32_t(total));
    Put32(b + 8, h.iface);
    Put32(b + 12, uint32_t(h.ts_ns >> 32));
    Put32(b + 16, uint32_t(h.ts_ns));
    Put32(b + 20, h.cap_len);
    Put32(b + 24, h.orig_len);
    std::memcpy(b + 28, slot + sizeof(SlotHeader), h.cap_len);
    uint8_t* opt = b + 28 + Pad4(h.cap_len);
    Put16(opt, kOptEpbFlags);
    Put16(opt + 2, 4);
    Put32(opt + 4, h.dir);
    // opt + 8: opt_endofopt (zeros).
    Put32(b + total - 4, uint32_t(total));
    used += total;
    ++n;
    ++tail;
  }
  tail_.store(tail, std::memory_order_release);
  *records = n;
  return used;
}

}  // namespace xsw
