// The switch's control side: configuration, device slots, the snapshot
// handshake, the data thread's lifecycle, stats and events. The per-packet
// code is in datapath.cc.
#include "switch/switch.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "common/adaptive_poll.h"
#include "common/errors.h"
#include "common/ethernet.h"
#include "common/hex.h"

namespace xsw {

namespace {

constexpr uint32_t kMinMtu = 68;
constexpr uint32_t kMaxMtu = 9000;
constexpr uint32_t kMaxDevicesLimit = 4096;

std::string Who(const DeviceConfig& c) {
  return "domain " + std::to_string(c.domid) + " device " + std::to_string(c.dev);
}

// The mappings the control plane reports must cover what the data plane will
// touch: each ring's whole layout, the flag byte, each region's window.
void CheckMappings(const DeviceConfig& c) {
  auto ring = [&c](const char* which, uint32_t num, uint64_t len) {
    if (!VringSizeValid(num)) {
      throw SysError(EINVAL, std::string("the ") + which + " ring of " + Who(c) + " has " + std::to_string(num) +
                                 " entries: give a power of two from 1 to " + std::to_string(kMaxRingSize));
    }
    if (len < VringSize(num)) {
      throw SysError(EINVAL, std::string("the ") + which + " ring of " + Who(c) + " (" + std::to_string(num) +
                                 " entries) needs " + std::to_string(VringSize(num)) + " bytes but its mapping has " +
                                 std::to_string(len) + ": map all " + std::to_string(VringPages(num)) +
                                 " of its pages");
    }
  };
  ring("TX", c.tx_num, c.tx_ring_len);
  ring("RX", c.rx_num, c.rx_ring_len);
  if (c.flag_len == 0) {
    throw SysError(EINVAL, "the flag page of " + Who(c) + " has an empty mapping: map its page");
  }
  for (size_t i = 0; i < c.regions.size(); ++i) {
    const Region& r = c.regions[i];
    if (r.map_len < r.len) {
      throw SysError(EINVAL, "region " + std::to_string(i) + " of " + Who(c) + " (gva " + Hex(r.gva) + ", " +
                                 std::to_string(r.len) + " bytes) runs past its mapping of " +
                                 std::to_string(r.map_len) + " bytes: map the whole region");
    }
  }
}

// A split ring's parts (vhost-user) must each lie inside one region's
// mapping: the vhost layer checked them against the peer's memory table, and
// this checks again against what is actually mapped.
void CheckSplitMappings(const DeviceConfig& c) {
  auto inside = [&c](const void* p, uint64_t bytes) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    for (const Region& r : c.regions) {
      const uintptr_t h = reinterpret_cast<uintptr_t>(r.hva);
      if (a >= h && a - h <= r.map_len && bytes <= r.map_len - (a - h)) return true;
    }
    return false;
  };
  auto ring = [&](const char* which, const VringView& v) {
    if (!VringSizeValid(v.num)) {
      throw SysError(EINVAL, std::string("the ") + which + " ring of " + Who(c) + " has " + std::to_string(v.num) +
                                 " entries: give a power of two from 1 to " + std::to_string(kMaxRingSize));
    }
    if (!inside(v.desc, VringDescBytes(v.num)) || !inside(v.avail, VringAvailBytes(v.num)) ||
        !inside(v.used, VringUsedBytes(v.num))) {
      throw SysError(EINVAL, std::string("the ") + which + " ring of " + Who(c) +
                                 " is not wholly inside the device's mapped memory: map the regions holding it");
    }
  };
  ring("TX", c.tx_split);
  ring("RX", c.rx_split);
}

}  // namespace

void Switch::Validate(const SwitchConfig& cfg) {
  if (cfg.mtu < kMinMtu || cfg.mtu > kMaxMtu) {
    throw SysError(EINVAL, "mtu " + std::to_string(cfg.mtu) + " is out of range: give " + std::to_string(kMinMtu) +
                               ".." + std::to_string(kMaxMtu));
  }
  if (cfg.max_devices < 1 || cfg.max_devices > kMaxDevicesLimit) {
    throw SysError(EINVAL, "maxDevices " + std::to_string(cfg.max_devices) + " is out of range: give 1.." +
                               std::to_string(kMaxDevicesLimit));
  }
}

Switch::Switch(const SwitchConfig& cfg, std::unique_ptr<NicPort> nic)
    : cfg_(cfg), nic_(std::move(nic)), snap_(nullptr) {
  Validate(cfg);
  if (nic_ && nic_->TxCapacity() < MaxFrame(cfg.mtu)) {
    throw SysError(EINVAL, "port " + nic_->name() + " carries frames of at most " +
                               std::to_string(nic_->TxCapacity()) + " bytes, less than mtu " +
                               std::to_string(cfg.mtu) + " needs: open it for a larger frame");
  }
  devices_.reset(new Device[cfg.max_devices]);
  for (uint32_t i = 0; i < cfg.max_devices; ++i) devices_[i].slot = uint16_t(i);
  in_use_.assign(cfg.max_devices, false);
  touched_.reset(new uint16_t[cfg.max_devices]);
  guest_busy_.reset(new uint8_t[cfg.max_devices]());
  guest_next_dev_.reset(new uint16_t[cfg.max_devices]());
  nic_vlan_rx_.reset(new Counter[kVlanCount]);
  nic_vlan_tx_.reset(new Counter[kVlanCount]);
  pollfds_.reset(new pollfd[cfg.max_devices + 3]);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw SysError(errno, "cannot create the switch's wake-up eventfd (" + ErrnoText(errno) + ")");
  snap_.store(new Snapshot(), std::memory_order_release);
}

Switch::~Switch() {
  Stop();
  delete snap_.load();
  close(wake_fd_);
}

uint32_t Switch::AddDevice(const DeviceConfig& c) {
  if (c.mac == 0 || c.mac > 0xFFFFFFFFFFFFull || MacIsGroup(c.mac)) {
    throw SysError(EINVAL, "MAC " + FormatMac(c.mac) + " of " + Who(c) + " is not a unicast address: give a unicast MAC");
  }
  if (c.vlan > kMaxVlanId) {
    throw SysError(EINVAL, "VLAN " + std::to_string(c.vlan) + " of " + Who(c) + " is out of range: give 0..4095");
  }
  if (c.network != kNoNetwork && (c.network < 1 || c.network > 4094)) {
    throw SysError(EINVAL, "network " + std::to_string(c.network) + " of " + Who(c) +
                               " is out of range: give a VLAN id 1..4094, or none");
  }
  const bool split = c.tx_split.desc != nullptr;
  if (!split && (!c.tx_ring || !c.rx_ring || !c.flag)) {
    throw SysError(EINVAL, Who(c) + " is missing its TX ring, RX ring or flag page: map all three first");
  }
  if (c.regions.empty()) {
    throw SysError(EINVAL, Who(c) + " has no memory region: map its mempools before adding it");
  }
  if (c.net_hdr_len != kVirtioNetHdrLen && c.net_hdr_len != kVirtioNetHdrLenV1) {
    throw SysError(EINVAL, "the virtio-net header of " + Who(c) + " is " + std::to_string(c.net_hdr_len) +
                               " bytes: give 10 or 12");
  }
  if (split) {
    CheckSplitMappings(c);
  } else {
    CheckMappings(c);
  }
  int free_slot = -1;
  for (uint32_t i = 0; i < cfg_.max_devices; ++i) {
    const Device& o = devices_[i];
    if (in_use_[i] && o.cfg.mac == c.mac) {
      throw SysError(EEXIST, "MAC " + FormatMac(c.mac) + " is already registered by " + Who(o.cfg));
    }
    if (!in_use_[i] && free_slot < 0) free_slot = int(i);
  }
  if (free_slot < 0) {
    throw SysError(ENOSPC, "no free device slot for " + Who(c) + ": the switch is full (maxDevices " +
                               std::to_string(cfg_.max_devices) + ")");
  }

  // The slot is not in the snapshot: the data thread does not look at it.
  Device& d = devices_[free_slot];
  d.regions.Clear();
  for (size_t i = 0; i < c.regions.size(); ++i) {
    if (!d.regions.Add(c.regions[i])) {
      d.regions.Clear();
      throw SysError(EINVAL, "region " + std::to_string(i) + " of " + Who(c) + " (gva " + Hex(c.regions[i].gva) +
                                 ", " + std::to_string(c.regions[i].len) +
                                 " bytes) is empty, overlaps another or is one too many (at most " +
                                 std::to_string(RegionTable::kCapacity) + ")");
    }
  }
  try {
    if (split) {
      d.tx = std::make_unique<VringDevice>(c.tx_split, &d.regions, kMaxChainSegs, RingDirection::kDeviceReads);
      d.rx = std::make_unique<VringDevice>(c.rx_split, &d.regions, kMaxChainSegs, RingDirection::kDeviceWrites);
      // vhost-user drivers read used->flags (no event index is offered): while
      // we poll, no kicks; the RX ring never wakes us, so never there.
      d.tx->UseNoNotifyFlag();
      d.rx->UseNoNotifyFlag();
    } else {
      d.tx = std::make_unique<VringDevice>(c.tx_ring, c.tx_num, c.tx_ring_len, &d.regions, kMaxChainSegs,
                                           RingDirection::kDeviceReads);
      d.rx = std::make_unique<VringDevice>(c.rx_ring, c.rx_num, c.rx_ring_len, &d.regions, kMaxChainSegs,
                                           RingDirection::kDeviceWrites);
    }
  } catch (const std::invalid_argument& e) {
    d.tx.reset();
    d.rx.reset();
    d.regions.Clear();
    throw SysError(EINVAL, "the rings of " + Who(c) + " are unusable (" + e.what() +
                               "): give 4096-aligned rings of a power-of-two size");
  }
  d.cfg = c;
  if (c.vlan_from_slot) d.cfg.vlan = uint16_t(kVlanPoolBase + free_slot);
  d.counters.Reset();
  d.fault_reason.store(0, std::memory_order_relaxed);
  d.fault_kind.store(FaultKind::kNone, std::memory_order_relaxed);
  d.fault_reported = false;
  d.rx_avail = 0;
  d.rx_touched = false;
  d.rx_want = 0;
  d.state.store(DeviceState::kActive, std::memory_order_release);
  in_use_[free_slot] = true;
  PublishSnapshot();
  return uint32_t(free_slot);
}

void Switch::RemoveDevice(uint32_t slot) {
  if (slot >= cfg_.max_devices || !in_use_[slot]) {
    throw SysError(ENOENT, "no device in slot " + std::to_string(slot) + ": it was never added or is already removed");
  }
  Device& d = devices_[slot];
  in_use_[slot] = false;
  PublishSnapshot();  // returns once the data thread cannot see the device any more
  d.state.store(DeviceState::kRemoved, std::memory_order_release);
  d.tx.reset();
  d.rx.reset();
  d.regions.Clear();
  d.cfg.tx_ring = d.cfg.rx_ring = nullptr;
  d.cfg.flag = nullptr;
  d.cfg.tx_split = d.cfg.rx_split = VringView{};
  d.cfg.tx_call_fd = d.cfg.rx_call_fd = -1;
  d.cfg.kick_fd = -1;
  d.cfg.evtchn = 0;
  d.cfg.regions.clear();
  d.capture.store(nullptr, std::memory_order_release);  // the session goes on without it
}

void Switch::PublishSnapshot() {
  auto next = std::make_unique<Snapshot>();
  for (uint32_t i = 0; i < cfg_.max_devices; ++i) {
    if (in_use_[i]) next->slots.push_back(uint16_t(i));
  }
  // Grouped by guest: the poll loop takes turns per guest, not per device.
  std::stable_sort(next->slots.begin(), next->slots.end(),
                   [this](uint16_t a, uint16_t b) { return devices_[a].cfg.domid < devices_[b].cfg.domid; });
  for (uint32_t i = 0; i < next->slots.size(); ++i) {
    if (i == 0 || devices_[next->slots[i]].cfg.domid != devices_[next->slots[i - 1]].cfg.domid) {
      next->guests.push_back(GuestRange{i, 0});
    }
    ++next->guests.back().count;
  }
  for (uint16_t slot : next->slots) next->by_mac.push_back(MacSlot{devices_[slot].cfg.mac, slot});
  std::sort(next->by_mac.begin(), next->by_mac.end(), [](const MacSlot& a, const MacSlot& b) { return a.mac < b.mac; });
  const Snapshot* old = snap_.exchange(next.release(), std::memory_order_seq_cst);
  WaitQuiescent();
  delete old;
}

void Switch::WaitQuiescent() {
  if (!running()) return;  // PollOnce runs on this thread: nothing else can hold a snapshot
  uint64_t seen = epoch_.load(std::memory_order_seq_cst);
  WakeDataThread();  // it may sleep: one more loop moves the epoch
  while (epoch_.load(std::memory_order_seq_cst) == seen) {
    std::this_thread::sleep_for(std::chrono::microseconds(AdaptivePoll::kMinSleepUs));
  }
}

void Switch::Start() {
  if (running()) return;
  running_.store(true, std::memory_order_seq_cst);
  thread_ = std::thread(&Switch::Run, this);
}

void Switch::Stop() {
  if (!running()) return;
  running_.store(false, std::memory_order_seq_cst);
  WakeDataThread();
  thread_.join();
}

uint32_t Switch::PollOnce() {
  if (running()) throw std::logic_error("PollOnce while the data-plane thread runs: stop it first");
  return Poll();
}

void Switch::Run() {
  if (cfg_.busy_poll) {
    while (running_.load(std::memory_order_relaxed)) Poll();
    return;
  }
  const uint32_t spin = cfg_.interrupt ? 1 : AdaptivePoll::kIdlePollsBeforeSleep;
  uint32_t idle = 0;
  while (running_.load(std::memory_order_relaxed)) {
    if (Poll() != 0) {
      idle = 0;
      fallback_us_ = AdaptivePoll::kMinSleepUs;
    } else if (++idle >= spin) {
      Sleep();  // idle stays: after a timed sleep the next empty loop sleeps again, longer
    }
  }
}

std::vector<DeviceStatsSnapshot> Switch::Stats() const {
  std::vector<DeviceStatsSnapshot> out;
  for (uint32_t i = 0; i < cfg_.max_devices; ++i) {
    const Device& d = devices_[i];
    DeviceState state = d.state.load(std::memory_order_acquire);
    if (state == DeviceState::kFree) continue;
    DeviceStatsSnapshot s;
    s.slot = i;
    s.domid = d.cfg.domid;
    s.dev = d.cfg.dev;
    s.mac = d.cfg.mac;
    s.vlan = d.cfg.vlan;
    s.network = d.cfg.network;
    s.state = state;
    const DeviceCounters& k = d.counters;
    s.tx_total = k.tx_total.Get();
    s.tx_dropped = k.tx_dropped.Get();
    s.rx_total = k.rx_total.Get();
    s.rx_dropped = k.rx_dropped.Get();
    s.tx_bytes = k.tx_bytes.Get();
    s.rx_bytes = k.rx_bytes.Get();
    for (uint32_t r = 0; r < kDropCount; ++r) s.drops[r] = k.drops[r].Get();
    out.push_back(s);
  }
  return out;
}

NicStatsSnapshot Switch::NicStats() const {
  NicStatsSnapshot s;
  s.present = nic_ != nullptr;
  s.rx = nic_counters_.rx.Get();
  s.tx = nic_counters_.tx.Get();
  s.dropped = nic_counters_.dropped.Get();
  for (uint32_t r = 0; r < kDropCount; ++r) s.drops[r] = nic_counters_.drops[r].Get();
  return s;
}

std::vector<NicVlanStatsSnapshot> Switch::NicVlanStats() const {
  std::vector<NicVlanStatsSnapshot> out;
  for (uint32_t v = 0; v < kVlanCount; ++v) {
    NicVlanStatsSnapshot s;
    s.vlan = uint16_t(v);
    s.rx = nic_vlan_rx_[v].Get();
    s.tx = nic_vlan_tx_[v].Get();
    if (s.rx != 0 || s.tx != 0) out.push_back(s);
  }
  return out;
}

std::vector<SwitchEventRecord> Switch::DrainEvents() {
  std::vector<SwitchEventRecord> out;
  for (uint32_t i = 0; i < cfg_.max_devices; ++i) {
    Device& d = devices_[i];
    if (d.fault_reported) continue;
    FaultKind kind = d.fault_kind.load(std::memory_order_acquire);
    if (kind == FaultKind::kNone) continue;
    d.fault_reported = true;
    SwitchEventRecord e;
    e.slot = i;
    e.domid = d.cfg.domid;
    e.dev = d.cfg.dev;
    e.kind = kind;
    e.reason = kind == FaultKind::kDead
                   ? "vring_flag_cleared"
                   : DropName(d.fault_reason.load(std::memory_order_relaxed));
    out.push_back(e);
  }
  return out;
}

uint32_t Switch::CaptureStart(const std::vector<uint32_t>& ports, uint32_t snaplen, uint32_t slots) {
  if (ports.empty()) throw SysError(EINVAL, "a capture needs at least one device or the NIC");
  if (ports.size() > 0xFFFF) throw SysError(EINVAL, "a capture takes at most 65535 ports");
  for (uint32_t p : ports) {
    if (p == kCaptureNic) {
      if (!nic_) throw SysError(ENOENT, "this switch has no NIC to capture: start xsw-backend with -p");
      if (nic_capture_.load(std::memory_order_relaxed)) throw SysError(EBUSY, "the NIC is already being captured: stop that capture first");
    } else {
      if (p >= cfg_.max_devices || !in_use_[p]) throw SysError(ENOENT, "no device in slot " + std::to_string(p));
      if (devices_[p].capture.load(std::memory_order_relaxed)) {
        throw SysError(EBUSY, Who(devices_[p].cfg) + " is already being captured: stop that capture first");
      }
    }
  }
  std::unique_ptr<CaptureRing> ring;
  try {
    ring = std::make_unique<CaptureRing>(slots, std::min(snaplen, MaxFrame(cfg_.mtu)));
  } catch (const std::invalid_argument& e) {
    throw SysError(EINVAL, e.what());
  }
  for (uint32_t i = 0; i < ports.size(); ++i) {
    if (ports[i] == kCaptureNic) {
      nic_capture_if_ = uint16_t(i);
      nic_capture_.store(ring.get(), std::memory_order_release);
    } else {
      devices_[ports[i]].capture_if = uint16_t(i);
      devices_[ports[i]].capture.store(ring.get(), std::memory_order_release);
    }
  }
  const uint32_t id = next_capture_++;
  captures_[id] = CaptureSession{std::move(ring), ports};
  return id;
}

void Switch::CaptureStop(uint32_t id) {
  auto it = captures_.find(id);
  if (it == captures_.end()) throw SysError(ENOENT, "no capture session " + std::to_string(id));
  CaptureRing* ring = it->second.ring.get();
  for (uint32_t p : it->second.ports) {
    std::atomic<CaptureRing*>& at = p == kCaptureNic ? nic_capture_ : devices_[p].capture;
    CaptureRing* expected = ring;
    at.compare_exchange_strong(expected, nullptr, std::memory_order_seq_cst);
  }
  WaitQuiescent();  // no loop holds the ring any more
  captures_.erase(it);
}

CaptureRing* Switch::Capture(uint32_t id) {
  auto it = captures_.find(id);
  return it == captures_.end() ? nullptr : it->second.ring.get();
}

}  // namespace xsw
