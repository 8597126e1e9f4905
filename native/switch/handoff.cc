// Several data threads (xsw-backend --cores): frames whose destination
// another thread owns (handoff.h). Runs on the data threads only; nothing
// here allocates, locks, logs or throws.
//
// Why this design: a device's rings each have one consumer and one producer
// (its own thread), so no ring needs a lock, and the one copy of a frame is
// made by the destination's thread straight from the source's buffer, which
// the source's thread validated and keeps out of its guest's hands (the TX
// chain is given back only on completion). Memory safety across threads: a
// thread reads a device's buffers only while that device is in the snapshot
// of its current loop with the generation the handoff names; RemoveDevice
// publishes a snapshot without it and waits for every thread's loop, so a
// handoff still queued for a removed device is dropped (counted) unread.
#include <unistd.h>

#include <cstring>

#include "common/ethernet.h"
#include "shm/chain_copy.h"
#include "switch/switch.h"

namespace xsw {

namespace {
void Call(int fd) {
  const uint64_t one = 1;
  ssize_t n = ::write(fd, &one, sizeof one);
  (void)n;
}
}  // namespace

// The start of each loop: completions of what this thread handed out, then
// the frames handed to it (at most one ring's worth per peer per loop).
uint32_t Switch::TakeHandoffs(const Snapshot& s) {
  uint32_t work = 0;
  for (uint32_t t = 0; t < n_threads_; ++t) {
    if (t == index_) continue;
    HandoffLink& out = Link(index_, t);
    while (!out.done.Empty()) {
      Complete(s, out.done.Front());
      out.done.Pop();
      --out.in_flight;
      ++work;
    }
    HandoffLink& in = Link(t, index_);
    for (uint32_t k = 0; k < kHandoffRing && !in.frames.Empty(); ++k) {
      SwitchHandoff(s, in.frames.Front(), &in.done.Slot());
      in.frames.Pop();
      in.done.Push();
      wake_mask_ |= 1u << t;
      ++work;
    }
  }
  FlushTouched();
  FlushTxDone();
  return work;
}

// On the source's thread: a frame it handed out was switched (or not).
void Switch::Complete(const Snapshot& s, const HandoffDone& c) {
  if (c.src == kHandoffNic) {
    if (--nic_held_ == 0) nic_->RxRelease();
    return;
  }
  Device& d = devices_[c.src];
  TxParts& p = tx_parts_[c.src];
  // A device removed, quarantined or dead meanwhile: its ring is not touched any more.
  if (s.gen[c.src] != c.src_gen || d.state.load(std::memory_order_acquire) != DeviceState::kActive ||
      p.parts[c.head] == 0) {
    handoff_dropped_.Add();
    return;
  }
  p.ok[c.head] |= uint8_t(c.delivered);
  if (--p.parts[c.head] != 0) return;
  FinishTx(d, c.head, p.ok[c.head] != 0, c.bytes);
  if (!p.touched) {
    p.touched = true;
    tx_done_[n_tx_done_++] = d.slot;
  }
}

// A TX chain all of whose destinations are done: counted and given back.
void Switch::FinishTx(Device& src, uint16_t head, bool delivered, uint32_t bytes) {
  if (delivered) {
    src.counters.tx_bytes.Add(bytes);
  } else {
    src.counters.tx_dropped.Add();
  }
  src.tx->PushUsed(head, 0);
}

void Switch::FlushTxDone() {
  for (uint32_t i = 0; i < n_tx_done_; ++i) {
    Device& d = devices_[tx_done_[i]];
    tx_parts_[d.slot].touched = false;
    if (d.state.load(std::memory_order_acquire) != DeviceState::kActive) continue;
    d.tx->PublishUsed();
    if (d.cfg.tx_call_fd >= 0 && d.tx->WantsCall()) Call(d.cfg.tx_call_fd);
    if (d.cfg.evtchn != 0) NotifyGuest(d, *d.tx);
  }
  n_tx_done_ = 0;
}

// On the destination's thread: the frame's one copy, into this thread's
// device(s) or the NIC; *c tells the source how it went.
void Switch::SwitchHandoff(const Snapshot& s, const Handoff& h, HandoffDone* c) {
  c->src = h.src;
  c->head = h.head;
  c->src_gen = h.src_gen;
  c->bytes = kEthHdrLen + h.len;
  c->delivered = false;
  handed_in_.Add();
  // The source's buffers are mapped while it is in this loop's snapshot (the NIC's burst is held).
  if (h.src != kHandoffNic && s.gen[h.src] != h.src_gen) {
    handoff_dropped_.Add();
    return;
  }
  const FrameBody body{h.seg, h.nseg, h.offset, h.len};
  if (h.dst == kHandoffNic) {
    c->delivered = HandedToNic(devices_[h.src], h.hdr, body);
    return;
  }
  if (h.dst == kHandoffGroup) {
    const bool from_nic = h.src == kHandoffNic;
    if (from_nic || cfg_.vm2vm) {
      for (uint16_t slot : s.slots) {
        Device& d = devices_[slot];
        if (from_nic ? d.cfg.vlan != h.vlan : d.cfg.network != h.network) continue;
        if (d.state.load(std::memory_order_acquire) != DeviceState::kActive) continue;
        c->delivered |= DeliverToGuest(d, h.hdr, body);
      }
    }
    if (nic_ && !from_nic) c->delivered |= HandedToNic(devices_[h.src], h.hdr, body);
    return;
  }
  Device& d = devices_[h.dst];
  if (s.gen[h.dst] != h.dst_gen || owner_[h.dst] != index_ ||
      d.state.load(std::memory_order_acquire) != DeviceState::kActive) {
    handoff_dropped_.Add();
    return;
  }
  c->delivered = DeliverToGuest(d, h.hdr, body);
}

// A guest's frame from another thread onto the NIC (thread 0): drops are
// counted on the NIC (and on the guest as tx_dropped, by its own thread).
bool Switch::HandedToNic(const Device& src, const uint8_t* hdr, const FrameBody& body) {
  Drop why;  // counted on the NIC; the sender's thread counts its tx_dropped
  return WriteToNic(src, hdr, body, &why);
}

// The next free record towards thread `to`, or null when kHandoffRing are out.
Handoff* Switch::NewHandoff(uint32_t to) {
  HandoffLink& l = Link(index_, to);
  return l.in_flight == kHandoffRing ? nullptr : &l.frames.Slot();
}

void Switch::SendHandoff(uint32_t to) {
  HandoffLink& l = Link(index_, to);
  l.frames.Push();
  ++l.in_flight;
  handed_out_.Add();
  wake_mask_ |= 1u << to;
}

namespace {
void FillHandoff(Handoff* h, uint16_t src, uint32_t src_gen, uint16_t head, const uint8_t* hdr, const Segment* seg,
                 uint32_t nseg, uint32_t offset, uint32_t len) {
  h->src = src;
  h->src_gen = src_gen;
  h->head = head;
  h->dst_gen = 0;
  h->network = h->vlan = 0;
  std::memcpy(h->hdr, hdr, kEthHdrLen);
  h->nseg = uint16_t(nseg);
  std::memcpy(h->seg, seg, nseg * sizeof(Segment));
  h->offset = offset;
  h->len = len;
}
}  // namespace

// Stage 3 of a burst, for a frame another thread must copy (a unicast to its
// device or the NIC), or a group frame (this thread's members now, a part
// for each other thread). The chain goes back when every part completed.
void Switch::HandOff(const Snapshot& s, Device& src, StagedFrame& f, uint16_t head) {
  TxParts& p = tx_parts_[src.slot];
  const uint32_t bytes = kEthHdrLen + f.body.len;
  if (p.parts[head] != 0) {
    src.counters.tx_dropped.Add();  // the guest posted a chain that is still out: it goes back once
    return;
  }
  const uint32_t gen = s.gen[src.slot];
  if (f.stage == Stage::kRemote) {
    const uint32_t to = f.dst != nullptr ? owner_[f.dst->slot] : 0;
    Handoff* h = NewHandoff(to);
    if (h == nullptr) {  // never after HandoffRoom: a safety net
      src.counters.drops[DropIndex(Drop::kHandoffFull)].Add();
      FinishTx(src, head, false, bytes);
      return;
    }
    FillHandoff(h, src.slot, gen, head, f.hdr, f.body.seg, f.body.nseg, f.body.offset, f.body.len);
    h->dst = f.dst != nullptr ? f.dst->slot : kHandoffNic;
    h->dst_gen = f.dst != nullptr ? s.gen[f.dst->slot] : 0;
    SendHandoff(to);
    p.parts[head] = 1;
    p.ok[head] = 0;
    return;
  }
  // A group frame: the same members as CompleteGuestFrame's, thread by thread.
  bool delivered = false, any_destination = nic_ != nullptr;
  if (nic_) delivered = SendToNic(src, f.hdr, f.body);
  delivered |= DeliverToMembers(s, src, f, &any_destination);
  uint8_t parts = 0;
  for (uint32_t t = 0; t < n_threads_; ++t) {
    if (t == index_ || !(cfg_.vm2vm || (t == 0 && nic_elsewhere_))) continue;
    any_destination = true;
    Handoff* h = NewHandoff(t);
    if (h == nullptr) {
      src.counters.drops[DropIndex(Drop::kHandoffFull)].Add();
      continue;
    }
    FillHandoff(h, src.slot, gen, head, f.hdr, f.body.seg, f.body.nseg, f.body.offset, f.body.len);
    h->dst = kHandoffGroup;
    h->network = src.cfg.network;
    SendHandoff(t);
    ++parts;
  }
  if (!any_destination) src.counters.drops[DropIndex(Drop::kNoNic)].Add();
  if (parts == 0) {
    FinishTx(src, head, delivered, bytes);
    return;
  }
  p.parts[head] = parts;
  p.ok[head] = uint8_t(delivered);
}

// On thread 0, a NIC frame for devices of other threads: a handoff each
// (unicast) or one per thread with members (group); the burst is released
// when the last one completes. Returns whether a device matched.
bool Switch::HandNicFrame(const Snapshot& s, const uint8_t* hdr, const FrameBody& body, uint16_t vid, bool group,
                          bool* active, bool* delivered) {
  const uint64_t dst = MacAt(hdr);
  bool matched = false;
  uint32_t to_threads = 0;
  uint16_t to_slot = 0;
  for (uint16_t slot : s.others) {
    Device& d = devices_[slot];
    if (d.cfg.vlan != vid || (!group && d.cfg.mac != dst)) continue;
    matched = true;
    if (d.state.load(std::memory_order_acquire) == DeviceState::kActive) {
      *active = true;
      to_threads |= 1u << owner_[slot];
      to_slot = slot;
    }
    if (!group) break;
  }
  for (uint32_t t = 1; t < n_threads_; ++t) {
    if (!(to_threads & (1u << t))) continue;
    Handoff* h = NewHandoff(t);
    if (h == nullptr) {
      NicDrop(Drop::kHandoffFull);
      continue;
    }
    FillHandoff(h, kHandoffNic, 0, 0, hdr, body.seg, body.nseg, body.offset, body.len);
    h->dst = group ? kHandoffGroup : to_slot;
    h->dst_gen = group ? 0 : s.gen[to_slot];
    h->vlan = vid;
    SendHandoff(t);
    ++nic_held_;
    *delivered = true;  // the receiver's own counters say if its ring took it
  }
  return matched;
}

// Room for a whole burst of handoffs towards every other thread: checked
// before each burst, so a destination thread that falls behind holds frames
// back in their senders' rings (as a slow NIC does) instead of dropping them.
bool Switch::HandoffRoom() const {
  for (uint32_t t = 0; t < n_threads_; ++t) {
    if (t != index_ && Link(index_, t).in_flight + kBurst > kHandoffRing) return false;
  }
  return true;
}

// Before sleeping: say so, then look once more for handoffs (a peer that
// pushed after our look sees `asleep_` and writes our eventfd).
bool Switch::ReadyToSleep() {
  asleep_.store(true, std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (uint32_t t = 0; t < n_threads_; ++t) {
    if (t == index_) continue;
    if (!Link(t, index_).frames.Empty() || !Link(index_, t).done.Empty()) {
      asleep_.store(false, std::memory_order_relaxed);
      return false;
    }
  }
  return true;
}

void Switch::WakePeers() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (uint32_t t = 0; t < n_threads_; ++t) {
    if (!(wake_mask_ & (1u << t))) continue;
    Switch* peer = primary_->threads_[t];
    if (peer->asleep_.load(std::memory_order_seq_cst)) peer->WakeDataThread();
  }
  wake_mask_ = 0;
}

}  // namespace xsw
