// The switch's data path: everything here runs on the data thread (or in
// PollOnce) and never allocates, locks, logs or throws.
//
// Copy-once rule: a guest's frame is read from its buffer exactly once, into
// its destination. The 14-byte Ethernet header is the exception that makes
// the rule safe: it is gathered once into a local copy, classified and
// checked (source MAC) on that copy, and the copy - not the guest's buffer,
// which the guest may rewrite meanwhile - is what the destination receives.
#include <algorithm>
#include <cstring>
#include <utility>

#include <unistd.h>

#include "common/ethernet.h"
#include "shm/chain_copy.h"
#include "shm/prefetch.h"
#include "switch/switch.h"

namespace xsw {

namespace {
// The header in front of each frame we write: all zero (no offloads), and
// for a 12-byte header num_buffers = 1 (the 10-byte one ends before it).
const uint8_t kRxNetHdr[kVirtioNetHdrLenV1] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};

// A vhost-user peer that asked for calls gets one eventfd write per batch.
void Call(int fd) {
  const uint64_t one = 1;
  ssize_t n = ::write(fd, &one, sizeof one);
  (void)n;  // EAGAIN: the counter is already non-zero, the peer wakes anyway
}
}

uint32_t Switch::Poll() {
  // seq_cst pairs with the control thread's exchange + epoch read (WaitQuiescent).
  const Snapshot* s = snap_.load(std::memory_order_seq_cst);
  const uint32_t n_guests = uint32_t(s->guests.size());
  uint32_t work = 0;
  if (n_threads_ > 1) work += TakeHandoffs(*s);  // handoff.cc

  // Which guests have frames to send (and which devices died or broke).
  uint32_t busy = 0;
  for (uint32_t g = 0; g < n_guests; ++g) {
    const GuestRange& r = s->guests[g];
    bool any = false;
    for (uint32_t i = r.first; i < r.first + r.count; ++i) any |= CheckTx(devices_[s->slots[i]], &work);
    guest_busy_[g] = any;
    busy += any;
  }

  // Their turns, round robin: the busy guest after this loop's first goes
  // first next loop. The NIC's free transmit slots are shared out as they
  // go: each guest may take its part of what is left (rounded up), so what
  // one leaves passes on to the guests after it.
  if (busy != 0) {
    uint64_t nic_left = 0;
    if (nic_) nic_left = std::min<uint64_t>(nic_->TxFree(), uint64_t(kBurst) * busy);
    uint32_t g = next_guest_ < n_guests ? next_guest_ : 0;
    bool first = true;
    for (uint32_t turn = 0; turn < n_guests; ++turn, g = g + 1 == n_guests ? 0 : g + 1) {
      if (!guest_busy_[g]) continue;
      if (first) next_guest_ = g + 1;
      first = false;
      nic_share_ = uint32_t((nic_left + busy - 1) / busy);
      nic_taken_ = 0;
      work += ServiceGuest(*s, g);
      nic_left -= nic_taken_;
      --busy;
    }
  }

  if (nic_) {
    // Not while its last burst is still out on other threads, nor while they are behind.
    if (nic_held_ == 0 && (n_threads_ == 1 || HandoffRoom())) work += ServiceNicRx(*s);
    nic_->TxFlush();
  }
  if (wake_mask_ != 0) WakePeers();
  epoch_.fetch_add(1, std::memory_order_seq_cst);
  return work;
}

// A device's flag byte and TX avail index: true when it has frames to send.
bool Switch::CheckTx(Device& d, uint32_t* work) {
  d.tx_avail = 0;
  if (d.state.load(std::memory_order_acquire) != DeviceState::kActive) return false;
  if (d.cfg.flag != nullptr && __atomic_load_n(d.cfg.flag, __ATOMIC_ACQUIRE) == kVringFlagDead) {
    MarkDead(d);
    ++*work;
    return false;
  }
  if (d.cfg.memory_lost != nullptr && d.cfg.memory_lost->load(std::memory_order_acquire)) {
    Quarantine(d, Violation::kMemoryTruncated);
    ++*work;
    return false;
  }
  Violation v = d.tx->Avail(&d.tx_avail);
  if (v != Violation::kNone) {
    Quarantine(d, v);
    ++*work;
    return false;
  }
  if (d.tx_avail == 0) return false;
  // The avail slots of its burst, read first thing in ServiceGuestTx: their
  // misses overlap the other devices' checks and services before it.
  d.tx->PrefetchAvail(std::min(d.tx_avail, kBurst));
  return true;
}

// One guest's turn: kBurst chains in all from its devices, in turn from one
// that rotates, each taking what it has up to what is left of the budget.
uint32_t Switch::ServiceGuest(const Snapshot& s, uint32_t g) {
  const GuestRange& r = s.guests[g];
  uint32_t start = guest_next_dev_[g] < r.count ? guest_next_dev_[g] : 0;
  guest_next_dev_[g] = uint16_t(start + 1 == r.count ? 0 : start + 1);
  uint32_t budget = kBurst, work = 0;
  for (uint32_t k = 0, i = start; k < r.count && budget != 0; ++k, i = i + 1 == r.count ? 0 : i + 1) {
    Device& d = devices_[s.slots[r.first + i]];
    // A receiver's RX fault earlier in this loop may have quarantined it.
    if (d.tx_avail == 0 || d.state.load(std::memory_order_acquire) != DeviceState::kActive) continue;
    if (n_threads_ > 1 && !HandoffRoom()) break;  // the others' threads are behind: the frames wait in the ring
    uint32_t done = ServiceGuestTx(s, d, std::min(d.tx_avail, budget));
    budget -= std::min(done, budget);
    work += done;
  }
  return work;
}

// Switches up to `avail` chains of the device's TX ring (at most what its
// last Avail saw), in three stages so that the cache misses of the burst
// overlap instead of being taken one frame after another (docs/PERFORMANCE.md):
//  0. prefetch the RX ring of the receiver of the device's last burst (its
//     avail index, slots, descriptors and used entries: a burst mostly goes
//     where the last one went) beside the TX descriptors and used entries;
//  1. pop every chain (each descriptor read once and validated, as always)
//     and prefetch the first lines of its frame; pop the hinted receiver's
//     RX chains and prefetch their buffers;
//  2. classify each frame on its private header copy; prefetch the RX
//     descriptors of every receiver, then pop each guest-bound frame's RX
//     chain (in frame order, up to the first group frame) and prefetch its
//     buffer;
//  3. copy each frame once into its destination, in order, and give the
//     chains back.
// A bad chain stops stage 1: the chains popped before it are switched and
// given back, then the device is quarantined.
uint32_t Switch::ServiceGuestTx(const Snapshot& s, Device& d, uint32_t avail) {
  const uint32_t want = std::min(avail, kBurst);
  Violation v = Violation::kNone;
  uint32_t n = 0;
  // Stage 0. Only hints: what decides anything is read again below.
  Device* hint = RxHint(s, d);
  if (hint != nullptr) {
    if (hint->rx_avail < want) hint->rx->PrefetchAvail(want);
    hint->rx->PrefetchUsed(want);
  }
  d.tx->PrefetchDescs(want);
  d.tx->PrefetchUsed(want);
  if (hint != nullptr) {
    // A bad avail index is left for PopRx to find again and quarantine.
    if (hint->rx_avail < want && hint->rx->Avail(&hint->rx_avail) != Violation::kNone) hint->rx_avail = 0;
    hint->rx->PrefetchDescs(std::min(want, hint->rx_avail));
  }
  while (n < want) {
    v = d.tx->Pop(&tx_burst_[n]);
    if (v != Violation::kNone || tx_burst_[n].nseg == 0) break;
    PrefetchFrame(tx_burst_[n]);
    ++n;
  }
  // The hinted receiver's RX chains, popped now (as PopRx does: each
  // descriptor read once and validated) so that its buffers are asked for
  // beside the frames. The leading frames that go there keep them; the rest
  // go back to the ring untouched (Unpop) before anything else pops it, so
  // they are popped again, afresh, in frame order. A bad chain is left for
  // PopRx to meet again and quarantine.
  uint32_t pre = 0;
  if (hint != nullptr) {
    while (pre < n && hint->rx_avail != 0) {
      if (hint->rx->Pop(&rx_burst_[pre]) != Violation::kNone || rx_burst_[pre].nseg == 0) break;
      --hint->rx_avail;
      PrefetchBuffer(rx_burst_[pre]);
      ++pre;
    }
  }
  last_dst_mac_ = ~uint64_t(0);
  uint32_t n_dst = 0;
  for (uint32_t i = 0; i < n; ++i) {
    ClassifyGuestFrame(s, d, tx_burst_[i], &staged_[i]);
    if (staged_[i].stage == Stage::kGuest && staged_[i].dst->rx_want++ == 0) staged_dst_[n_dst++] = staged_[i].dst;
  }
  // The receivers' RX descriptors, all at once, before any is popped (the
  // hinted one's were prefetched in stage 0). A bad
  // avail index is left for PopRx to find again and quarantine.
  for (uint32_t j = 0; j < n_dst; ++j) {
    Device& r = *staged_dst_[j];
    if (&r != hint) {
      if (r.rx_avail == 0 && r.rx->Avail(&r.rx_avail) != Violation::kNone) r.rx_avail = 0;
      r.rx->PrefetchDescs(r.rx_want);
      r.rx->PrefetchUsed(r.rx_want);
    }
    r.rx_want = 0;
  }
  d.rx_hint_gen = 0;
  if (n_dst != 0) {
    d.rx_hint_slot = staged_dst_[0]->slot;
    d.rx_hint_gen = s.gen[d.rx_hint_slot];
  }
  uint32_t staged_rx = 0;
  while (staged_rx < pre && staged_[staged_rx].stage == Stage::kGuest && staged_[staged_rx].dst == hint) {
    hint->counters.rx_total.Add();  // PopRx's count for the chains taken above
    ++staged_rx;
  }
  if (staged_rx < pre) {
    hint->rx->Unpop(pre - staged_rx);
    hint->rx_avail += pre - staged_rx;
  }
  // A group frame takes its receivers' RX chains in stage 3; the frames
  // after it take theirs there too, so that every receiver's chains are used
  // in the order it made them available (virtio's IN_ORDER).
  for (; staged_rx < n && staged_[staged_rx].stage != Stage::kGroup; ++staged_rx) {
    if (TakeStagedRx(d, staged_[staged_rx], &rx_burst_[staged_rx])) PrefetchBuffer(rx_burst_[staged_rx]);
  }
  const bool threads = n_threads_ > 1;
  for (uint32_t i = 0; i < n; ++i) {
    if (threads && staged_[i].stage >= Stage::kGroup) {
      HandOff(s, d, staged_[i], tx_burst_[i].head);  // handoff.cc: may give the chain back later
      continue;
    }
    if (i >= staged_rx) TakeStagedRx(d, staged_[i], &rx_burst_[i]);
    CompleteGuestFrame(s, d, staged_[i], rx_burst_[i]);
    d.tx->PushUsed(tx_burst_[i].head, 0);
  }
  // Chains already switched go back to the guest even if the next one was
  // bad: that is the last write to a ring we are about to stop touching.
  uint32_t done = n;
  if (done != 0) d.tx->PublishUsed();
  FlushTouched(done != 0 ? &d : nullptr);
  if (v != Violation::kNone) {
    Quarantine(d, v);
    ++done;
  }
  return done;
}

// A guest-bound frame's RX chain; false (the frame is done) when the
// receiver is down or has none. Other stages pass through.
bool Switch::TakeStagedRx(Device& src, StagedFrame& f, Chain* rx) {
  if (f.stage != Stage::kGuest) return false;
  // An earlier frame of this burst may have found the receiver's ring bad.
  if (f.dst->state.load(std::memory_order_acquire) != DeviceState::kActive) {
    src.counters.drops[DropIndex(Drop::kDstDown)].Add();
    src.counters.tx_dropped.Add();
    f.stage = Stage::kDone;
    return false;
  }
  if (!PopRx(*f.dst, rx)) {
    src.counters.tx_dropped.Add();  // counted on the receiver
    f.stage = Stage::kDone;
    return false;
  }
  return true;
}

void Switch::PrefetchFrame(const Chain& c) {
  if (c.nseg == 0) return;
  const uint8_t* p = c.seg[0].hva;
  PrefetchForRead(p);
  if (c.seg[0].len > 64) PrefetchForRead(p + 64);
}

// An RX buffer about to be written: its first two lines, for writing (owned:
// the guest's CPU wrote them last).
void Switch::PrefetchBuffer(const Chain& c) {
  const uint8_t* p = c.seg[0].hva;
  PrefetchForWrite(p);
  if (c.seg[0].len > 64) PrefetchForWrite(p + 64);
}

// The receiver of src's last burst while this loop's snapshot still holds
// the same device there, it is active and this thread's; else null.
Device* Switch::RxHint(const Snapshot& s, const Device& src) const {
  if (src.rx_hint_gen == 0 || s.gen[src.rx_hint_slot] != src.rx_hint_gen) return nullptr;
  Device& r = devices_[src.rx_hint_slot];
  if (n_threads_ > 1 && owner_[r.slot] != index_) return nullptr;
  return r.state.load(std::memory_order_acquire) == DeviceState::kActive ? &r : nullptr;
}

// The device of this switch with this MAC, or null (by_mac is sorted and its MACs unique).
Device* Switch::FindByMac(const Snapshot& s, uint64_t mac) const {
  auto it = std::lower_bound(s.by_mac.begin(), s.by_mac.end(), mac,
                             [](const MacSlot& e, uint64_t m) { return e.mac < m; });
  return it != s.by_mac.end() && it->mac == mac ? &devices_[it->slot] : nullptr;
}

// Stage 2 for one frame: every check on the frame and its private header
// copy, and its destination. Drops are counted here.
void Switch::ClassifyGuestFrame(const Snapshot& s, Device& src, const Chain& c, StagedFrame* f) {
  DeviceCounters& k = src.counters;
  k.tx_total.Add();
  f->stage = Stage::kDone;
  auto drop = [&k](Drop why) {
    k.drops[DropIndex(why)].Add();
    k.tx_dropped.Add();
  };
  // The chain holds a virtio_net_hdr (ignored, never trusted) then the frame.
  const uint32_t hl = src.cfg.net_hdr_len;
  uint32_t frame_len = c.out_len > hl ? c.out_len - hl : 0;
  if (CaptureRing* cap = src.capture.load(std::memory_order_acquire)) CaptureGuestTx(*cap, src, c, frame_len);
  if (frame_len < kEthHdrLen) return drop(Drop::kRunt);
  if (frame_len > cfg_.mtu + kEthHdrLen) return drop(Drop::kMtuExceeded);
  uint8_t* hdr = f->hdr;
  GatherFromSegments(c.seg, c.nseg, hl, hdr, kEthHdrLen);
  if (MacAt(hdr + 6) != src.cfg.mac) return drop(Drop::kSpoofedSrcMac);
  // A guest port is an access port: the VLAN is the switch's to set. A tag
  // of the guest's own would leave the NIC inside ours (a VLAN hop once the
  // uplink strips the outer one); to other guests it is refused as well, so
  // one rule holds for every destination (docs/security.md).
  if (IsAnyTagTpid(Be16At(hdr + 12))) return drop(Drop::kGuestVlanTag);
  f->body = FrameBody{c.seg, c.nseg, hl + kEthHdrLen, frame_len - kEthHdrLen};
  uint64_t dst = MacAt(hdr);

  if (MacIsGroup(dst)) {
    f->stage = Stage::kGroup;
    return;
  }
  Device* local = nullptr;
  if (cfg_.vm2vm) {
    // A MAC of another network is not local to this one: like any
    // unknown MAC of the sender's network, the frame goes to the uplink.
    if (dst != last_dst_mac_) {  // a burst mostly goes to one destination
      last_dst_mac_ = dst;
      last_dst_ = FindByMac(s, dst);
    }
    Device* m = last_dst_;
    if (m != nullptr && m->cfg.network == src.cfg.network) local = m;
  }
  if (local == &src) return drop(Drop::kSameDevice);
  if (local != nullptr) {
    if (local->state.load(std::memory_order_acquire) != DeviceState::kActive) return drop(Drop::kDstDown);
    f->dst = local;
    f->stage = Stage::kGuest;
    if (n_threads_ > 1 && owner_[local->slot] != index_) f->stage = Stage::kRemote;  // handoff.cc
  } else if (nic_ != nullptr) {
    f->stage = Stage::kNic;
  } else if (nic_elsewhere_) {
    f->dst = nullptr;
    f->stage = Stage::kRemote;  // the NIC is on thread 0
  } else {
    return drop(Drop::kNoNic);
  }
}

// Stage 3 for one frame: its one copy, into its destination(s).
void Switch::CompleteGuestFrame(const Snapshot& s, Device& src, const StagedFrame& f, const Chain& rx) {
  bool delivered = false;
  switch (f.stage) {
    case Stage::kDone:
    case Stage::kRemote:  // never here: HandOff takes it (handoff.cc)
      return;
    case Stage::kGuest:
      delivered = FillRx(*f.dst, rx, f.hdr, f.body);  // a failure is counted on the receiver
      break;
    case Stage::kNic:
      delivered = SendToNic(src, f.hdr, f.body);
      break;
    case Stage::kGroup: {
      bool any_destination = nic_ != nullptr;
      if (nic_) delivered = SendToNic(src, f.hdr, f.body);
      delivered |= DeliverToMembers(s, src, f, &any_destination);
      if (!any_destination) {
        src.counters.drops[DropIndex(Drop::kNoNic)].Add();
        src.counters.tx_dropped.Add();
        return;
      }
      break;
    }
  }
  DeviceCounters& k = src.counters;
  if (delivered) {
    k.tx_bytes.Add(kEthHdrLen + f.body.len);
  } else {
    k.tx_dropped.Add();
  }
}

bool Switch::DeliverToMembers(const Snapshot& s, Device& src, const StagedFrame& f, bool* any) {
  if (!cfg_.vm2vm) return false;
  bool delivered = false;
  for (uint16_t slot : s.slots) {
    Device& d = devices_[slot];
    // Only within the sender's network (docs/security.md#networks-isolation-between-guests).
    if (&d == &src || d.cfg.network != src.cfg.network ||
        d.state.load(std::memory_order_acquire) != DeviceState::kActive) {
      continue;
    }
    *any = true;
    delivered |= DeliverToGuest(d, f.hdr, f.body);
  }
  return delivered;
}

bool Switch::SendToNic(Device& src, const uint8_t* hdr, const FrameBody& body) {
  if (nic_taken_ >= nic_share_) {
    // No share at all: the ring is full. A share used up: the rest is kept for other guests.
    Drop why = nic_share_ == 0 ? Drop::kNicTxFull : Drop::kNicTxShare;
    src.counters.drops[DropIndex(why)].Add();
    NicDrop(why);
    return false;
  }
  Drop why;
  const bool sent = WriteToNic(src, hdr, body, &why);
  if (sent || why == Drop::kNicTxError) ++nic_taken_;  // a slot was reserved either way
  if (!sent) src.counters.drops[DropIndex(why)].Add();
  return sent;
}

// The frame's one copy onto the NIC, tagged with the sender's VLAN; a drop
// is counted on the NIC and its reason left in *why (for the sender's count).
bool Switch::WriteToNic(const Device& src, const uint8_t* hdr, const FrameBody& body, Drop* why) {
  const uint32_t tag = src.cfg.vlan != 0 ? kVlanHdrLen : 0;
  const uint32_t len = kEthHdrLen + tag + body.len;
  uint8_t* out = nic_->TxReserve();
  if (out == nullptr) {
    *why = Drop::kNicTxFull;
    NicDrop(*why);
    return false;
  }
  std::memcpy(out, hdr, 12);  // destination and source MAC
  if (tag != 0) {
    PutBe16(out + 12, kEthPVlan);
    PutBe16(out + 14, src.cfg.vlan);
  }
  std::memcpy(out + 12 + tag, hdr + 12, 2);  // the frame's own ethertype
  GatherFromSegments(body.seg, body.nseg, body.offset, out + kEthHdrLen + tag, body.len);
  if (!nic_->TxCommit(len)) {
    *why = Drop::kNicTxError;
    NicDrop(*why);
    return false;
  }
  nic_counters_.tx.Add();
  nic_vlan_tx_[src.cfg.vlan].Add();
  if (CaptureRing* cap = nic_capture_.load(std::memory_order_acquire)) {
    CaptureBytes(*cap, nic_capture_if_, CaptureDir::kOutbound, out, len);
  }
  return true;
}

bool Switch::DeliverToGuest(Device& dst, const uint8_t* hdr, const FrameBody& body) {
  return PopRx(dst, &rx_chain_) && FillRx(dst, rx_chain_, hdr, body);
}

// The receiver's next RX chain, or false (counted on the receiver; a ring
// fault quarantines it).
bool Switch::PopRx(Device& dst, Chain* rx) {
  DeviceCounters& k = dst.counters;
  k.rx_total.Add();
  if (dst.rx_avail == 0) {
    Violation v = dst.rx->Avail(&dst.rx_avail);
    if (v != Violation::kNone) {
      Quarantine(dst, v);
      k.rx_dropped.Add();
      return false;
    }
  }
  if (dst.rx_avail == 0) {
    k.drops[DropIndex(Drop::kRxNoBuffer)].Add();
    k.rx_dropped.Add();
    return false;
  }
  Violation v = dst.rx->Pop(rx);
  if (v != Violation::kNone || rx->nseg == 0) {
    if (v != Violation::kNone) Quarantine(dst, v);
    k.rx_dropped.Add();
    return false;
  }
  --dst.rx_avail;
  return true;
}

// Writes the frame (our header, then the body copied once from the sender)
// into a popped RX chain and pushes it used; a chain too small goes back empty.
bool Switch::FillRx(Device& dst, const Chain& rx, const uint8_t* hdr, const FrameBody& body) {
  DeviceCounters& k = dst.counters;
  const uint32_t hl = dst.cfg.net_hdr_len;
  uint32_t frame_len = kEthHdrLen + body.len;
  uint32_t need = hl + frame_len;
  if (rx.in_len < need) {
    dst.rx->PushUsed(rx.head, 0);  // the guest gets its buffer back, empty
    Touch(dst);
    k.drops[DropIndex(Drop::kRxTooBig)].Add();
    k.rx_dropped.Add();
    return false;
  }
  if (InFirstSegment(rx.seg, rx.nseg, 0, need) && InFirstSegment(body.seg, body.nseg, body.offset, body.len)) {
    // The common case, one RX buffer and the frame in the first TX segment:
    // the two headers as fixed-size stores, then the body.
    uint8_t* out = rx.seg[0].hva;
    if (hl == kVirtioNetHdrLenV1) {
      std::memcpy(out, kRxNetHdr, kVirtioNetHdrLenV1);
    } else {
      std::memcpy(out, kRxNetHdr, hl);
    }
    std::memcpy(out + hl, hdr, kEthHdrLen);
    std::memmove(out + hl + kEthHdrLen, body.seg[0].hva + body.offset, body.len);
  } else {
    ScatterToSegments(rx.seg, rx.nseg, 0, kRxNetHdr, hl);
    ScatterToSegments(rx.seg, rx.nseg, hl, hdr, kEthHdrLen);
    CopySegments(body.seg, body.nseg, body.offset, rx.seg, rx.nseg, hl + kEthHdrLen, body.len);
  }
  dst.rx->PushUsed(rx.head, need);
  Touch(dst);
  k.rx_bytes.Add(frame_len);
  if (CaptureRing* cap = dst.capture.load(std::memory_order_acquire)) {
    CaptureFrame(*cap, dst.capture_if, CaptureDir::kOutbound, hdr, body);
  }
  return true;
}

uint32_t Switch::ServiceNicRx(const Snapshot& s) {
  uint32_t n = nic_->RxBurst(nic_frames_, kBurst);
  if (n != 0) nic_now_ = NicMacTable::NowSeconds();
  for (uint32_t i = 0; i < n; ++i) SwitchNicFrame(s, nic_frames_[i]);
  if (nic_held_ == 0) nic_->RxRelease();  // else the last completion of its handoffs releases it
  FlushTouched();
  return n;
}

void Switch::SwitchNicFrame(const Snapshot& s, const NicRxFrame& f) {
  nic_counters_.rx.Add();
  if (CaptureRing* cap = nic_capture_.load(std::memory_order_acquire)) CaptureNicRx(*cap, f);
  if (f.len < f.wire_len) return NicDrop(Drop::kMtuExceeded);  // truncated by the port
  if (f.len < kEthHdrLen) return NicDrop(Drop::kRunt);
  const uint64_t src = MacAt(f.data + 6);
  if (!MacIsGroup(src)) nic_macs_.Learn(src, nic_now_);  // a host on the NIC side uses this MAC
  // The software VMDQ: the pool is (destination MAC, VLAN); the tag, in the
  // port's metadata or in the frame, is stripped before the guest sees it.
  uint8_t hdr[kEthHdrLen];
  std::memcpy(hdr, f.data, 12);
  uint16_t vid = 0;
  uint32_t body_off = kEthHdrLen;
  if (f.vlan_valid) {
    vid = f.vlan_tci & kVlanIdMask;
  } else if (IsVlanTpid(Be16At(f.data + 12))) {
    if (f.len < kEthHdrLen + kVlanHdrLen) return NicDrop(Drop::kRunt);
    vid = Be16At(f.data + 14) & kVlanIdMask;
    body_off += kVlanHdrLen;
  }
  nic_vlan_rx_[vid].Add();
  std::memcpy(hdr + 12, f.data + body_off - 2, 2);
  uint32_t body_len = f.len - body_off;
  if (body_len > cfg_.mtu) return NicDrop(Drop::kMtuExceeded);

  const Segment seg{const_cast<uint8_t*>(f.data), f.len, false};
  const FrameBody body{&seg, 1, body_off, body_len};
  uint64_t dst = MacAt(hdr);
  bool group = MacIsGroup(dst);
  bool matched = false, active = false, delivered = false;
  for (uint16_t slot : s.slots) {
    Device& d = devices_[slot];
    if (d.cfg.vlan != vid || (!group && d.cfg.mac != dst)) continue;
    matched = true;
    if (d.state.load(std::memory_order_acquire) == DeviceState::kActive) {
      active = true;
      delivered |= DeliverToGuest(d, hdr, body);
    }
    if (!group) break;  // MACs are unique
  }
  if ((group || !matched) && !s.others.empty()) {
    // Devices of other data threads (handoff.cc): they copy the frame from the held burst.
    matched |= HandNicFrame(s, hdr, body, vid, group, &active, &delivered);
  }
  if (!matched) return NicDrop(Drop::kUnknownDst);
  if (!active) return NicDrop(Drop::kDstDown);
  if (!delivered) NicDrop(Drop::kGuestRxFailed);
}

void Switch::Touch(Device& d) {
  if (d.rx_touched) return;
  d.rx_touched = true;
  touched_[n_touched_++] = d.slot;
}

void Switch::FlushTouched(Device* tx) {
  // Every used->idx first, then one fence, then the peers' flags: the fence
  // waits for the burst's stores to drain, so one per burst, not per ring.
  bool calls = tx != nullptr && tx->cfg.tx_call_fd >= 0;
  for (uint32_t i = 0; i < n_touched_; ++i) {
    Device& d = devices_[touched_[i]];
    if (d.state.load(std::memory_order_acquire) == DeviceState::kActive) {
      d.rx->PublishUsed();
      calls |= d.cfg.rx_call_fd >= 0;
    }
  }
  if (calls) StoreLoadFence();  // the driver sets its flag, then rechecks used->idx
  if (tx != nullptr) {
    if (tx->cfg.tx_call_fd >= 0 && tx->tx->WantsCallFenced()) Call(tx->cfg.tx_call_fd);
    if (tx->cfg.evtchn != 0) NotifyGuest(*tx, *tx->tx);
  }
  for (uint32_t i = 0; i < n_touched_; ++i) {
    Device& d = devices_[touched_[i]];
    d.rx_touched = false;
    if (d.state.load(std::memory_order_acquire) == DeviceState::kActive) {
      if (d.cfg.rx_call_fd >= 0 && d.rx->WantsCallFenced()) Call(d.cfg.rx_call_fd);
      if (d.cfg.evtchn != 0) NotifyGuest(d, *d.rx);
    }
  }
  n_touched_ = 0;
}

void Switch::Quarantine(Device& d, Violation v) {
  // Zeros read where the peer's memory vanished make their own violation: name the cause.
  if (d.cfg.memory_lost != nullptr && d.cfg.memory_lost->load(std::memory_order_acquire)) v = Violation::kMemoryTruncated;
  d.counters.drops[DropIndex(v)].Add();
  d.fault_reason.store(uint8_t(v), std::memory_order_relaxed);
  d.fault_kind.store(FaultKind::kQuarantine, std::memory_order_release);
  d.state.store(DeviceState::kQuarantined, std::memory_order_release);
}

void Switch::MarkDead(Device& d) {
  d.fault_reason.store(0, std::memory_order_relaxed);
  d.fault_kind.store(FaultKind::kDead, std::memory_order_release);
  d.state.store(DeviceState::kDead, std::memory_order_release);
}

void Switch::NicDrop(Drop why) {
  nic_counters_.drops[DropIndex(why)].Add();
  nic_counters_.dropped.Add();
}

}  // namespace xsw
