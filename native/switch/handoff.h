// Frames handed from one data thread to another (docs/dataplane.md#more-than-one-core).
//
// With several data threads each device (and the NIC) belongs to one thread.
// A frame whose destination belongs to another thread is popped, validated
// and classified by its source's thread as usual (its header copied
// privately), then handed over as a Handoff: the validated segments of the
// source's TX chain, never the frame's bytes. The destination's thread pops
// its RX chain, copies the frame once from the source's buffer and sends a
// HandoffDone back; only then does the source's thread give the TX chain
// back to its guest (used entries may come back out of order: every driver
// here finds its chain by the used entry's id, and vhost-user peers are not
// offered VIRTIO_F_IN_ORDER with more than one thread, Switch::RingsInOrder). Per (source thread,
// destination thread) there is one ring each way, each with one producer and
// one consumer: no lock, one release store per record.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/ethernet.h"
#include "shm/vring.h"

namespace xsw {

constexpr uint32_t kMaxDataThreads = 16;
constexpr uint32_t kHandoffRing = 128;  // records in flight per pair of threads (4 bursts)
constexpr uint16_t kHandoffNic = 0xFFFF;    // Handoff::src/dst: the NIC
constexpr uint16_t kHandoffGroup = 0xFFFE;  // Handoff::dst: every member of the frame's network on that thread

struct Handoff {
  uint16_t src;         // the source's slot, or kHandoffNic
  uint16_t dst;         // a slot, kHandoffNic or kHandoffGroup
  uint32_t src_gen, dst_gen;  // the devices' generations (Snapshot::gen): a slot reused meanwhile does not match
  uint16_t head;        // the source's TX chain (given back on completion)
  uint16_t network;     // group frames from a guest: its network
  uint16_t vlan;        // group frames from the NIC: their VLAN
  uint16_t nseg;
  uint32_t offset, len;  // the body: len bytes from offset of seg
  uint8_t hdr[kEthHdrLen];  // the private header copy
  Segment seg[kMaxChainSegs];
};

struct HandoffDone {
  uint16_t src;
  uint16_t head;
  uint32_t src_gen;
  uint32_t bytes;  // the frame's length (header included)
  bool delivered;  // copied into at least one destination
};

// A single-producer single-consumer ring of N (a power of two) records.
// The producer fills Slot() then Push()es; the consumer reads Front() then Pop()s.
template <typename T, uint32_t N>
class SpscRing {
  static_assert((N & (N - 1)) == 0, "N must be a power of two");

 public:
  bool Full() const { return head_ - tail_.load(std::memory_order_acquire) == N; }
  T& Slot() { return items_[head_ & (N - 1)]; }
  void Push() { head_pub_.store(++head_, std::memory_order_release); }
  bool Empty() const { return tail_.load(std::memory_order_relaxed) == head_pub_.load(std::memory_order_acquire); }
  const T& Front() const { return items_[tail_.load(std::memory_order_relaxed) & (N - 1)]; }
  void Pop() { tail_.store(tail_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

 private:
  alignas(64) std::atomic<uint32_t> head_pub_{0};
  uint32_t head_ = 0;  // producer only
  alignas(64) std::atomic<uint32_t> tail_{0};
  alignas(64) T items_[N];
};

// Thread i to thread j: frames one way, completions the other. in_flight is
// the producer's own count of frames not completed yet: it never lets more
// than kHandoffRing be out, so the completion ring cannot overflow.
struct HandoffLink {
  SpscRing<Handoff, kHandoffRing> frames;
  SpscRing<HandoffDone, kHandoffRing> done;
  uint32_t in_flight = 0;  // thread i only
};

}  // namespace xsw
