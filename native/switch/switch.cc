// The switch's control side: configuration, device slots, the snapshot
// handshake, the data thread's lifecycle, stats and events. The per-packet
// code is in datapath.cc.
#include "switch/switch.h"

#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "common/adaptive_poll.h"
#include "common/cycles.h"
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
  if (cfg.cores.empty()) return;
  if (cfg.cores.size() > kMaxDataThreads) {
    throw SysError(EINVAL, "--cores lists " + std::to_string(cfg.cores.size()) + " CPUs: give at most " +
                               std::to_string(kMaxDataThreads));
  }
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
    throw SysError(errno, "cannot read this process's CPU affinity (" + ErrnoText(errno) + ")");
  }
  std::string mask;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &allowed)) mask += (mask.empty() ? "" : ",") + std::to_string(c);
  }
  for (size_t i = 0; i < cfg.cores.size(); ++i) {
    const int c = cfg.cores[i];
    if (std::find(cfg.cores.begin(), cfg.cores.begin() + long(i), c) != cfg.cores.begin() + long(i)) {
      throw SysError(EINVAL, "CPU " + std::to_string(c) + " is listed twice in --cores: give each CPU once");
    }
    if (c < 0 || c >= CPU_SETSIZE || !CPU_ISSET(c, &allowed)) {
      throw SysError(EINVAL, "CPU " + std::to_string(c) + " in --cores is not one this process may run on: give CPUs from " +
                                 mask);
    }
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
  device_store_.reset(new Device[cfg.max_devices]);
  devices_ = device_store_.get();
  for (uint32_t i = 0; i < cfg.max_devices; ++i) devices_[i].slot = uint16_t(i);
  in_use_.assign(cfg.max_devices, false);
  nic_vlan_rx_.reset(new Counter[kVlanCount]);
  nic_vlan_tx_.reset(new Counter[kVlanCount]);
  owner_store_.reset(new uint8_t[cfg.max_devices]());
  gen_store_.reset(new uint32_t[cfg.max_devices]());
  owner_ = owner_store_.get();
  gen_ = gen_store_.get();
  n_threads_ = cfg.cores.empty() ? 1 : uint32_t(cfg.cores.size());
  cpu_ = cfg.cores.empty() ? -1 : cfg.cores[0];
  if (n_threads_ > 1) {
    tx_parts_store_.reset(new TxParts[cfg.max_devices]);
    link_store_.reset(new HandoffLink[n_threads_ * n_threads_]);
    tx_parts_ = tx_parts_store_.get();
    links_ = link_store_.get();
  }
  InitThread();
  threads_.push_back(this);
  for (uint32_t t = 1; t < n_threads_; ++t) {
    lanes_.push_back(std::unique_ptr<Switch>(new Switch(this, t, cfg.cores[t])));
    threads_.push_back(lanes_.back().get());
  }
}

Switch::Switch(Switch* primary, uint32_t index, int cpu)
    : cfg_(primary->cfg_), snap_(nullptr), primary_(primary), index_(index), n_threads_(primary->n_threads_), cpu_(cpu) {
  devices_ = primary->devices_;
  owner_ = primary->owner_;
  tx_parts_ = primary->tx_parts_;
  links_ = primary->links_;
  nic_elsewhere_ = primary->nic_ != nullptr;
  InitThread();
}

// What each data thread has of its own: scratch, sleep, an empty snapshot.
void Switch::InitThread() {
  touched_.reset(new uint16_t[cfg_.max_devices]);
  tx_done_.reset(new uint16_t[cfg_.max_devices]);
  guest_busy_.reset(new uint8_t[cfg_.max_devices]());
  guest_next_dev_.reset(new uint16_t[cfg_.max_devices]());
  pollfds_.reset(new pollfd[cfg_.max_devices + 3]);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw SysError(errno, "cannot create the switch's wake-up eventfd (" + ErrnoText(errno) + ")");
  auto empty = new Snapshot();
  empty->gen.assign(cfg_.max_devices, 0);
  snap_.store(empty, std::memory_order_release);
}

Switch::~Switch() {
  Stop();
  lanes_.clear();
  delete snap_.load();
  close(wake_fd_);
}

void Switch::SetEvents(DeviceEvents* events) {
  for (Switch* t : threads_) t->events_ = events;
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
  d.rx_hint_gen = 0;  // the last receiver of the slot's previous device means nothing to this one
  // Its data thread: the one with the fewest devices (the NIC counts as one on thread 0).
  std::vector<uint32_t> load(n_threads_, 0);
  if (nic_ && n_threads_ > 1) load[0] = 1;
  for (uint32_t i = 0; i < cfg_.max_devices; ++i) {
    if (in_use_[i]) ++load[owner_[i]];
  }
  owner_[free_slot] = uint8_t(std::min_element(load.begin(), load.end()) - load.begin());
  if (next_gen_ == 0) next_gen_ = 1;  // 0 means "no device"
  gen_[free_slot] = next_gen_++;
  if (tx_parts_ != nullptr) {
    const uint32_t heads = split ? c.tx_split.num : c.tx_num;
    tx_parts_[free_slot].parts.reset(new uint8_t[heads]());
    tx_parts_[free_slot].ok.reset(new uint8_t[heads]());
    tx_parts_[free_slot].touched = false;
  }
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
  gen_[slot] = 0;
  // Returns once no data thread can see the device any more; handoffs of it
  // still queued then fail the generation check and are dropped unread.
  PublishSnapshot();
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
  std::vector<const Snapshot*> old;
  for (uint32_t t = 0; t < n_threads_; ++t) {
    auto next = std::make_unique<Snapshot>();
    next->gen.assign(gen_, gen_ + cfg_.max_devices);
    for (uint32_t i = 0; i < cfg_.max_devices; ++i) {
      if (!in_use_[i]) continue;
      if (owner_[i] == t) {
        next->slots.push_back(uint16_t(i));
      } else {
        next->others.push_back(uint16_t(i));
      }
      next->by_mac.push_back(MacSlot{devices_[i].cfg.mac, uint16_t(i)});
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
    std::sort(next->by_mac.begin(), next->by_mac.end(), [](const MacSlot& a, const MacSlot& b) { return a.mac < b.mac; });
    old.push_back(threads_[t]->snap_.exchange(next.release(), std::memory_order_seq_cst));
  }
  WaitQuiescent();
  for (const Snapshot* o : old) delete o;
}

void Switch::WaitQuiescent() {
  if (!running()) return;  // PollOnce runs on this thread: nothing else can hold a snapshot
  std::vector<uint64_t> seen;
  for (Switch* t : threads_) {
    seen.push_back(t->epoch_.load(std::memory_order_seq_cst));
    t->WakeDataThread();  // it may sleep: one more loop moves the epoch
  }
  for (uint32_t i = 0; i < threads_.size(); ++i) {
    while (threads_[i]->epoch_.load(std::memory_order_seq_cst) == seen[i]) {
      std::this_thread::sleep_for(std::chrono::microseconds(AdaptivePoll::kMinSleepUs));
    }
  }
}

void Switch::Start() {
  if (running()) return;
  for (Switch* t : threads_) {
    t->running_.store(true, std::memory_order_seq_cst);
    t->thread_ = std::thread(&Switch::Run, t);
  }
}

void Switch::Stop() {
  if (!running()) return;
  for (Switch* t : threads_) {
    t->running_.store(false, std::memory_order_seq_cst);
    t->WakeDataThread();
    t->thread_.join();
  }
}

uint32_t Switch::PollOnce() {
  if (running()) throw std::logic_error("PollOnce while the data-plane thread runs: stop it first");
  return Poll();
}

uint32_t Switch::PollOnce(uint32_t thread) {
  if (running()) throw std::logic_error("PollOnce while the data-plane thread runs: stop it first");
  if (thread >= n_threads_) throw std::logic_error("PollOnce: no data thread " + std::to_string(thread));
  return threads_[thread]->Poll();
}

void Switch::Run() {
  if (cpu_ >= 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu_, &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);  // Validate checked the CPU is allowed
  }
  LoopCycles cycles;
  if (cfg_.busy_poll) {
    while (running_.load(std::memory_order_relaxed)) cycles.After(Poll() != 0, processing_cycles_, idle_cycles_);
    return;
  }
  const uint32_t spin = cfg_.interrupt ? 1 : AdaptivePoll::kIdlePollsBeforeSleep;
  uint32_t idle = 0;
  while (running_.load(std::memory_order_relaxed)) {
    const bool worked = Poll() != 0;
    cycles.After(worked, processing_cycles_, idle_cycles_);
    if (worked) {
      idle = 0;
      fallback_us_ = AdaptivePoll::kMinSleepUs;
    } else if (++idle >= spin && (n_threads_ == 1 || ReadyToSleep())) {
      Sleep();  // idle stays: after a timed sleep the next empty loop sleeps again, longer
      cycles.After(false, processing_cycles_, idle_cycles_);  // the sleep is idle time
      if (n_threads_ > 1) asleep_.store(false, std::memory_order_relaxed);
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
    s.thread = owner_[i];
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

std::vector<ThreadStatsSnapshot> Switch::ThreadStats() const {
  std::vector<ThreadStatsSnapshot> out;
  for (Switch* t : threads_) {
    ThreadStatsSnapshot s;
    s.index = t->index_;
    s.cpu = t->cpu_;
    s.loops = t->epoch_.load(std::memory_order_relaxed);
    s.sleeps = t->sleeps_.Get();
    s.handed_out = t->handed_out_.Get();
    s.handed_in = t->handed_in_.Get();
    s.handoff_dropped = t->handoff_dropped_.Get();
    s.processing_cycles = t->processing_cycles_.Get();
    s.idle_cycles = t->idle_cycles_.Get();
    out.push_back(s);
  }
  for (uint32_t i = 0; i < cfg_.max_devices; ++i) {
    if (in_use_[i]) ++out[owner_[i]].devices;
  }
  if (nic_) ++out[0].devices;
  return out;
}

uint64_t Switch::Loops() const {
  uint64_t n = 0;
  for (Switch* t : threads_) n += t->epoch_.load(std::memory_order_relaxed);
  return n;
}

uint64_t Switch::Sleeps() const {
  uint64_t n = 0;
  for (Switch* t : threads_) n += t->sleeps_.Get();
  return n;
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
  // A session's ring has one writer: the data thread of its ports (the NIC's is thread 0).
  for (uint32_t p : ports) {
    const uint32_t t = p == kCaptureNic ? 0 : owner_[p];
    const uint32_t t0 = ports[0] == kCaptureNic ? 0 : owner_[ports[0]];
    if (t != t0) {
      throw SysError(EINVAL, "these ports are served by different data threads (--cores): capture them in separate sessions");
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
