// The switch-core harness of `npm run bench`: the back end's real data plane
// (xsw::Switch, busy polling, its thread pinned to one CPU) between two
// devices whose guest side is the real front-end PMD (xsw::FrontPort), both
// driven by ONE guest thread pinned to the other CPU. Two pollers on two
// CPUs, so nothing waits for the scheduler: what it measures is how many
// frames one back-end core switches guest → guest.
//
// The traffic is a loop, like testpmd's io forwarding after `start
// tx_first`: `in_flight` frames are injected on each device; every frame a
// device receives gets its MACs swapped and is sent straight back out of it
// (no copy in the guest), so each frame crosses the switch again and again.
// The figure is the frames the two devices receive (the receiver's count).
//
// With idle_devices, more devices of other guests are attached that never
// send (each with a small pool): the loop's figure then shows what the switch
// pays per attached device that has nothing to do.
//
// Memory is this process's own (gva == address), laid out as the front end
// lays out its grants: a mempool of one mbuf per 4 KiB page per device, and
// legacy split rings. Control path: throws SysError with a sentence.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "switch/device.h"  // Counter

namespace xsw {
class FrontPort;
class Switch;
}

namespace xsw::bench {

struct SwitchLoopConfig {
  uint32_t frame_len = 64;    // bytes of each frame (no FCS)
  uint32_t in_flight = 128;   // frames injected per device
  uint32_t ring_size = 256;
  uint32_t nb_mbuf = 2048;    // per device
  int switch_cpu = 1;
  int guest_cpu = 0;
  // Latency mode: one frame in flight, from device A only; every time A gets
  // it back (A → switch → B → switch → A) the round trip is recorded.
  bool latency = false;
  uint32_t max_samples = 1 << 20;
  // Devices attached besides the two that loop, each of its own guest, that
  // never send: what many attached-but-quiet devices cost the busy ones.
  uint32_t idle_devices = 0;  // 0..kMaxIdleDevices
  // Non-empty: the switch runs one data thread per CPU listed (--cores);
  // the two looping devices then sit on threads 0 and 1, so every frame
  // crosses from one thread to the other (native/switch/handoff.h).
  std::vector<int> switch_cores;
  static constexpr uint32_t kMaxIdleDevices = 62;  // 64 slots in all
};

class SwitchLoop {
 public:
  explicit SwitchLoop(const SwitchLoopConfig& cfg);
  ~SwitchLoop();
  SwitchLoop(const SwitchLoop&) = delete;
  SwitchLoop& operator=(const SwitchLoop&) = delete;

  // Starts the switch thread and the guest thread, then injects the frames.
  void Start();
  void Stop();
  // Frames received by both devices so far.
  uint64_t Received() const;
  // Frames the switch dropped (should stay 0 while the loop is healthy).
  uint64_t SwitchDrops() const;
  // Why a row is slow: how often each side polled and found nothing.
  struct PollCounts {
    uint64_t guest_polls = 0, guest_empty = 0;  // the guest thread's RX polls of the two devices
    uint64_t switch_polls = 0;                  // the switch's polls of the two devices' TX rings (one per loop of its thread)
    uint64_t switch_frames = 0;                 // frames the switch took from the two devices' TX rings
    // Busy shares: each side's time in loops that found work, and all its time (common/cycles.h units).
    uint64_t switch_busy_cycles = 0, switch_cycles = 0;  // the data thread(s) of the two devices
    uint64_t guest_busy_cycles = 0, guest_cycles = 0;    // the guest thread
  };
  PollCounts Polls() const;
  // Latency mode: the round trips recorded so far (ns); call after Stop().
  const std::vector<uint32_t>& RoundTrips() const { return rtt_ns_; }

 private:
  struct Guest;
  void RunGuest();
  void RunLatency();

  SwitchLoopConfig cfg_;
  std::unique_ptr<Guest> a_, b_;
  std::vector<std::unique_ptr<Guest>> idle_;
  std::unique_ptr<Switch> switch_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> injected_{false};
  // Written by the guest thread only (a relaxed store per loop), read by Polls().
  std::atomic<uint64_t> guest_polls_{0}, guest_empty_{0};
  Counter guest_busy_cycles_, guest_idle_cycles_;  // its polls' time split (common/cycles.h)
  std::thread guest_thread_;
  std::vector<uint32_t> rtt_ns_;  // reserved up front: the guest thread never allocates
};

}  // namespace xsw::bench
