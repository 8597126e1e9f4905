#include "vhost/session.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "common/errors.h"
#include "common/ethernet.h"
#include "common/hex.h"
#include "shm/chain_copy.h"

namespace xsw::vhost {

namespace {

void CloseFd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

// The order every front end keeps (QEMU, virtio_user) and the checks rely
// on: SET_FEATURES before SET_MEM_TABLE (the header length depends on the
// features), a queue's SET_VRING_NUM before its SET_VRING_ADDR (the ring's
// extent depends on its size), SET_OWNER at most once. SET_OWNER itself is
// not required: a reconnecting virtio_user (server=1) never sends it again,
// and it first stops its old rings (SET_VRING_ENABLE 0, GET_VRING_BASE).
// The payload size each request must have (SET_MEM_TABLE is checked by count).
bool SizeFits(uint32_t r, uint32_t size) {
  switch (r) {
    case kGetFeatures:
    case kSetOwner:
    case kResetOwner:
    case kGetProtocolFeatures:
    case kGetQueueNum:
    case kGetStatus:
      return size == 0;
    case kSetFeatures:
    case kSetProtocolFeatures:
    case kSetVringNum:
    case kSetVringBase:
    case kGetVringBase:
    case kSetVringKick:
    case kSetVringCall:
    case kSetVringErr:
    case kSetVringEnable:
    case kSetStatus:
      return size == 8;
    case kSetVringAddr:
      return size == sizeof(VringAddr);
    case kSetMemTable:
      return size >= 8;
    default:
      return false;
  }
}

// Requests that carry fds (SET_MEM_TABLE: one per region; the vring fds: one unless "no fd").
bool MayCarryFds(uint32_t r) {
  return r == kSetMemTable || r == kSetVringKick || r == kSetVringCall || r == kSetVringErr;
}

bool HasNaturalReply(uint32_t r) {
  return r == kGetFeatures || r == kGetProtocolFeatures || r == kGetVringBase || r == kGetQueueNum ||
         r == kGetStatus;
}

}  // namespace

Session::Session(Switch* sw, const SessionConfig& cfg, LogFn log) : sw_(sw), cfg_(cfg), log_(std::move(log)) {
  mac_ = cfg.mac;
}

Session::~Session() {
  Detach();
  mem_.Unmap();
  for (Queue& q : q_) {
    CloseFd(&q.kick);
    CloseFd(&q.call);
    CloseFd(&q.err);
  }
}

void Session::Detach() {
  if (slot_ < 0) return;
  sw_->RemoveDevice(uint32_t(slot_));  // returns once the data thread let go: the memory may go now
  slot_ = -1;
}

bool Session::Handle(int fd, Message& m, std::string* why) {
  const uint32_t r = m.hdr.request;
  const char* name = RequestName(r);
  if (!SizeFits(r, m.hdr.size)) {
    *why = SizeFits(r, 8) || SizeFits(r, 0) || SizeFits(r, sizeof(VringAddr)) || r == kSetMemTable
               ? std::string(name) + " with a " + std::to_string(m.hdr.size) + "-byte payload"
               : "request " + std::to_string(r) + " (" + name + "), which xsw does not implement or negotiate";
    Detach();
    return false;
  }
  if (m.nfds != 0 && !MayCarryFds(r)) {
    *why = std::string(name) + " carrying " + std::to_string(m.nfds) + " file descriptors where none belong";
    Detach();
    return false;
  }
  std::string order;
  if (r == kSetMemTable && !features_set_) order = "SET_MEM_TABLE before SET_FEATURES";
  if (r == kSetVringAddr) {
    VringAddr a;
    std::memcpy(&a, m.payload, sizeof a);
    if (a.index < kQueues && q_[a.index].num == 0) {
      order = "SET_VRING_ADDR for queue " + std::to_string(a.index) + " before its SET_VRING_NUM";
    }
  }
  if (!order.empty()) {
    *why = order + " (out of order)";
    Detach();
    return false;
  }
  if (!Dispatch(fd, m, why)) {
    Detach();
    return false;
  }
  if ((protocol_features_ & kProtocolReplyAck) && (m.hdr.flags & kFlagNeedReply) && !HasNaturalReply(r)) {
    const uint64_t ok = 0;
    if (!SendReply(fd, r, &ok, sizeof ok, why)) {
      Detach();
      return false;
    }
  }
  return TryAttach(why);
}

bool Session::TakeQueueFd(Message& m, int* slot_fd, bool* started, std::string* why) {
  uint64_t v;
  std::memcpy(&v, m.payload, sizeof v);
  const char* name = RequestName(m.hdr.request);
  const uint64_t index = v & kVringIndexMask;
  if ((v & ~(kVringIndexMask | kVringNoFd)) != 0 || index >= kQueues) {
    *why = std::string(name) + " for queue " + std::to_string(index) + " (payload " + Hex(v) +
           "): one queue pair has queues 0 and 1";
    return false;
  }
  const bool no_fd = (v & kVringNoFd) != 0;
  if (m.nfds != (no_fd ? 0u : 1u)) {
    *why = std::string(name) + " with " + std::to_string(m.nfds) + " file descriptors where " +
           (no_fd ? "the no-fd flag says none" : "one belongs");
    return false;
  }
  CloseFd(slot_fd);
  *slot_fd = no_fd ? -1 : m.TakeFd(0);
  if (started != nullptr) *started = true;
  return true;
}

bool Session::Dispatch(int fd, Message& m, std::string* why) {
  const uint32_t r = m.hdr.request;
  uint64_t u64 = 0;
  VringState st{};
  if (m.hdr.size == 8) {
    std::memcpy(&u64, m.payload, 8);
    std::memcpy(&st, m.payload, 8);
  }
  auto queue_index_ok = [&]() {
    if (st.index < kQueues) return true;
    *why = std::string(RequestName(r)) + " for queue " + std::to_string(st.index) +
           ": one queue pair has queues 0 and 1";
    return false;
  };

  switch (r) {
    case kGetFeatures: {
      const uint64_t f = OfferedFeatures();
      return SendReply(fd, r, &f, sizeof f, why);
    }
    case kSetFeatures:
      if ((u64 & ~OfferedFeatures()) != 0) {
        *why = "SET_FEATURES " + Hex(u64) + " asks for features xsw did not offer (" + Hex(u64 & ~OfferedFeatures()) + ")";
        return false;
      }
      Detach();
      features_ = u64;
      features_set_ = true;
      // Without protocol features a ring is enabled as soon as it starts.
      if (!(features_ & kFeatureProtocolFeatures)) {
        for (Queue& q : q_) q.enabled = true;
      }
      return true;
    case kSetOwner:
      if (owner_) {
        *why = "a second SET_OWNER (out of order)";
        return false;
      }
      owner_ = true;
      return true;
    case kResetOwner:
      Detach();
      for (Queue& q : q_) q.started = false;
      return true;
    case kGetProtocolFeatures: {
      const uint64_t f = kOfferedProtocolFeatures;
      return SendReply(fd, r, &f, sizeof f, why);
    }
    case kSetProtocolFeatures:
      if ((u64 & ~kOfferedProtocolFeatures) != 0) {
        *why = "SET_PROTOCOL_FEATURES " + Hex(u64) + " asks for protocol features xsw did not offer (" +
               Hex(u64 & ~kOfferedProtocolFeatures) + ")";
        return false;
      }
      protocol_features_ = u64;
      return true;
    case kGetQueueNum: {
      const uint64_t n = 1;
      return SendReply(fd, r, &n, sizeof n, why);
    }
    case kSetStatus:
      status_ = u64 & 0xFF;
      if (status_ == 0) Detach();  // a reset
      return true;
    case kGetStatus:
      return SendReply(fd, r, &status_, sizeof status_, why);
    case kSetMemTable: {
      uint32_t n;
      std::memcpy(&n, m.payload, 4);
      if (n == 0 || n > kMaxRegions) {
        *why = "SET_MEM_TABLE with " + std::to_string(n) + " regions (1 to " + std::to_string(kMaxRegions) + " allowed)";
        return false;
      }
      if (m.hdr.size != 8 + n * sizeof(MemRegion)) {
        *why = "SET_MEM_TABLE of " + std::to_string(n) + " regions in a " + std::to_string(m.hdr.size) +
               "-byte payload (" + std::to_string(8 + n * sizeof(MemRegion)) + " expected)";
        return false;
      }
      if (m.nfds != n) {
        *why = "SET_MEM_TABLE of " + std::to_string(n) + " regions with " + std::to_string(m.nfds) +
               " file descriptors (one per region expected)";
        return false;
      }
      MemRegion regions[kMaxRegions];
      std::memcpy(regions, m.payload + 8, n * sizeof(MemRegion));
      Detach();
      if (!mem_.Map(regions, n, m.fds, why)) {
        *why = "SET_MEM_TABLE: " + *why;
        return false;
      }
      m.CloseFds();  // the mappings keep the memory
      return true;
    }
    case kSetVringNum:
      if (!queue_index_ok()) return false;
      if (!VringSizeValid(st.num)) {
        *why = "SET_VRING_NUM " + std::to_string(st.num) + " for queue " + std::to_string(st.index) +
               ": a split ring has a power-of-two size from 1 to " + std::to_string(kMaxRingSize);
        return false;
      }
      Detach();
      q_[st.index].num = st.num;
      return true;
    case kSetVringBase:
      if (!queue_index_ok()) return false;
      if (st.num > 0xFFFF) {
        *why = "SET_VRING_BASE " + std::to_string(st.num) + " for queue " + std::to_string(st.index) +
               ": a split ring's index is 16 bits";
        return false;
      }
      Detach();
      // Kept for GET_VRING_BASE; the switch resumes from the ring's used
      // index, which after a reconnect is where the peer really is.
      q_[st.index].base = st.num;
      return true;
    case kSetVringAddr: {
      VringAddr a;
      std::memcpy(&a, m.payload, sizeof a);
      if (a.index >= kQueues) {
        *why = "SET_VRING_ADDR for queue " + std::to_string(a.index) + ": one queue pair has queues 0 and 1";
        return false;
      }
      if (a.flags != 0) {
        *why = "SET_VRING_ADDR with flags " + Hex(a.flags) + " (dirty-page logging is never negotiated)";
        return false;
      }
      Detach();
      q_[a.index].addr = a;
      q_[a.index].addr_set = true;
      return true;
    }
    case kGetVringBase: {
      if (!queue_index_ok()) return false;
      Detach();
      Queue& q = q_[st.index];
      q.started = false;
      VringState reply{st.index, q.base};
      // Where the switch got to: every chain it took is in the used ring.
      if (q.addr_set && q.num != 0) {
        if (const uint8_t* used = mem_.FromUser(q.addr.used_user_addr, VringUsedBytes(q.num))) {
          reply.num = __atomic_load_n(reinterpret_cast<const uint16_t*>(used + 2), __ATOMIC_ACQUIRE);
        }
      }
      q.base = reply.num;
      return SendReply(fd, r, &reply, sizeof reply, why);
    }
    case kSetVringKick: {
      uint64_t index = 0;
      std::memcpy(&index, m.payload, 8);
      index &= kVringIndexMask;
      if (index < kQueues) Detach();
      return TakeQueueFd(m, index < kQueues ? &q_[index].kick : nullptr, index < kQueues ? &q_[index].started : nullptr, why);
    }
    case kSetVringCall:
    case kSetVringErr: {
      uint64_t index = 0;
      std::memcpy(&index, m.payload, 8);
      index &= kVringIndexMask;
      if (index >= kQueues) return TakeQueueFd(m, nullptr, nullptr, why);  // reports the bad index
      Detach();
      return TakeQueueFd(m, r == kSetVringCall ? &q_[index].call : &q_[index].err, nullptr, why);
    }
    case kSetVringEnable:
      if (!queue_index_ok()) return false;
      if (st.num > 1) {
        *why = "SET_VRING_ENABLE " + std::to_string(st.num) + " for queue " + std::to_string(st.index) + " (0 or 1)";
        return false;
      }
      if (st.num == 0) Detach();
      q_[st.index].enabled = st.num == 1;
      return true;
    default:
      *why = std::string(RequestName(r)) + " is not implemented";
      return false;
  }
}

bool Session::Views(VringView* rx, VringView* tx, std::string* why) const {
  for (uint32_t i = 0; i < kQueues; ++i) {
    const Queue& q = q_[i];
    uint8_t* desc = mem_.FromUser(q.addr.desc_user_addr, VringDescBytes(q.num));
    uint8_t* avail = mem_.FromUser(q.addr.avail_user_addr, VringAvailBytes(q.num));
    uint8_t* used = mem_.FromUser(q.addr.used_user_addr, VringUsedBytes(q.num));
    if (desc == nullptr || avail == nullptr || used == nullptr) {
      *why = "the ring of queue " + std::to_string(i) + " (desc " + Hex(q.addr.desc_user_addr) + ", avail " +
             Hex(q.addr.avail_user_addr) + ", used " + Hex(q.addr.used_user_addr) + ", " + std::to_string(q.num) +
             " entries) is not inside the memory table";
      return false;
    }
    if (reinterpret_cast<uintptr_t>(desc) % 16 != 0 || reinterpret_cast<uintptr_t>(avail) % 2 != 0 ||
        reinterpret_cast<uintptr_t>(used) % 4 != 0) {
      *why = "the ring of queue " + std::to_string(i) + " is misaligned (desc 16, avail 2, used 4 bytes)";
      return false;
    }
    (i == kRxQueue ? *rx : *tx) = VringView::Split(desc, avail, used, q.num);
  }
  return true;
}

// The source MAC of the first frame waiting in the TX ring, read without
// consuming it (the switch will take that frame once the device is in). The
// chain is validated exactly as the switch would.
bool Session::LearnMac(const VringView& tx, std::string* why) {
  RegionTable table;
  for (const Region& r : mem_.Regions()) table.Add(r);
  VringDevice ring(tx, &table, kMaxChainSegs, RingDirection::kDeviceReads);
  uint32_t n = 0;
  Violation v = ring.Avail(&n);
  if (v == Violation::kNone && n == 0) return true;
  Chain c;
  if (v == Violation::kNone) v = ring.Pop(&c);
  if (v != Violation::kNone) {
    *why = std::string("its TX ring is broken (") + ViolationName(v) + ")";
    return false;
  }
  const uint32_t hl = (features_ & kFeatureVersion1) ? kVirtioNetHdrLenV1 : kVirtioNetHdrLen;
  if (c.out_len < hl + kEthHdrLen) return true;  // a runt: the switch drops it, wait for the next
  uint8_t src[6];
  GatherFromSegments(c.seg, c.nseg, hl + 6, src, 6);
  const uint64_t mac = MacAt(src);
  if (mac == 0 || MacIsGroup(mac)) {
    if (!warned_mac_) log_(false, "vhost-user " + cfg_.name + ": its first frame's source " + FormatMac(mac) +
                                      " is not a unicast MAC; waiting for one that is (or give mac=)");
    warned_mac_ = true;
    return true;
  }
  mac_ = mac;
  return true;
}

bool Session::TryAttach(std::string* why) {
  if (slot_ >= 0 || !features_set_ || !mem_.mapped()) return true;
  for (const Queue& q : q_) {
    if (q.num == 0 || !q.addr_set || !q.started || !q.enabled) return true;
  }
  VringView rx, tx;
  if (!Views(&rx, &tx, why)) return false;
  if (mac_ == 0 && !LearnMac(tx, why)) return false;
  if (mac_ == 0) return true;  // no frame yet: Tick looks again
  DeviceConfig c;
  c.domid = cfg_.domid;
  c.dev = 0;
  c.mac = mac_;
  c.vlan_from_slot = true;
  c.tx_split = tx;
  c.rx_split = rx;
  c.tx_num = tx.num;
  c.rx_num = rx.num;
  c.net_hdr_len = (features_ & kFeatureVersion1) ? kVirtioNetHdrLenV1 : kVirtioNetHdrLen;
  c.tx_call_fd = q_[kTxQueue].call;
  c.rx_call_fd = q_[kRxQueue].call;
  c.kick_fd = q_[kTxQueue].kick;  // -1 for a peer that polls: the switch then polls it too
  c.regions = mem_.Regions();
  c.memory_lost = mem_.lost();
  try {
    slot_ = int(sw_->AddDevice(c));
  } catch (const SysError& e) {
    *why = std::string("the switch refused it: ") + e.what();
    return false;
  }
  log_(true, "(" + std::to_string(slot_) + ") MAC_ADDRESS " + FormatMac(mac_) + " and VLAN_TAG " +
                 std::to_string(kVlanPoolBase + slot_) + " registered (vhost-user " + cfg_.name + ", rings " +
                 std::to_string(rx.num) + "/" + std::to_string(tx.num) + ", " + std::to_string(c.regions.size()) +
                 " memory regions, " + std::to_string(c.net_hdr_len) + "-byte header, memory " +
                 (mem_.sealed() == c.regions.size() ? "sealed" : "not sealable, SIGBUS-guarded") + ")");
  return true;
}

uint64_t Session::OfferedFeatures() const {
  return kOfferedFeatures | (sw_->RingsInOrder() ? kFeatureInOrder : 0);
}

bool Session::Tick(std::string* why) {
  if (mem_.truncated()) {
    // The SIGBUS guard caught an access past the end of a memory file the peer shrank.
    *why = "quarantined: memory_truncated (the peer shrank a memory file under its mapping; it reads zeros now)";
    Detach();
    return false;
  }
  if (slot_ < 0) return TryAttach(why);
  for (const DeviceStatsSnapshot& s : sw_->Stats()) {
    if (s.slot != uint32_t(slot_) || s.state == DeviceState::kActive) continue;
    std::string reason = DeviceStateName(s.state);
    for (uint32_t v = 1; v < kViolationCount; ++v) {
      if (s.drops[v] != 0) reason = ViolationName(Violation(v));
    }
    *why = "quarantined by the switch: " + reason;
    Detach();
    return false;
  }
  return true;
}

}  // namespace xsw::vhost
