// One device slot of the switch: a guest's virtio-net device as dom0 sees it
// (its TX and RX rings, its flag page, its regions, its MAC + VLAN pool) and
// its counters.
//
// Ownership of the fields: the control thread fills the configuration while
// the slot is not in the published snapshot; the data thread then reads it
// and owns the rings, the per-batch scratch and every counter (it is the only
// writer; the control thread reads counters with relaxed loads). `state` and
// the fault fields are the only ones both threads write, each as an atomic.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "shm/regions.h"
#include "shm/vring.h"
#include "switch/capture.h"
#include "switch/drops.h"

namespace xsw {

enum class DeviceState : uint8_t { kFree, kActive, kQuarantined, kDead, kRemoved };
const char* DeviceStateName(DeviceState s);  // "free", "active", "quarantined", "dead", "removed"

enum class FaultKind : uint8_t { kNone, kQuarantine, kDead };

// DeviceConfig::network of a device dom0 gave no network: it is in the guide's
// one switching domain (by MAC), its VLAN only marks its pool on the NIC.
constexpr uint16_t kNoNetwork = 0xFFFF;

// What the control plane hands over for a device. Every mapping comes with
// the length the mapper reported for it (the *_len fields, Region::map_len):
// the switch refuses a device whose mappings do not cover what it will read
// and write there, so a control-plane mistake cannot become an access past a
// mapping (defence in depth).
struct DeviceConfig {
  uint16_t domid = 0;
  uint32_t dev = 0;
  uint64_t mac = 0;     // 48 bits, see common/ethernet.h
  uint16_t vlan = 0;    // 0: untagged on the NIC; 1..4095: the tag of its pool
  uint8_t* tx_ring = nullptr;  // the guest's TX ring (we read its buffers)
  uint32_t tx_num = 0;
  uint64_t tx_ring_len = 0;    // bytes mapped at tx_ring: at least VringSize(tx_num)
  uint8_t* rx_ring = nullptr;  // the guest's RX ring (we write its buffers)
  uint32_t rx_num = 0;
  uint64_t rx_ring_len = 0;
  const uint8_t* flag = nullptr;  // byte 0: kVringFlagLive while the guest lives
  uint64_t flag_len = 0;          // bytes mapped at flag: at least 1
  std::vector<Region> regions;    // where the guest's descriptors may point
  // The network (802.1Q VID 1..4094) dom0 assigned, or kNoNetwork. Devices
  // switch frames locally only with devices of the same network (kNoNetwork
  // counts as one: the guide's model); `vlan` stays the tag on the NIC (0 when
  // the uplink carries this network untagged, as its native VLAN).
  uint16_t network = kNoNetwork;

  // vhost-user devices (native/vhost): rings whose desc/avail/used parts live
  // at separate addresses in the peer's memory, each part inside one of
  // `regions`' mappings. When tx_split.desc is set, tx_split and rx_split are
  // used and tx_ring/rx_ring/flag may be null (no flag page: the socket tells
  // when the peer dies).
  VringView tx_split, rx_split;
  uint32_t net_hdr_len = kVirtioNetHdrLen;  // 10, or 12 with VERSION_1
  bool vlan_from_slot = false;              // vlan = kVlanPoolBase + the slot the switch picks
  int tx_call_fd = -1, rx_call_fd = -1;     // eventfds written after used entries are published
  // Raised by vhost-user's SIGBUS guard when the peer's memory file shrank
  // under `regions` (which then read zeros): the device is quarantined with
  // memory_truncated. Null for Xen devices.
  const std::atomic<bool>* memory_lost = nullptr;

  // Wake-ups (docs/dataplane.md#notifications): what tells the sleeping data
  // thread that this device posted frames, and how it tells the guest. A
  // device with neither kick_fd nor evtchn is polled: while it is attached
  // the data thread sleeps only briefly (10..500 µs) when idle.
  int kick_fd = -1;   // readable when the peer kicks its TX ring (vhost-user's kick eventfd); not owned
  uint32_t evtchn = 0;  // local port of the guest's event channel in Switch::events(), 0: none
};

// The VLAN of a device's pool when dom0 assigned none: 1000 + slot.
constexpr uint16_t kVlanPoolBase = 1000;

// A counter written by one thread and read by another: relaxed, no RMW needed.
struct Counter {
  std::atomic<uint64_t> v{0};
  void Add(uint64_t n = 1) { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t Get() const { return v.load(std::memory_order_relaxed); }
  void Reset() { v.store(0, std::memory_order_relaxed); }
};

struct DeviceCounters {
  Counter tx_total, tx_dropped, rx_total, rx_dropped, tx_bytes, rx_bytes;
  Counter drops[kDropCount];
  void Reset();
};

struct Device {
  uint16_t slot = 0;  // this device's index in the switch, fixed at construction
  std::atomic<DeviceState> state{DeviceState::kFree};
  DeviceConfig cfg;
  RegionTable regions;
  std::unique_ptr<VringDevice> tx, rx;
  DeviceCounters counters;

  // Written once by the data thread (reason first, then kind with release).
  std::atomic<uint8_t> fault_reason{0};
  std::atomic<FaultKind> fault_kind{FaultKind::kNone};
  bool fault_reported = false;  // control thread only

  // Data-thread scratch, valid within one poll loop.
  uint32_t tx_avail = 0;   // TX chains seen by this loop's Avail
  uint32_t rx_avail = 0;   // RX chains seen by the last Avail and not popped yet
  bool rx_touched = false; // used entries pushed, PublishUsed pending
  uint32_t rx_want = 0;    // frames of the staged TX burst headed here (0 between bursts)
  // The receiver of this device's last TX burst (its first guest-bound frame,
  // on this thread) and that receiver's generation in the snapshot: the next
  // burst prefetches its RX ring before it knows where its frames go
  // (datapath.cc). Only a hint: used while the snapshot still holds it.
  uint16_t rx_hint_slot = 0;
  uint32_t rx_hint_gen = 0;  // 0: no hint

  // Live capture: the ring of the session that captures this device (null:
  // off, the one check per frame) and its interface index there. Set by the
  // control thread (capture_if first, then the pointer with release).
  std::atomic<CaptureRing*> capture{nullptr};
  uint16_t capture_if = 0;
};

}  // namespace xsw
