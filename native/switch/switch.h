// The back end's switch: device slots, the data-plane thread, and the poll
// loop that moves frames between guests' vrings and the NIC.
//
// Threads. One data thread (Start/Stop) runs PollOnce in a loop and is the
// only one that touches rings, frames and counters. The control thread (JS)
// adds and removes devices by publishing a new immutable Snapshot of the
// slots in use (one atomic pointer swap); the data thread loads it once per
// loop and bumps `epoch_` at the end of each loop. After a swap the control
// thread waits for the epoch to move: from then on the data thread cannot
// hold the old snapshot, so the old snapshot can be freed and a removed
// device's memory unmapped. No lock is taken on the data path. With
// SwitchConfig::cores there is one such data thread per CPU listed, each
// owning some devices; frames between them are handed over (handoff.h).
//
// Per loop: first, for each active device, check its flag byte (0 -> dead)
// and read its TX ring's avail index. Then the guests (domids) with frames
// to send take turns, from a start that rotates every loop: each guest may
// take kBurst chains in all, from its devices in turn (the first device
// rotates too), and a share of the NIC's free transmit slots - the free
// slots divided among the guests whose turn has not come yet - so neither
// the number of devices a guest has nor its place in the slot order buys it
// more of the loop or of the NIC. A device's burst is worked in stages (pop
// and prefetch every chain; classify every frame, pop and prefetch the
// receivers' RX chains; then copy: docs/dataplane.md). Each frame is switched
// by copying it once from the guest's buffer into its destination (another
// guest's RX buffer or a NIC transmit slot); then the TX ring's used index and those of the RX
// rings written into are published, once per device. Then one NIC receive
// burst (each frame's source MAC is remembered in a fixed table, nic_macs.h).
// A ring fault quarantines only the device at fault; bad frames are dropped
// and counted under a named reason (drops.h). Nothing is logged per packet.
#pragma once

#include <poll.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "switch/device.h"
#include "switch/handoff.h"
#include "switch/nic_macs.h"
#include "switch/nic_port.h"

namespace xsw {

struct SwitchConfig {
  bool vm2vm = true;        // switch guest-to-guest frames locally
  bool busy_poll = false;   // never sleep (benchmarks); else adaptive
  uint32_t mtu = 1500;      // 68..9000; a frame is at most mtu + 14 bytes (+4 tagged on the NIC)
  uint32_t max_devices = 64;  // 1..4096
  // Poll modes (docs/dataplane.md#notifications): busy_poll never sleeps;
  // otherwise the data thread sleeps on the devices' wake-ups when idle,
  // after 64 empty loops (adaptive, the default) or after one (interrupt).
  bool interrupt = false;
  // Data threads (docs/dataplane.md#more-than-one-core): empty, one thread
  // left where the scheduler puts it (the default); else one thread per CPU
  // id listed, pinned there. Each must be in the process's affinity mask.
  std::vector<int> cores;
};

// The event channels the switch signals guests with and sleeps on: the
// addon adapts grant/evtchn.h's EventChannels (the switch does not link the
// grant layer). Pending/Unmask are called by the (first) data thread only; Notify by
// every data thread, and once by the control thread when a device is added, so
// Notify must be safe from several threads (the kernel's evtchn ioctl is; the
// simulated platform's is lock-free once the binding has opened the peer's
// table, which happens before the device is published to the data thread).
class DeviceEvents {
 public:
  virtual ~DeviceEvents() = default;
  virtual int fd() const = 0;  // readable while a port has fired
  virtual bool Notify(uint32_t port) = 0;
  virtual uint32_t Pending(uint32_t* ports, uint32_t max) = 0;
  virtual void Unmask(uint32_t port) = 0;
};

struct DeviceStatsSnapshot {
  uint32_t slot = 0;
  uint16_t domid = 0;
  uint32_t dev = 0;
  uint64_t mac = 0;
  uint16_t vlan = 0;
  DeviceState state = DeviceState::kFree;
  uint64_t tx_total = 0, tx_dropped = 0, rx_total = 0, rx_dropped = 0, tx_bytes = 0, rx_bytes = 0;
  uint64_t drops[kDropCount] = {};
  uint16_t network = kNoNetwork;
  uint32_t thread = 0;  // the data thread that owns the device
};

// One data thread's loop counters (docs/dataplane.md#more-than-one-core).
struct ThreadStatsSnapshot {
  uint32_t index = 0;
  int cpu = -1;             // pinned CPU, -1: not pinned
  uint32_t devices = 0;     // devices it owns (the NIC counts on thread 0)
  uint64_t loops = 0, sleeps = 0;
  uint64_t handed_out = 0;  // frames (or group parts) handed to another thread
  uint64_t handed_in = 0;   // ... taken from another thread and switched here
  uint64_t handoff_dropped = 0;  // handoffs or completions whose device had gone (dropped, memory untouched)
  // Its time while running, in CycleCount() units (common/cycles.h): in loops
  // that found work, and in empty loops and sleeps. Only their ratio means anything.
  uint64_t processing_cycles = 0, idle_cycles = 0;
};

// Frames the NIC received and sent on one VLAN (0: untagged).
struct NicVlanStatsSnapshot {
  uint16_t vlan = 0;
  uint64_t rx = 0, tx = 0;
};

struct NicStatsSnapshot {
  bool present = false;
  uint64_t rx = 0, tx = 0, dropped = 0;
  uint64_t drops[kDropCount] = {};
};

struct SwitchEventRecord {
  uint32_t slot = 0;
  uint16_t domid = 0;
  uint32_t dev = 0;
  FaultKind kind = FaultKind::kNone;
  std::string reason;  // a ViolationName, or "vring_flag_cleared"
};

class Switch {
 public:
  // The longest frame the NIC must carry for this MTU (header and a VLAN tag included).
  static uint32_t MaxFrame(uint32_t mtu) { return mtu + kEthHdrLen + kVlanHdrLen; }
  // Throws SysError(EINVAL) naming the bad setting (a CPU of `cores` included).
  static void Validate(const SwitchConfig& cfg);

  // nic may be null: vm2vm only. Throws SysError(EINVAL) for a bad config or
  // a NIC whose transmit buffers are smaller than MaxFrame(mtu).
  Switch(const SwitchConfig& cfg, std::unique_ptr<NicPort> nic);
  ~Switch();  // stops the thread
  Switch(const Switch&) = delete;
  Switch& operator=(const Switch&) = delete;

  // Validates and registers a device; returns its slot. Throws SysError:
  // EEXIST (MAC already registered), ENOSPC (no free slot), EINVAL (bad
  // MAC, VLAN, ring or region, or a ring, flag or region whose mapping is
  // shorter than its layout, named). The switch resumes from the rings' indexes.
  uint32_t AddDevice(const DeviceConfig& cfg);
  // Unregisters a device; returns once the data thread has let go of it, so
  // its memory may be unmapped right after. Its final counters stay readable
  // (state "removed") until the slot is reused. Throws SysError(ENOENT) for
  // a slot that holds no device.
  void RemoveDevice(uint32_t slot);

  void Start();
  void Stop();
  bool running() const { return running_.load(std::memory_order_relaxed); }
  // One iteration of the data-plane loop on the calling thread (tests and
  // tools, while the thread is stopped). Returns the work done (frames moved
  // or dropped, faults found). Throws std::logic_error while running.
  uint32_t PollOnce();
  // The same for data thread `thread` (0..threads()-1): tests drive several
  // threads' loops in turn, deterministically.
  uint32_t PollOnce(uint32_t thread);
  uint32_t threads() const { return n_threads_; }
  std::vector<ThreadStatsSnapshot> ThreadStats() const;

  // True while the switch gives every device's chains back in the order they
  // were made available, on both rings (what vhost-user's VIRTIO_F_IN_ORDER
  // promises the peer; native/vhost offers it only then). One data thread:
  // always (datapath.cc's stages keep that order); with --cores a chain
  // handed to another thread comes back when that thread completes it, after
  // later local chains (handoff.cc).
  bool RingsInOrder() const { return n_threads_ <= 1; }

  std::vector<DeviceStatsSnapshot> Stats() const;
  NicStatsSnapshot NicStats() const;
  // The NIC's frames per VLAN, only VLANs with any.
  std::vector<NicVlanStatsSnapshot> NicVlanStats() const;
  // Quarantines and deaths not reported yet, each once.
  std::vector<SwitchEventRecord> DrainEvents();
  // True if `mac` was the source of a frame from the NIC within the last
  // max_age_s seconds (a host on the LAN side uses it). Any thread.
  bool NicMacSeen(uint64_t mac, uint32_t max_age_s) const {
    return nic_macs_.Seen(mac, NicMacTable::NowSeconds(), max_age_s);
  }

  const SwitchConfig& config() const { return cfg_; }
  const NicPort* nic() const { return nic_.get(); }

  // Live capture (capture.h). Starts a session copying the frames of `ports`
  // (device slots, or kCaptureNic) into a ring of `slots` frames of at most
  // `snaplen` bytes; port i is the session's interface i. Returns the
  // session's id. Throws SysError: ENOENT (no device in a slot, no NIC),
  // EBUSY (a port another session captures), EINVAL (no port, a bad size).
  static constexpr uint32_t kCaptureNic = UINT32_MAX;
  uint32_t CaptureStart(const std::vector<uint32_t>& ports, uint32_t snaplen, uint32_t slots);
  // Ends a session; returns once the data thread has let go of its ring.
  // Throws SysError(ENOENT) for an unknown id.
  void CaptureStop(uint32_t id);
  // The session's ring (drained by the control thread), or null.
  CaptureRing* Capture(uint32_t id);
  // Poll loops run so far (the epochs, summed over the data threads): the switch loop's rate for metrics.
  uint64_t Loops() const;

  // The event channels devices' `evtchn` ports belong to (not owned; set
  // before Start, outlives the switch). Null: no device has a port.
  void SetEvents(DeviceEvents* events);
  // Times the data threads went to sleep (metrics, tests).
  uint64_t Sleeps() const;

 private:
  struct GuestRange {
    uint32_t first;  // index into Snapshot::slots
    uint32_t count;  // devices of this guest
  };
  struct MacSlot {
    uint64_t mac;
    uint16_t slot;
  };
  struct Snapshot {
    // Each data thread has its own: `slots` and `guests` hold its devices;
    // by_mac and gen cover every thread's.
    std::vector<uint16_t> slots;      // slots in use, grouped by guest (domid order), slot order within
    std::vector<GuestRange> guests;   // each guest's run of `slots`
    std::vector<MacSlot> by_mac;      // the same slots sorted by MAC (unique): one lookup per unicast frame
    std::vector<uint16_t> others;     // other threads' slots (the NIC's frames for them)
    std::vector<uint32_t> gen;        // per slot: the device's generation, 0 when not in use
  };
  // A frame's payload after its Ethernet header: `len` bytes from byte `offset` of the segments.
  struct FrameBody {
    const Segment* seg;
    uint32_t nseg;
    uint32_t offset;
    uint32_t len;
  };
  // A frame of a staged TX burst (ServiceGuestTx) between classifying it and copying it.
  enum class Stage : uint8_t {
    kDone,   // dropped (counted) while classified
    kGuest,  // to `dst`, into the RX chain popped for it
    kNic,    // to the NIC
    kGroup,  // broadcast or multicast
    kRemote, // to `dst` (null: the NIC) on another data thread (handoff.cc)
  };
  struct StagedFrame {
    Stage stage;
    uint8_t hdr[kEthHdrLen];  // the private copy of the Ethernet header
    Device* dst;
    FrameBody body;
  };
  struct NicCounters {
    Counter rx, tx, dropped;
    Counter drops[kDropCount];
  };

  // A data thread after the first: shares `primary`'s devices (handoff.cc).
  Switch(Switch* primary, uint32_t index, int cpu);
  void InitThread();
  void Run();
  uint32_t Poll();
  // wakeup.cc: sleep until a device, the NIC or the control thread wakes us;
  // the guest's notification after used entries were published.
  void Sleep();
  void WakeDataThread();
  void NotifyGuest(Device& d, VringDevice& ring);
  void PublishSnapshot();
  void WaitQuiescent();

  bool CheckTx(Device& d, uint32_t* work);
  uint32_t ServiceGuest(const Snapshot& s, uint32_t g);
  uint32_t ServiceGuestTx(const Snapshot& s, Device& d, uint32_t avail);
  bool TakeStagedRx(Device& src, StagedFrame& f, Chain* rx);
  static void PrefetchFrame(const Chain& c);
  static void PrefetchBuffer(const Chain& c);
  Device* RxHint(const Snapshot& s, const Device& src) const;
  Device* FindByMac(const Snapshot& s, uint64_t mac) const;
  void ClassifyGuestFrame(const Snapshot& s, Device& src, const Chain& c, StagedFrame* f);
  void CompleteGuestFrame(const Snapshot& s, Device& src, const StagedFrame& f, const Chain& rx);
  bool SendToNic(Device& src, const uint8_t* hdr, const FrameBody& body);
  bool WriteToNic(const Device& src, const uint8_t* hdr, const FrameBody& body, Drop* why);
  bool DeliverToGuest(Device& dst, const uint8_t* hdr, const FrameBody& body);
  // A group frame's copies to this thread's members of the sender's network (vm2vm only); sets
  // *any when there is a member.
  bool DeliverToMembers(const Snapshot& s, Device& src, const StagedFrame& f, bool* any);
  bool PopRx(Device& dst, Chain* rx);
  bool FillRx(Device& dst, const Chain& rx, const uint8_t* hdr, const FrameBody& body);
  uint32_t ServiceNicRx(const Snapshot& s);
  void SwitchNicFrame(const Snapshot& s, const NicRxFrame& f);
  void Touch(Device& d);
  // Publishes the used entries of every RX ring written since the last call
  // and of `tx` (a TX ring whose used->idx was just stored, or null), then
  // calls the peers that want it, after one fence for all of them.
  void FlushTouched(Device* tx = nullptr);
  void Quarantine(Device& d, Violation v);
  void MarkDead(Device& d);
  void NicDrop(Drop why);
  // Several data threads (handoff.cc).
  HandoffLink& Link(uint32_t from, uint32_t to) const { return links_[from * n_threads_ + to]; }
  uint32_t TakeHandoffs(const Snapshot& s);
  void Complete(const Snapshot& s, const HandoffDone& c);
  void SwitchHandoff(const Snapshot& s, const Handoff& h, HandoffDone* c);
  bool HandedToNic(const Device& src, const uint8_t* hdr, const FrameBody& body);
  Handoff* NewHandoff(uint32_t to);
  void SendHandoff(uint32_t to);
  void HandOff(const Snapshot& s, Device& src, StagedFrame& f, uint16_t head);
  void FinishTx(Device& src, uint16_t head, bool delivered, uint32_t bytes);
  bool HandNicFrame(const Snapshot& s, const uint8_t* hdr, const FrameBody& body, uint16_t vid, bool group,
                    bool* active, bool* delivered);
  void FlushTxDone();
  bool ReadyToSleep();
  bool HandoffRoom() const;
  void WakePeers();
  // Capture hooks (datapath_capture.cc), called only when a ring is set.
  void CaptureGuestTx(CaptureRing& cap, const Device& d, const Chain& c, uint32_t frame_len);
  void CaptureFrame(CaptureRing& cap, uint16_t iface, CaptureDir dir, const uint8_t* hdr, const FrameBody& body);
  void CaptureBytes(CaptureRing& cap, uint16_t iface, CaptureDir dir, const uint8_t* data, uint32_t len);
  void CaptureNicRx(CaptureRing& cap, const NicRxFrame& f);

  SwitchConfig cfg_;
  std::unique_ptr<NicPort> nic_;
  std::unique_ptr<Device[]> device_store_;  // the first thread's; the others share it
  Device* devices_ = nullptr;
  std::vector<bool> in_use_;  // control thread only: slots in the snapshot
  std::atomic<const Snapshot*> snap_;
  std::atomic<uint64_t> epoch_{0};
  std::atomic<bool> running_{false};
  std::thread thread_;
  NicCounters nic_counters_;
  NicMacTable nic_macs_;  // written by the data thread only
  // Per VLAN id (index 0: untagged), kVlanCount each: the NIC's frames per network.
  std::unique_ptr<Counter[]> nic_vlan_rx_, nic_vlan_tx_;

  // Data threads (handoff.cc). The first thread is this object (the addon's);
  // each other one is a Switch of its own built by Switch(primary, ...): its
  // own snapshot, epoch, scratch and sleep, the primary's devices.
  Switch* primary_ = this;
  uint32_t index_ = 0;
  uint32_t n_threads_ = 1;
  int cpu_ = -1;                               // pinned CPU, -1: none
  std::vector<std::unique_ptr<Switch>> lanes_;  // first thread only: threads 1..n-1
  std::vector<Switch*> threads_;                // first thread only: all, [0] = this
  bool nic_elsewhere_ = false;                  // a later thread: the NIC is on thread 0
  struct TxParts {                              // per slot, by the owner: TX chains out on other threads
    std::unique_ptr<uint8_t[]> parts, ok;       // per head: completions awaited, any delivered
    bool touched = false;                       // used entries pushed by completions, to publish
  };
  std::unique_ptr<uint8_t[]> owner_store_;
  std::unique_ptr<uint32_t[]> gen_store_;
  std::unique_ptr<TxParts[]> tx_parts_store_;
  std::unique_ptr<HandoffLink[]> link_store_;
  uint8_t* owner_ = nullptr;                    // per slot: its data thread (control writes before publishing)
  uint32_t* gen_ = nullptr;                     // per slot: generation of the device in it (control only)
  TxParts* tx_parts_ = nullptr;
  HandoffLink* links_ = nullptr;
  uint32_t next_gen_ = 1;
  uint32_t nic_held_ = 0;                       // the NIC's burst stays unreleased while handoffs of it are out
  uint32_t wake_mask_ = 0;                      // threads handed something this loop
  std::atomic<bool> asleep_{false};
  std::unique_ptr<uint16_t[]> tx_done_;         // sources whose TX chains completions gave back
  uint32_t n_tx_done_ = 0;
  Counter handed_out_, handed_in_, handoff_dropped_;

  // Data-thread scratch, allocated once.
  std::unique_ptr<uint16_t[]> touched_;
  uint32_t n_touched_ = 0;
  std::unique_ptr<uint8_t[]> guest_busy_;        // per guest of the snapshot: frames to send this loop
  std::unique_ptr<uint16_t[]> guest_next_dev_;   // per guest: the device that goes first next loop
  uint32_t next_guest_ = 0;                      // the guest that goes first next loop
  uint32_t nic_share_ = 0;                       // NIC transmit slots the guest being serviced may take
  uint32_t nic_taken_ = 0;                       // ... and has taken
  // A staged TX burst: its chains, each frame's classification and the RX chain popped for it.
  Chain tx_burst_[kBurst]{}, rx_burst_[kBurst]{};
  StagedFrame staged_[kBurst]{};
  Device* staged_dst_[kBurst]{};  // the burst's distinct guest receivers
  // FindByMac's last answer within one TX burst (reset per burst: the
  // snapshot cannot change inside it). The key starts above 48 bits.
  uint64_t last_dst_mac_ = ~uint64_t(0);
  Device* last_dst_ = nullptr;
  Chain rx_chain_{};  // group frames and the NIC's: popped and filled at once
  NicRxFrame nic_frames_[kBurst]{};
  uint32_t nic_now_ = 0;  // NicMacTable seconds, read once per NIC burst

  // Live capture: the NIC's session ring (null: off) and its interface index
  // there; the sessions, owned by the control thread.
  std::atomic<CaptureRing*> nic_capture_{nullptr};
  uint16_t nic_capture_if_ = 0;
  struct CaptureSession {
    std::unique_ptr<CaptureRing> ring;
    std::vector<uint32_t> ports;
  };
  std::map<uint32_t, CaptureSession> captures_;
  uint32_t next_capture_ = 1;

  // Sleeping (wakeup.cc).
  DeviceEvents* events_ = nullptr;
  int wake_fd_ = -1;                      // eventfd: snapshot change, capture stop, Stop
  std::unique_ptr<pollfd[]> pollfds_;     // max_devices + 3, data thread only
  uint32_t fallback_us_ = 10;             // timed sleep while a polled device is attached
  Counter sleeps_;
  Counter processing_cycles_, idle_cycles_;  // Run's loops (ThreadStatsSnapshot)
};

}  // namespace xsw
