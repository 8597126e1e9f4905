#include "shm/vring.h"

#include "shm/prefetch.h"

#include <cstring>
#include <stdexcept>
#include <string>

namespace xsw {

namespace {

// Shared-memory words are read through these so that one load is one load:
// the compiler may neither split nor repeat it (the peer may change the
// memory between two reads). may_alias: the ring is raw bytes to us.
using SharedU64 = uint64_t __attribute__((may_alias));
using SharedU32 = uint32_t __attribute__((may_alias));

uint64_t LoadOnce(const SharedU64* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
uint32_t LoadOnce(const SharedU32* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

// Returns num - 1 (the index mask) or throws for a ring we cannot use.
uint32_t CheckRing(uint8_t* base, uint32_t num) {
  if (!VringSizeValid(num)) {
    throw std::invalid_argument("vring size " + std::to_string(num) +
                                " is not a power of two between 1 and 32768: pick e.g. 256");
  }
  if (base == nullptr || reinterpret_cast<uintptr_t>(base) % kVringAlign != 0) {
    throw std::invalid_argument("vring memory is not 4096-byte aligned: map whole pages for the ring");
  }
  return num - 1;
}

// The same for dom0's mapping of a guest's ring: its `len` bytes must hold the whole layout.
uint32_t CheckRing(uint8_t* base, uint32_t num, uint64_t len) {
  uint32_t mask = CheckRing(base, num);
  if (len < VringSize(num)) {
    throw std::invalid_argument("a vring of " + std::to_string(num) + " entries needs " +
                                std::to_string(VringSize(num)) + " bytes but only " + std::to_string(len) +
                                " are mapped: map all " + std::to_string(VringPages(num)) + " of its pages");
  }
  return mask;
}

}  // namespace

bool VringSizeValid(uint32_t num) { return num != 0 && num <= kMaxRingSize && (num & (num - 1)) == 0; }

VringView VringView::At(uint8_t* base, uint32_t num) {
  VringView v;
  v.desc = reinterpret_cast<VringDesc*>(base);
  v.avail = reinterpret_cast<VringAvail*>(base + VringAvailOffset(num));
  v.used = reinterpret_cast<VringUsed*>(base + VringUsedOffset(num));
  v.num = num;
  return v;
}

VringView VringView::Split(uint8_t* desc, uint8_t* avail, uint8_t* used, uint32_t num) {
  VringView v;
  v.desc = reinterpret_cast<VringDesc*>(desc);
  v.avail = reinterpret_cast<VringAvail*>(avail);
  v.used = reinterpret_cast<VringUsed*>(used);
  v.num = num;
  return v;
}

// ---------------------------------------------------------------------------
// Driver (guest side).

VringDriver::VringDriver(uint8_t* ring_base, uint32_t num)
    : mask_(CheckRing(ring_base, num)),
      next_(new uint16_t[num + 1]),  // [num]: Harvest's spare tail of an empty free list
      cookie_(new uint64_t[num]()),
      chain_len_(new uint16_t[num]()),
      in_len_(new uint32_t[num]()),
      avail_shadow_(new uint16_t[num]) {
  view_ = VringView::At(ring_base, num);
  for (uint32_t i = 0; i < num; ++i) {
    next_[i] = uint16_t(i + 1);
    avail_shadow_[i] = 0xFFFF;  // no head (num <= 32768): the first Add writes every slot
  }
  free_tail_ = num - 1;
  num_free_ = num;
}

void VringDriver::Init() {
  uint32_t num = view_.num;
  std::memset(view_.desc, 0, VringSize(num));
  for (uint32_t i = 0; i < num; ++i) {
    next_[i] = uint16_t(i + 1);
    chain_len_[i] = 0;
    avail_shadow_[i] = 0;  // the ring was just zeroed
  }
  free_head_ = 0;
  free_tail_ = num - 1;
  num_free_ = num;
  in_flight_ = 0;
  avail_idx_ = 0;
  published_idx_ = 0;
  kicked_idx_ = 0;
  last_used_ = 0;
}

namespace {
// Writes an avail entry unless it already holds head (the shadow is ours:
// the device only reads the avail ring, and one that writes there misleads
// only itself).
inline void PutAvail(uint16_t* ring, uint16_t* shadow, uint32_t slot, uint16_t head) {
  if (shadow[slot] != head) {
    shadow[slot] = head;
    ring[slot] = head;
  }
}
}  // namespace

int VringDriver::Add(const DriverBuf* bufs, uint32_t n_out, uint32_t n_in, uint64_t cookie) {
  uint64_t n = uint64_t(n_out) + n_in;
  if (n == 0 || n > num_free_) return -1;
  uint32_t head = free_head_;
  uint32_t i = head;
  uint64_t in_len = 0;
  for (uint32_t k = 0; k < n; ++k) {
    bool last = k + 1 == n;
    bool device_writes = k >= n_out;
    VringDesc& d = view_.desc[i];
    d.addr = bufs[k].gva;
    d.len = bufs[k].len;
    d.flags = uint16_t((device_writes ? VRING_DESC_F_WRITE : 0) | (last ? 0 : VRING_DESC_F_NEXT));
    d.next = last ? 0 : next_[i];
    if (device_writes) in_len += bufs[k].len;
    i = next_[i];  // after the last one, this is the new free-list head
  }
  free_head_ = i;
  num_free_ -= uint32_t(n);
  cookie_[head] = cookie;
  chain_len_[head] = uint16_t(n);
  in_len_[head] = in_len > UINT32_MAX ? UINT32_MAX : uint32_t(in_len);
  PutAvail(view_.avail->ring, avail_shadow_.get(), avail_idx_ & mask_, uint16_t(head));
  ++avail_idx_;
  ++in_flight_;
  return int(head);
}

uint32_t VringDriver::AddSingles(const DriverBuf* bufs, const uint32_t* cookies, uint32_t n, bool device_writes) {
  if (n > num_free_) n = num_free_;
  const uint16_t flags = device_writes ? VRING_DESC_F_WRITE : 0;
  // Locals: the stores below may alias the members to the compiler.
  VringDesc* const desc = view_.desc;
  uint16_t* const ring = view_.avail->ring;
  uint16_t* const shadow = avail_shadow_.get();
  const uint16_t* const next = next_.get();
  uint64_t* const cookie = cookie_.get();
  uint16_t* const chain_len = chain_len_.get();
  uint32_t* const in_len = in_len_.get();
  const uint32_t mask = mask_;
  uint32_t i = free_head_;
  uint16_t slot = avail_idx_;
  for (uint32_t k = 0; k < n; ++k, ++slot) {
    VringDesc& d = desc[i];
    d.addr = bufs[k].gva;
    d.len = bufs[k].len;
    d.flags = flags;
    d.next = 0;
    cookie[i] = cookies[k];
    chain_len[i] = 1;
    in_len[i] = device_writes ? bufs[k].len : 0;
    PutAvail(ring, shadow, slot & mask, uint16_t(i));
    i = next[i];
  }
  free_head_ = i;
  num_free_ -= n;
  avail_idx_ = slot;
  in_flight_ += n;
  return n;
}

void VringDriver::Publish() {
  __atomic_store_n(&view_.avail->idx, avail_idx_, __ATOMIC_RELEASE);
  published_idx_ = avail_idx_;
}

namespace {
// The trailing event words: used_event after the avail ring, avail_event after the used ring.
uint16_t* UsedEventWord(const VringView& v) { return &v.avail->ring[v.num]; }
uint16_t* AvailEventWord(const VringView& v) {
  return reinterpret_cast<uint16_t*>(&v.used->ring[v.num]);
}
}  // namespace

bool VringDriver::ArmUsedEvent(uint16_t ahead) {
  __atomic_store_n(UsedEventWord(view_), uint16_t(last_used_ + ahead), __ATOMIC_RELAXED);
  // The store must be visible before we look at used->idx again (the device
  // publishes, then reads used_event: one of us sees the other).
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return __atomic_load_n(&view_.used->idx, __ATOMIC_ACQUIRE) != last_used_;
}

bool VringDriver::KickNeeded() {
  const uint16_t old = kicked_idx_;
  kicked_idx_ = published_idx_;
  if (old == published_idx_) return false;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);  // avail->idx stored before avail_event is read
  const uint16_t event = __atomic_load_n(AvailEventWord(view_), __ATOMIC_RELAXED);
  return VringNeedEvent(event, published_idx_, old);
}

uint32_t VringDriver::Harvest(UsedEntry* out, uint32_t max) {
  uint16_t used_idx = __atomic_load_n(&view_.used->idx, __ATOMIC_ACQUIRE);
  uint32_t pending = uint16_t(used_idx - last_used_);
  // Only published chains can be completed; the device claiming more is lying.
  uint32_t published_in_flight = in_flight_ - uint16_t(avail_idx_ - published_idx_);
  if (pending > published_in_flight) {
    ++bad_used_;
    pending = published_in_flight;
  }
  // Locals, so that the stores below (which may alias anything to the
  // compiler) do not reload the members every entry. An empty free list gets
  // the spare link next_[num] as its tail, so appending needs no branch.
  const VringUsedElem* ring = view_.used->ring;
  const uint32_t num = view_.num, mask = mask_;
  uint16_t* const next = next_.get();
  uint16_t* const chain_len = chain_len_.get();
  const uint32_t* const in_len = in_len_.get();
  const uint64_t* const cookie = cookie_.get();
  const uint16_t first = last_used_, end = uint16_t(first + pending);
  // The entries' lines were written by the device on another CPU: ask for
  // all of them now, so that their transfers overlap instead of following
  // one another as the loop reaches each line (8 entries per 64 bytes).
  const uint32_t want = pending < max ? pending : max;
  for (uint32_t i = 0; i < want; i += 8) PrefetchForRead(&ring[uint16_t(first + i) & mask]);
  if (want > 1) PrefetchForRead(&ring[uint16_t(first + want - 1) & mask].len);
  uint16_t slot = first;
  uint32_t written = 0, freed = 0;
  uint32_t free_tail = num_free_ == 0 ? num : free_tail_;
  for (; slot != end && written < max; ++slot) {
    const VringUsedElem* e = &ring[slot & mask];
    const uint32_t id = LoadOnce(reinterpret_cast<const SharedU32*>(&e->id));
    uint32_t len = LoadOnce(reinterpret_cast<const SharedU32*>(&e->len));
    const uint32_t n = id < num ? chain_len[id] : 0;
    if (n == 0) {
      ++bad_used_;  // not a head we have in flight: never trust it
      continue;
    }
    // The chain goes to the free list's tail (FIFO; see free_head_).
    next[free_tail] = uint16_t(id);
    free_tail = id;
    for (uint32_t k = 1; k < n; ++k) free_tail = next[free_tail];
    freed += n;
    chain_len[id] = 0;
    const uint32_t cap = in_len[id];
    if (len > cap) {
      if (cap != 0) ++bad_used_;
      len = cap;
    }
    out[written++] = UsedEntry{cookie[id], len};
  }
  last_used_ = slot;
  if (freed != 0) {
    if (num_free_ == 0) free_head_ = next[num];
    free_tail_ = free_tail;
  }
  num_free_ += freed;
  in_flight_ -= written;
  return written;
}

// ---------------------------------------------------------------------------
// Device (dom0 side).

VringDevice::VringDevice(uint8_t* ring_base, uint32_t num, uint64_t ring_len, const RegionTable* regions,
                         uint32_t max_chain_len, RingDirection direction)
    : mask_(CheckRing(ring_base, num, ring_len)),
      regions_(regions),
      max_chain_(max_chain_len < 1 ? 1 : max_chain_len > kMaxChainSegs ? kMaxChainSegs : max_chain_len),
      direction_(direction),
      stamp_(new uint32_t[num]()) {
  if (regions == nullptr) throw std::invalid_argument("a vring device needs a region table");
  view_ = VringView::At(ring_base, num);
  Resume();
}

VringDevice::VringDevice(const VringView& view, const RegionTable* regions, uint32_t max_chain_len,
                         RingDirection direction)
    : mask_(view.num - 1),
      regions_(regions),
      max_chain_(max_chain_len < 1 ? 1 : max_chain_len > kMaxChainSegs ? kMaxChainSegs : max_chain_len),
      direction_(direction) {
  if (!VringSizeValid(view.num)) {
    throw std::invalid_argument("vring size " + std::to_string(view.num) +
                                " is not a power of two between 1 and 32768: pick e.g. 256");
  }
  auto aligned = [](const void* p, uintptr_t a) { return p != nullptr && reinterpret_cast<uintptr_t>(p) % a == 0; };
  if (!aligned(view.desc, 16) || !aligned(view.avail, 2) || !aligned(view.used, 4)) {
    throw std::invalid_argument("a split vring's descriptor table, avail ring or used ring is null or misaligned: "
                                "align them to 16, 2 and 4 bytes");
  }
  if (regions == nullptr) throw std::invalid_argument("a vring device needs a region table");
  stamp_.reset(new uint32_t[view.num]());
  view_ = view;
  Resume();
}

void VringDevice::Resume() {
  used_idx_ = __atomic_load_n(&view_.used->idx, __ATOMIC_ACQUIRE);
  last_avail_ = used_idx_;
  avail_seen_ = used_idx_;
  called_idx_ = used_idx_;
  generation_ = 0;
  std::memset(stamp_.get(), 0, sizeof(uint32_t) * view_.num);
}


Violation VringDevice::Pop(Chain* out) {
  out->nseg = 0;
  if (last_avail_ == avail_seen_) return Violation::kNone;
  uint32_t idx = __atomic_load_n(&view_.avail->ring[last_avail_ & mask_], __ATOMIC_RELAXED);
  if (idx >= view_.num) return Violation::kDescIndex;
  out->head = uint16_t(idx);
  out->out_len = 0;
  out->in_len = 0;
  uint32_t nseg = 0;
  bool seen_writable = false;
  for (;;) {
    // Only a chain that goes on can revisit a descriptor: each descriptor
    // with F_NEXT is stamped with this chain's generation (taken at the
    // head's F_NEXT), so a one-descriptor chain touches no stamp at all.
    if (nseg != 0 && stamp_[idx] == generation_) return Violation::kChainLoop;
    if (nseg == max_chain_) return Violation::kChainTooLong;
    // The one and only read of this descriptor (little-endian layout:
    // addr, then len | flags << 32 | next << 48).
    const auto* words = reinterpret_cast<const SharedU64*>(&view_.desc[idx]);
    uint64_t addr = LoadOnce(words);
    uint64_t rest = LoadOnce(words + 1);
    uint32_t len = uint32_t(rest);
    uint16_t flags = uint16_t(rest >> 32);
    uint16_t next = uint16_t(rest >> 48);

    if (flags & VRING_DESC_F_INDIRECT) return Violation::kIndirect;
    bool writable = (flags & VRING_DESC_F_WRITE) != 0;
    if (direction_ == RingDirection::kDeviceReads && writable) return Violation::kReadFromWriteOnly;
    if (direction_ == RingDirection::kDeviceWrites && !writable) return Violation::kWriteToReadOnly;
    if (!writable && seen_writable) return Violation::kOutAfterIn;
    if (len > kMaxSegmentLen) return Violation::kLenOverflow;
    Violation why = Violation::kNone;
    uint8_t* hva = regions_->TranslateHinted(addr, len, writable, &region_hint_, &why);
    if (hva == nullptr) return why;

    out->seg[nseg++] = Segment{hva, len, writable};
    if (writable) {
      out->in_len += len;
      seen_writable = true;
    } else {
      out->out_len += len;
    }
    if (!(flags & VRING_DESC_F_NEXT)) break;
    if (nseg == 1 && ++generation_ == 0) {  // wrapped: old stamps could collide with new ones
      std::memset(stamp_.get(), 0, sizeof(uint32_t) * view_.num);
      generation_ = 1;
    }
    stamp_[idx] = generation_;
    idx = next;
    if (idx >= view_.num) return Violation::kDescIndex;
  }
  out->nseg = uint16_t(nseg);
  ++last_avail_;
  return Violation::kNone;
}

void VringDevice::PrefetchDescs(uint32_t count) {
  const uint32_t pending = uint16_t(avail_seen_ - last_avail_);
  if (count > pending) count = pending;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t idx = __atomic_load_n(&view_.avail->ring[uint16_t(last_avail_ + i) & mask_], __ATOMIC_RELAXED);
    PrefetchForRead(&view_.desc[idx & mask_]);
    if (i == 0) heads_at_slots_ = idx == (last_avail_ & mask_);  // for PrefetchAvail's guess: a hint
  }
}

void VringDevice::PrefetchAvail(uint32_t count) const {
  PrefetchForRead(&view_.avail->idx);
  // 32 slots per 64-byte line: one prefetch per line, and the last slot's.
  for (uint32_t i = 0; i < count; i += 32) PrefetchForRead(&view_.avail->ring[uint16_t(last_avail_ + i) & mask_]);
  if (count != 0) PrefetchForRead(&view_.avail->ring[uint16_t(last_avail_ + count - 1) & mask_]);
  if (!heads_at_slots_ || count == 0) return;
  // 4 descriptors per line.
  for (uint32_t i = 0; i < count; i += 4) PrefetchForRead(&view_.desc[uint16_t(last_avail_ + i) & mask_]);
  PrefetchForRead(&view_.desc[uint16_t(last_avail_ + count - 1) & mask_]);
}

void VringDevice::PrefetchUsed(uint32_t count) const {
  // 8 entries per 64-byte line: one prefetch per line, and the last entry's.
  for (uint32_t i = 0; i < count; i += 8) PrefetchForWrite(&view_.used->ring[uint16_t(used_idx_ + i) & mask_]);
  if (count != 0) PrefetchForWrite(&view_.used->ring[uint16_t(used_idx_ + count - 1) & mask_]);
}



bool VringDevice::WantsCall() const {
  // Our used->idx store must not pass this load (the driver sets the flag,
  // then rechecks used->idx).
  StoreLoadFence();
  return WantsCallFenced();
}

}  // namespace xsw

namespace xsw {

void VringDevice::UseNoNotifyFlag() {
  no_notify_flag_ = true;
  kicks_armed_ = false;
  __atomic_store_n(&view_.used->flags, VRING_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
}

bool VringDevice::ArmAvailEvent() {
  __atomic_store_n(AvailEventWord(view_), last_avail_, __ATOMIC_RELAXED);
  if (no_notify_flag_) {
    kicks_armed_ = true;
    __atomic_store_n(&view_.used->flags, uint16_t(0), __ATOMIC_RELAXED);
  }
  __atomic_thread_fence(__ATOMIC_SEQ_CST);  // the driver publishes, then reads avail_event
  return __atomic_load_n(&view_.avail->idx, __ATOMIC_ACQUIRE) != last_avail_;
}

bool VringDevice::CallNeeded() {
  const uint16_t old = called_idx_;
  called_idx_ = used_idx_;
  if (old == used_idx_) return false;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);  // used->idx stored before used_event is read
  const uint16_t event = __atomic_load_n(UsedEventWord(view_), __ATOMIC_RELAXED);
  return VringNeedEvent(event, used_idx_, old);
}

}  // namespace xsw
