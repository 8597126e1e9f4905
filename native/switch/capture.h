// Live capture (`xsw-ctl capture`, docs/operations.md): one bounded ring of
// frame copies per capture session, filled by the data thread and drained
// by the control thread as pcapng Enhanced Packet Blocks.
//
// The ring is single-producer (the switch has one data thread, whichever
// ports of the session it copies from) and single-consumer (the control
// thread). Its memory is allocated once, when the session starts; a frame
// that finds it full is counted in dropped() and switching goes on: capture
// never holds a frame back. Each slot keeps the first snaplen bytes of a
// frame, its length on the wire, a timestamp, the session's interface index
// of the port and the direction as the switch port sees it (pcapng epb_flags:
// inbound = the guest or the NIC sent it to the switch; outbound = the
// switch delivered it there).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace xsw {

enum class CaptureDir : uint8_t { kInbound = 1, kOutbound = 2 };

class CaptureRing {
 public:
  // slots: a power of two >= 2; snaplen: bytes kept per frame, >= 14.
  // Throws std::invalid_argument otherwise.
  CaptureRing(uint32_t slots, uint32_t snaplen);
  CaptureRing(const CaptureRing&) = delete;
  CaptureRing& operator=(const CaptureRing&) = delete;

  uint32_t snaplen() const { return snaplen_; }
  uint32_t slots() const { return mask_ + 1; }

  // Data thread. The buffer (snaplen bytes) for the next frame, or nullptr
  // when the ring is full (the frame is counted as dropped). A non-null
  // Reserve must be followed by Commit before the next Reserve.
  uint8_t* Reserve();
  // Publishes the reserved frame: cap_len bytes were written, orig_len is
  // its length on the wire. Timestamps it (CLOCK_REALTIME, ns).
  void Commit(uint16_t iface, CaptureDir dir, uint32_t orig_len, uint32_t cap_len);

  // Control thread. Writes pcapng EPBs for up to max_records frames into
  // out (never more than out_len bytes; a frame that does not fit waits for
  // the next call); returns the bytes written and, in *records, how many.
  size_t DrainPcapng(uint8_t* out, size_t out_len, uint32_t max_records, uint32_t* records);
  // The bytes one frame's EPB takes at most (for the drain's buffer).
  size_t MaxBlockLen() const;

  uint64_t captured() const { return captured_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  struct SlotHeader {
    uint64_t ts_ns;
    uint32_t orig_len;
    uint32_t cap_len;
    uint16_t iface;
    uint8_t dir;
  };
  uint8_t* Slot(uint64_t i) const { return mem_.get() + (i & mask_) * stride_; }

  const uint32_t mask_;
  const uint32_t snaplen_;
  const size_t stride_;
  std::unique_ptr<uint8_t[]> mem_;
  alignas(64) std::atomic<uint64_t> head_{0};  // written by the producer
  std::atomic<uint64_t> captured_{0}, dropped_{0};
  alignas(64) std::atomic<uint64_t> tail_{0};  // written by the consumer
};

}  // namespace xsw
