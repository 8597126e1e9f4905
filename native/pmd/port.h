// The guest's poll-mode driver for one device: a TX and an RX vring (we are
// the driver side) over buffers from a granted mempool. It re-creates DPDK's
// net_xenvirt data path with the wire contract of docs/frontend.md:
//
//  TX: one chain per packet, device-readable. The first descriptor starts at
//      the 10-byte zeroed virtio_net_hdr, which sits in the buffer's headroom
//      right before the frame: {gva(data - 10), 10 + seg_len}; more segments
//      (jumbo) follow with NEXT, {gva(data), seg_len}. The buffers are
//      reclaimed from the used ring; the used length is ignored.
//  RX: chains of rx_segs() device-writable descriptors, each
//      {gva(buf + headroom - 10), 10 + data_room}; the device writes a header
//      then the frame across them and returns used.len = 10 + frame length.
//
// Packets are handles: the index of the first buffer of a chain in this
// port's slice of the pool. Buffer metadata (data offset, length, next) lives
// in private arrays, never in shared memory, so the device cannot corrupt it.
// Everything after construction is data path: no allocation, lock, log or
// exception. One thread drives a port at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "abi/abi.h"
#include "shm/mempool.h"
#include "shm/vring.h"
#include "grant/evtchn.h"

namespace xsw {

constexpr uint32_t kNoBuf = 0xFFFFFFFFu;

// Counters of one device. One writer (whoever drives the port), any number of
// readers: plain relaxed 64-bit atomics, bumped once per burst.
struct FrontStats {
  std::atomic<uint64_t> rx_packets{0}, rx_bytes{0}, rx_dropped{0};
  std::atomic<uint64_t> tx_packets{0}, tx_bytes{0}, tx_dropped{0};
  std::atomic<uint64_t> rx_nombuf{0};        // RX refills that found no free buffer
  std::atomic<uint64_t> rx_bad{0};           // --verify: not a valid test frame
  std::atomic<uint64_t> rx_out_of_order{0};  // --verify: sequence number not the expected one
  std::atomic<uint64_t> tx_done{0};          // txonly: 1 once --count frames were sent
  std::atomic<uint64_t> sleeps{0};           // the engine's sleeps on its event channel (adaptive, interrupt)
};

// Single-writer add: no locked read-modify-write on the hot path.
inline void Bump(std::atomic<uint64_t>& c, uint64_t n) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

struct FrontPortConfig {
  uint8_t* pool_base = nullptr;  // this process's mapping of the pool: gva == address
  MempoolLayout layout;
  uint32_t first_buf = 0;        // the port's slice of the pool: [first_buf, first_buf + nb_bufs)
  uint32_t nb_bufs = 0;
  uint8_t* tx_ring = nullptr;    // VringSize(ring_size) bytes each, 4096-aligned
  uint8_t* rx_ring = nullptr;
  uint32_t ring_size = kDefaultRingSize;
  uint32_t max_pkt_len = 0;      // largest frame RX chains must hold; 0 = the data room
};

class FrontPort {
 public:
  // Throws std::invalid_argument with a sentence for people when the
  // configuration is inconsistent (ring size not a power of two, a slice
  // outside the pool, too few buffers to fill the RX ring and one burst...).
  explicit FrontPort(const FrontPortConfig& config);

  // Zeroes both rings and frees every buffer of the slice. Control path.
  void Init();

  // Posts as many RX chains as there are free descriptors and buffers;
  // publishes once. Returns the chains posted.
  uint32_t RefillRx();

  // Takes up to max (<= kBurst) received frames into pkts, then refills.
  // Runt frames (shorter than an Ethernet header) are dropped and counted.
  uint32_t RxBurst(uint32_t* pkts, uint32_t max);

  // Reclaims completed TX chains, then queues pkts[0..n) in order until the
  // ring is full; publishes once. Returns how many were queued: the ring now
  // owns those; pkts[sent..n) still belong to the caller. Counts tx_packets
  // and tx_bytes (drops are the caller's decision).
  uint32_t TxBurst(const uint32_t* pkts, uint32_t n);

  // Returns the buffers of completed TX chains to the free stack.
  uint32_t ReclaimTx();

  // TX descriptors free right now (after ReclaimTx).
  uint32_t TxFreeDescs() const { return tx_.FreeDescs(); }

  // A packet of `len` bytes (1 <= len <= kMaxFrameLen) in ceil(len /
  // data_room) buffers, data at each buffer's headroom. False when the pool
  // slice has too few free buffers.
  bool Alloc(uint32_t len, uint32_t* pkt);
  // Up to n (<= kBurst) such packets into pkts, as many as the pool gives;
  // one-buffer packets come off the free stack in one pop. Returns how many.
  uint32_t AllocBurst(uint32_t len, uint32_t* pkts, uint32_t n);
  // Returns every buffer of the packet's chain.
  void Free(uint32_t pkt);
  // Frees n (<= kBurst) packets; one-buffer packets go back in one push.
  void FreeBurst(const uint32_t* pkts, uint32_t n);
  // Shortens a packet to len bytes (len <= PktLen), freeing unused segments.
  void Trim(uint32_t pkt, uint32_t len);

  uint32_t PktLen(uint32_t pkt) const { return pkt_len_[pkt]; }
  uint32_t NumSegs(uint32_t pkt) const;
  uint8_t* SegData(uint32_t seg) const { return BufAddr(seg) + off_[seg]; }
  uint32_t SegLen(uint32_t seg) const { return seg_len_[seg]; }
  uint32_t NextSeg(uint32_t seg) const { return next_[seg]; }

  // Gathers up to cap bytes of the packet into dst; returns bytes copied.
  uint32_t CopyOut(uint32_t pkt, uint8_t* dst, uint32_t cap) const;
  // Allocates a packet and scatters len bytes into it; false without buffers.
  bool CopyIn(const uint8_t* src, uint32_t len, uint32_t* pkt);

  uint32_t rx_segs() const { return rx_segs_; }
  uint32_t data_room() const { return data_room_; }
  uint32_t max_pkt_len() const { return max_pkt_len_; }
  uint32_t free_bufs() const { return free_.size(); }
  uint32_t rx_in_flight() const { return rx_.InFlight(); }
  uint32_t tx_in_flight() const { return tx_.InFlight(); }
  uint64_t bad_used() const { return tx_.BadUsed() + rx_.BadUsed(); }
  FrontStats& stats() { return stats_; }

  // Notifications (docs/dataplane.md#notifications). With a kick set, TxBurst
  // notifies `port` when the back end's avail_event asks for it (a sleeping
  // back end), at most once per burst. Not owned; null: never kicks.
  void SetKick(EventChannels* events, evtchn_port_t port) {
    kick_events_ = events;
    kick_port_ = port;
  }
  // Before sleeping: asks the back end to notify on the next received frame
  // and, with tx, once half of the in-flight TX chains completed. True when
  // something is already there (do not sleep).
  bool ArmNotify(bool tx);

 private:
  // MempoolLayout::BufOffset without its division when the buffers per page
  // are a power of two (one, with the default buffer size): this runs
  // several times per frame.
  uint8_t* BufAddr(uint32_t local) const {
    const uint32_t i = first_ + local;
    if (per_page_shift_ < 0) return pool_base_ + layout_.BufOffset(i);
    return pool_base_ + (uint64_t(i >> per_page_shift_) * kPageSize + uint64_t(i & per_page_mask_) * layout_.stride);
  }
  uint64_t Gva(const uint8_t* p) const { return reinterpret_cast<uint64_t>(p); }
  bool AllocChain(uint32_t nseg, uint32_t* head);

  uint8_t* pool_base_;
  MempoolLayout layout_;
  uint32_t first_, nb_bufs_;
  int32_t per_page_shift_ = -1;  // log2(layout_.bufs_per_page), or -1: not a power of two
  uint32_t per_page_mask_ = 0;
  uint32_t data_room_;
  uint32_t max_pkt_len_;
  uint32_t rx_segs_;
  VringDriver tx_, rx_;
  MbufStack free_;
  std::unique_ptr<uint32_t[]> next_;     // next buffer of a chain, kNoBuf at the end
  std::unique_ptr<uint16_t[]> off_;      // data offset from the buffer's start
  std::unique_ptr<uint32_t[]> seg_len_;  // bytes of data in this buffer
  std::unique_ptr<uint32_t[]> pkt_len_;  // at a chain's head: total bytes
  FrontStats stats_;
  EventChannels* kick_events_ = nullptr;
  evtchn_port_t kick_port_ = 0;
};

}  // namespace xsw
