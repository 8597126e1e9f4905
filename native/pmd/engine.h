// The forwarding engines of xsw-front (testpmd's forwarding modes), one
// native thread per device. The thread owns its FrontPort while it runs: the
// JS thread only starts, stops and reads the port's counters.
//
//   io       received frames are sent back as they are
//   mac      dst = the eth-peer, src = our MAC, sent back (the guide's mode)
//   macswap  dst and src swapped, sent back
//   rxonly   received frames are counted (and checked with verify) and freed
//   txonly   test frames (pmd/test_frame.h) of txpkts bytes, at most `rate`
//            per second (token bucket per burst), `count` in total; frames
//            that come back are drained as rxonly does (checked with verify)
//   tap      the device bridged to a TAP file descriptor: the kernel's frames
//            go to the TX ring, the RX ring's frames to the kernel
//
// Polling: busy never sleeps. adaptive (after 64 idle polls) and interrupt
// (after one) sleep on the device's event channel when it has one: they arm
// the rings' used_event, re-check, and wait until the back end notifies
// (docs/dataplane.md#notifications). Until the back end has notified once
// (it does so when it binds the channel) and for a device without a channel,
// the sleep is short and timed (10..500 µs, common/adaptive_poll.h); after
// that at most 1 s (a restarted back end that does not notify). An engine
// short of TX buffers also asks for TX completions (engine.cc, Sleep).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "pmd/port.h"
#include "pmd/test_frame.h"

namespace xsw {

enum class FwdMode : uint8_t { kIo, kMac, kMacSwap, kRxOnly, kTxOnly, kTap };
enum class PollMode : uint8_t { kBusy, kAdaptive, kInterrupt };

// "io", "mac", ... -> mode; false for an unknown name.
bool ParseFwdMode(const std::string& name, FwdMode* mode);
const char* FwdModeName(FwdMode mode);

struct EngineConfig {
  FwdMode mode = FwdMode::kIo;
  PollMode poll = PollMode::kAdaptive;
  uint32_t burst = kBurst;       // 1..kBurst
  uint8_t own_mac[6] = {};
  uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0, 0};
  uint32_t txpkts = 64;          // txonly frame size
  double rate = 0;               // txonly frames per second; 0 = as fast as the ring takes them
  uint64_t count = 0;            // txonly frames in total; 0 = no limit
  bool verify = false;           // rxonly, txonly: check received test frames and their order
  int tap_fd = -1;               // tap: a non-blocking TAP fd (not owned)
  EventChannels* events = nullptr;  // the device's event channels (not owned); null: timed sleeps only
  evtchn_port_t evtchn = 0;         // its local port there
};

class FrontEngine {
 public:
  // Throws std::invalid_argument for a bad burst, txpkts or a tap mode
  // without a fd. The port must outlive the engine.
  FrontEngine(FrontPort* port, const EngineConfig& config);
  ~FrontEngine();  // stops the thread
  FrontEngine(const FrontEngine&) = delete;
  FrontEngine& operator=(const FrontEngine&) = delete;

  void Start();
  // Asks the thread to finish its burst and joins it. Idempotent.
  void Stop();
  bool running() const { return thread_.joinable(); }

  // Runs one poll of the mode's work; returns the packets moved. The thread
  // loops over this; tests may call it directly instead of starting a thread.
  uint32_t PollOnce();

 private:
  void Run();
  void Sleep(uint32_t* fallback_us);
  uint32_t Forward();
  uint32_t RxOnly();
  uint32_t TxOnly();
  uint32_t TxBurstOfTestFrames();
  uint32_t NextBurst() const;  // txonly: frames the next burst sends (the burst, or what --count leaves)
  uint32_t Tap();
  void Verify(uint32_t pkt);
  uint64_t NowNs() const;

  FrontPort* port_;
  EngineConfig cfg_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  int stop_fd_ = -1;           // eventfd: Stop wakes a sleeping thread
  bool backend_notifies_ = false;  // an event came on our port: the back end is bound
  // txonly state
  uint64_t seq_ = 0;
  double tokens_ = 0;
  bool short_of_tokens_ = false;  // the last poll sent nothing for want of tokens
  uint64_t last_refill_ns_ = 0;
  // rxonly --verify state
  bool have_seq_ = false;
  uint64_t next_seq_ = 0;
  // frames that span several buffers are built or checked here (allocated once)
  std::unique_ptr<uint8_t[]> scratch_;
  std::unique_ptr<TestFrameCrc> crc_;  // txonly: the CRCs of txpkts-byte test frames
};

}  // namespace xsw
