// Legacy split virtqueues over shared memory (native/abi/abi.h layout).
//
// VringDriver is the guest's side (the front end PMD): it owns the descriptor
// table and the avail ring, and keeps its free list and in-flight state in
// private memory, so nothing the device writes can corrupt it.
// VringDevice is dom0's side (the back-end switch): it trusts nothing in the
// ring. It reads the peer's avail index once (acquire) and clamps it, copies
// each descriptor out of shared memory exactly once, validates the copy
// (index, loop, chain length, INDIRECT, direction, region bounds), and only
// then hands out host pointers. A bad ring yields a named Violation.
//
// Ordering: the peer's index is loaded with acquire and ours stored with
// release, once per batch, so producer and consumer may be separate processes
// on separate cores (x86 and arm64).
//
// Constructors and Init/Resume are control path (they may allocate or throw
// std::invalid_argument). Every other method is data path: no allocation, no
// lock, no logging, no exception. Each object is used by one thread.
#pragma once

#include <cstdint>
#include <memory>

#include "abi/abi.h"
#include "shm/regions.h"
#include "shm/violation.h"

namespace xsw {

constexpr uint32_t kMaxChainSegs = 16;        // a 9018-byte jumbo in 2 KiB buffers + a header
constexpr uint32_t kMaxSegmentLen = 65536;    // longer is kLenOverflow

// True when num is a power of two in [1, kMaxRingSize].
bool VringSizeValid(uint32_t num);

// Typed pointers into a ring at `base` (4096-aligned, VringSize(num) bytes).
struct VringView {
  VringDesc* desc = nullptr;
  VringAvail* avail = nullptr;
  VringUsed* used = nullptr;
  uint32_t num = 0;
  static VringView At(uint8_t* base, uint32_t num);
  // A ring whose three parts live at separate addresses (vhost-user's
  // SET_VRING_ADDR); the caller has checked that each part is mapped.
  static VringView Split(uint8_t* desc, uint8_t* avail, uint8_t* used, uint32_t num);
};

// Bytes of each part of a split ring of `num` entries (avail and used with
// their trailing event word).
constexpr uint64_t VringDescBytes(uint32_t num) { return uint64_t(num) * sizeof(VringDesc); }
constexpr uint64_t VringAvailBytes(uint32_t num) { return 6 + 2 * uint64_t(num); }
constexpr uint64_t VringUsedBytes(uint32_t num) { return 6 + 8 * uint64_t(num); }

// virtio's vring_need_event: true when `event` lies in [old, new) modulo 2^16.
constexpr bool VringNeedEvent(uint16_t event, uint16_t new_idx, uint16_t old_idx) {
  return uint16_t(new_idx - event - 1) < uint16_t(new_idx - old_idx);
}

// ---------------------------------------------------------------------------
// Guest side.

struct DriverBuf {
  uint64_t gva;  // what goes into desc.addr
  uint32_t len;
};

struct UsedEntry {
  uint64_t cookie;  // the cookie given to Add
  uint32_t len;     // bytes the device wrote (clamped to the chain's in-buffer total; 0 for out-only chains)
};

class VringDriver {
 public:
  // ring_base: 4096-aligned, VringSize(num) bytes, shared with the device.
  // Throws std::invalid_argument for a bad num or a misaligned base.
  VringDriver(uint8_t* ring_base, uint32_t num);

  // Zeroes the ring memory and makes every descriptor free. Control path.
  void Init();

  uint32_t FreeDescs() const { return num_free_; }
  // Chains added (published or not) and not yet harvested.
  uint32_t InFlight() const { return in_flight_; }
  uint32_t num() const { return view_.num; }

  // Adds one chain: n_out device-readable buffers then n_in device-writable
  // ones (VRING_DESC_F_WRITE). Returns the head descriptor index, or -1 when
  // n_out + n_in is 0 or more than FreeDescs(). Not visible to the device
  // until Publish().
  int Add(const DriverBuf* bufs, uint32_t n_out, uint32_t n_in, uint64_t cookie);

  // Adds up to n one-descriptor chains, bufs[k] with cookie cookies[k], all
  // device-writable or all device-readable: Add's result for each, in one
  // call per burst. Returns how many were added (min(n, FreeDescs())).
  uint32_t AddSingles(const DriverBuf* bufs, const uint32_t* cookies, uint32_t n, bool device_writes);

  // Makes every chain added since the last Publish visible: one release store
  // of avail->idx.
  void Publish();

  // Takes up to `max` completed chains from the used ring (used->idx read
  // once, acquire), returns their descriptors to the free list and writes
  // their cookies and lengths to out. A used entry whose id is not an
  // in-flight head, or a used index claiming more than is in flight, is
  // counted in BadUsed() and skipped, never trusted. Returns the count written.
  uint32_t Harvest(UsedEntry* out, uint32_t max);

  // Used entries from the device that were out of range, not in flight, or
  // claimed more bytes than the chain could hold.
  uint64_t BadUsed() const { return bad_used_; }

  // Event index (virtio's VIRTIO_RING_F_EVENT_IDX on this layout's trailing
  // words; docs/dataplane.md#notifications). Asks for a notification once
  // the device has published `ahead` + 1 more used entries beyond those
  // harvested (used_event), then re-reads used->idx: true when entries are
  // already there, so the caller must not sleep (no lost wake-up).
  bool ArmUsedEvent(uint16_t ahead = 0);
  // After Publish: true when the device's avail_event asked to be kicked for
  // one of the chains published since the last call (one seq_cst fence).
  bool KickNeeded();

 private:
  VringView view_;
  uint32_t mask_;
  uint16_t avail_idx_ = 0;   // our next avail slot (shadow of avail->idx)
  uint16_t published_idx_ = 0;  // avail->idx as last stored by Publish
  uint16_t kicked_idx_ = 0;     // published_idx_ when KickNeeded last looked
  uint16_t last_used_ = 0;   // next used slot to read
  // The free list is FIFO (completed chains go to its tail): while the
  // device completes in order, the descriptor taken for avail slot s is
  // always s mod num, so the avail entry already holds it and is not written
  // again (avail_shadow_), and that line stays in the device's cache.
  uint32_t free_head_ = 0;
  uint32_t free_tail_ = 0;
  uint32_t num_free_ = 0;
  uint32_t in_flight_ = 0;
  uint64_t bad_used_ = 0;
  std::unique_ptr<uint16_t[]> next_;      // private free-list / chain links
  std::unique_ptr<uint64_t[]> cookie_;    // per head
  std::unique_ptr<uint16_t[]> chain_len_; // per head; 0 = not an in-flight head
  std::unique_ptr<uint32_t[]> in_len_;    // per head: sum of device-writable lengths
  std::unique_ptr<uint16_t[]> avail_shadow_;  // what we last wrote in each avail slot (only we write there)
};

// ---------------------------------------------------------------------------
// Device side.

// Which descriptors this ring may carry (legacy virtio-net: the guest's TX
// ring is device-readable only, its RX ring device-writable only).
enum class RingDirection : uint8_t {
  kAny,           // both, out buffers first (kOutAfterIn otherwise)
  kDeviceReads,   // a F_WRITE descriptor is kReadFromWriteOnly
  kDeviceWrites,  // a descriptor without F_WRITE is kWriteToReadOnly
};

struct Segment {
  uint8_t* hva;  // translated, bounds-checked host pointer
  uint32_t len;
  bool device_writable;
};

struct Chain {
  uint16_t head;
  uint16_t nseg;             // 0 only when Pop had nothing to take
  uint32_t out_len, in_len;  // sums of device-readable / device-writable lengths
  Segment seg[kMaxChainSegs];
};

class VringDevice {
 public:
  // ring_base: dom0's mapping of the ring, 4096-aligned; ring_len: the bytes
  // mapped there, which must cover VringSize(num). regions: where descriptor
  // addresses may point; must outlive this object. max_chain_len is clamped
  // to [1, kMaxChainSegs]. Throws std::invalid_argument for a bad num or
  // base, a mapping too short for the ring, or null regions.
  VringDevice(uint8_t* ring_base, uint32_t num, uint64_t ring_len, const RegionTable* regions,
              uint32_t max_chain_len, RingDirection direction = RingDirection::kAny);
  // The same over a split view (VringView::Split) whose parts the caller has
  // bounds-checked; throws std::invalid_argument for a bad num, a null or
  // misaligned part (desc 16, avail 2, used 4 bytes), or null regions.
  VringDevice(const VringView& view, const RegionTable* regions, uint32_t max_chain_len,
              RingDirection direction = RingDirection::kAny);

  // Starts from the ring's own state: last_avail = used->idx, which is also
  // where our used entries continue. Never resets the shared indexes (a
  // restarted back end loses nothing the guest queued). Control path.
  void Resume();

  // Reads avail->idx once (acquire). Sets *count to the chains available
  // beyond those already popped. If the peer claims more than num pending,
  // returns kAvailIdxJump with *count = 0.
  Violation Avail(uint32_t* count);

  // Takes the next available chain (as seen by the last Avail) into *out:
  // every descriptor is loaded once, validated, then translated. Returns
  // kNone with out->nseg = 0 when nothing is available. On a violation
  // nothing is consumed and *out is unspecified: the ring is broken and the
  // caller quarantines the device. A chain that would be longer than the ring
  // necessarily revisits a descriptor and is reported as kChainLoop.
  Violation Pop(Chain* out);

  // Gives back the last `count` chains popped, which the caller has neither
  // written nor pushed used: the next Pop reads them from the ring again and
  // validates them afresh, as if they had never been popped.
  void Unpop(uint32_t count) { last_avail_ = uint16_t(last_avail_ - count); }

  // Prefetches the descriptors of the next `count` chains (as seen by the
  // last Avail): a hint only, the avail slots read here decide nothing
  // (besides PrefetchAvail's next guess).
  void PrefetchDescs(uint32_t count);

  // Prefetches avail->idx and the avail slots of the next `count` chains,
  // whether or not the peer has filled them yet: their addresses follow from
  // our own position, so the prefetch waits for no load (the first stage of
  // a burst, overlapped with the other ring's misses). While the last burst
  // PrefetchDescs saw began with a head at its own slot's index (an in-order
  // driver such as DPDK's virtio_user puts chain k in descriptor k), the
  // descriptors at the same indexes too: a guess, which decides nothing.
  void PrefetchAvail(uint32_t count) const;

  // Prefetches, for writing, the used entries the next `count` PushUsed will write.
  void PrefetchUsed(uint32_t count) const;

  // Writes one used element (head, bytes written) after the last one; not
  // visible until PublishUsed.
  void PushUsed(uint16_t head, uint32_t len);

  // One release store of used->idx for everything pushed since the last call.
  void PublishUsed();

  // True unless the driver set VRING_AVAIL_F_NO_INTERRUPT: it wants a call
  // (an interrupt, an eventfd write) after used entries are published.
  bool WantsCall() const;
  // The same without the fence: for a caller that published several rings'
  // used indexes and then issued one StoreLoadFence (shm/prefetch.h) for all.
  bool WantsCallFenced() const {
    return (__atomic_load_n(&view_.avail->flags, __ATOMIC_RELAXED) & VRING_AVAIL_F_NO_INTERRUPT) == 0;
  }

  // Event index, the device's half. Asks the driver to kick for the next
  // chain it publishes (avail_event = what we popped), then re-reads
  // avail->idx: true when chains are already there (do not sleep).
  bool ArmAvailEvent();

  // For a driver without the event index (vhost-user's virtio_user, which
  // reads used->flags instead): sets VRING_USED_F_NO_NOTIFY now, so that a
  // driver whose ring we poll makes no kick syscall per burst; ArmAvailEvent
  // clears it (the data thread is about to sleep and wants kicks) and the
  // next Avail sets it again. Control path, before the data thread uses the
  // ring. The flag is only advice to the peer: whatever it writes there
  // changes nothing on our side.
  void UseNoNotifyFlag();
  // After PublishUsed: true when the driver's used_event falls among the
  // entries published since the last call. used_event is the peer's word:
  // any value only decides whether the peer itself is notified.
  bool CallNeeded();

  uint16_t LastAvail() const { return last_avail_; }
  uint16_t UsedIdx() const { return used_idx_; }
  uint32_t num() const { return view_.num; }

 private:
  VringView view_;
  uint32_t mask_;
  const RegionTable* regions_;
  uint32_t max_chain_;
  RingDirection direction_;
  uint16_t last_avail_ = 0;  // next avail slot to pop
  uint16_t avail_seen_ = 0;  // avail->idx as read (and checked) by the last Avail
  uint16_t used_idx_ = 0;    // our next used slot (shadow of used->idx)
  uint16_t called_idx_ = 0;  // used_idx_ when CallNeeded last looked
  uint32_t generation_ = 0;  // per-chain stamp for loop detection (chains of two or more descriptors)
  uint32_t region_hint_ = 0; // the region the last descriptor was in (RegionTable::TranslateHinted)
  bool heads_at_slots_ = false;  // PrefetchDescs' last burst began with head == its avail slot
  bool no_notify_flag_ = false;  // UseNoNotifyFlag was called
  bool kicks_armed_ = false;     // ArmAvailEvent cleared NO_NOTIFY; the next Avail sets it
  std::unique_ptr<uint32_t[]> stamp_;  // per descriptor: generation that last visited it
};


// The per-loop and per-frame calls, inline: each is a few instructions.

namespace vring_detail {
using SharedU32 = uint32_t __attribute__((may_alias));  // the ring is raw bytes to us
}

inline Violation VringDevice::Avail(uint32_t* count) {
  if (kicks_armed_) {  // awake again after ArmAvailEvent: polling, no kicks wanted
    kicks_armed_ = false;
    __atomic_store_n(&view_.used->flags, VRING_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
  }
  uint16_t idx = __atomic_load_n(&view_.avail->idx, __ATOMIC_ACQUIRE);
  uint32_t pending = uint16_t(idx - last_avail_);
  if (pending > view_.num) {
    *count = 0;
    return Violation::kAvailIdxJump;
  }
  avail_seen_ = idx;
  *count = pending;
  return Violation::kNone;
}

inline void VringDevice::PushUsed(uint16_t head, uint32_t len) {
  VringUsedElem* e = &view_.used->ring[used_idx_ & mask_];
  __atomic_store_n(reinterpret_cast<vring_detail::SharedU32*>(&e->id), uint32_t(head), __ATOMIC_RELAXED);
  __atomic_store_n(reinterpret_cast<vring_detail::SharedU32*>(&e->len), len, __ATOMIC_RELAXED);
  ++used_idx_;
}

inline void VringDevice::PublishUsed() { __atomic_store_n(&view_.used->idx, used_idx_, __ATOMIC_RELEASE); }

}  // namespace xsw
