#include "pmd/engine.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "common/adaptive_poll.h"
#include "pmd/test_frame.h"

namespace xsw {
namespace {

// The guard on a sleep once the back end has notified: a back end restarted
// in a version that does not notify costs this much latency, never a hang.
constexpr int64_t kNotifiedSleepNs = 1'000'000'000;

// A rate-limited txonly keeps at most this many bursts of unused tokens, so a
// sleep that ran late is made up at once (with the old cap of one burst, a
// 32-µs token wait that took 80 µs lost the difference: 1 M/s came out as
// about 0.4 M/s), while a pause still does not turn into a long flood.
constexpr double kTokenBursts = 4;
// ... and sleeps at least this long when short of tokens (up to those 4
// bursts' worth): a sleep and wake-up costs tens of µs of CPU on a virtual
// machine, so at 1 M/s sleeping every 32-µs burst cost as much as spinning.
constexpr int64_t kMinTokenSleepNs = 100'000;
// The engine thread's timer slack: its timed sleeps are short (token waits of
// tens of µs, 10-µs fallbacks), and Linux's default 50 µs would stretch them.
constexpr unsigned long kTimerSlackNs = 1000;

struct ModeName {
  FwdMode mode;
  const char* name;
};
constexpr ModeName kModes[] = {{FwdMode::kIo, "io"},         {FwdMode::kMac, "mac"},
                               {FwdMode::kMacSwap, "macswap"}, {FwdMode::kRxOnly, "rxonly"},
                               {FwdMode::kTxOnly, "txonly"},   {FwdMode::kTap, "tap"}};

}  // namespace

bool ParseFwdMode(const std::string& name, FwdMode* mode) {
  for (const ModeName& m : kModes) {
    if (name == m.name) {
      *mode = m.mode;
      return true;
    }
  }
  return false;
}

const char* FwdModeName(FwdMode mode) {
  for (const ModeName& m : kModes) {
    if (m.mode == mode) return m.name;
  }
  return "unknown";
}

FrontEngine::FrontEngine(FrontPort* port, const EngineConfig& config)
    : port_(port), cfg_(config), scratch_(new uint8_t[kMaxFrameLen]) {
  if (port == nullptr) throw std::invalid_argument("an engine needs a device");
  if (cfg_.burst < 1 || cfg_.burst > kBurst) {
    throw std::invalid_argument("burst " + std::to_string(cfg_.burst) + " is outside [1, 32]: use --burst 32");
  }
  if (cfg_.mode == FwdMode::kTxOnly &&
      (cfg_.txpkts < kTestFrameMinLen || cfg_.txpkts > port->max_pkt_len())) {
    throw std::invalid_argument("txpkts " + std::to_string(cfg_.txpkts) + " is outside [" +
                                std::to_string(kTestFrameMinLen) + ", " + std::to_string(port->max_pkt_len()) +
                                "]: pick a frame size in range (raise --max-pkt-len for jumbo frames)");
  }
  if (cfg_.mode == FwdMode::kTap && cfg_.tap_fd < 0) {
    throw std::invalid_argument("tap mode needs a TAP interface: give --tap NAME");
  }
  if (cfg_.rate < 0) throw std::invalid_argument("a negative --rate makes no sense: give frames per second");
  if (cfg_.mode == FwdMode::kTxOnly) crc_ = std::make_unique<TestFrameCrc>(cfg_.txpkts);
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (stop_fd_ < 0) throw std::invalid_argument("cannot create the engine's eventfd: too many open files?");
}

FrontEngine::~FrontEngine() {
  Stop();
  close(stop_fd_);
}

void FrontEngine::Start() {
  if (thread_.joinable()) return;
  stop_.store(false, std::memory_order_relaxed);
  last_refill_ns_ = NowNs();
  tokens_ = 0;
  thread_ = std::thread([this] { Run(); });
}

void FrontEngine::Stop() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_relaxed);
  const uint64_t one = 1;
  ssize_t n = write(stop_fd_, &one, sizeof one);
  (void)n;
  thread_.join();
  uint64_t v;
  n = read(stop_fd_, &v, sizeof v);  // reset for a later Start
}

uint64_t FrontEngine::NowNs() const {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

void FrontEngine::Run() {
  prctl(PR_SET_TIMERSLACK, kTimerSlackNs, 0, 0, 0);
  if (cfg_.poll == PollMode::kBusy || cfg_.events == nullptr) {
    AdaptivePoll backoff(cfg_.poll == PollMode::kBusy);
    while (!stop_.load(std::memory_order_relaxed)) backoff.After(PollOnce() > 0);
  } else {
    const uint32_t spin = cfg_.poll == PollMode::kInterrupt ? 1 : AdaptivePoll::kIdlePollsBeforeSleep;
    uint32_t idle = 0, fallback_us = AdaptivePoll::kMinSleepUs;
    while (!stop_.load(std::memory_order_relaxed)) {
      if (PollOnce() > 0) {
        idle = 0;
        fallback_us = AdaptivePoll::kMinSleepUs;
      } else if (++idle >= spin || short_of_tokens_) {
        // Out of tokens is not idleness: the time to wait is known, sleep at once.
        Sleep(&fallback_us);
      }
    }
  }
  port_->ReclaimTx();
}

// Arms the rings, re-checks, then waits for the back end's event, Stop, the
// TAP, or the time the txonly token bucket needs for its next burst.
//
// Waiting for TX buffers: when the TX ring has no room for a burst, or the
// pool too few free buffers for one (a small --nb-mbuf: most of them sit in
// the TX ring until the back end has sent them), only a TX completion lets
// the engine go on. It then also asks for that event (half the in-flight
// chains), and txonly and tap wait for it instead of for tokens or the TAP
// (input they could not take anyway), so they neither spin nor sleep out the
// guard.
void FrontEngine::Sleep(uint32_t* fallback_us) {
  const bool sender = cfg_.mode == FwdMode::kTxOnly && !(cfg_.count > 0 && seq_ >= cfg_.count);
  const bool tap = cfg_.mode == FwdMode::kTap;
  const uint32_t frame_len = tap ? port_->max_pkt_len() : cfg_.txpkts;
  const uint32_t segs = (frame_len + port_->data_room() - 1) / port_->data_room();
  // The buffers the next poll needs: one frame for txonly and tap, one RX chain for the others.
  const uint32_t need_bufs = sender || tap ? segs : port_->rx_segs();
  const bool tx_wait = port_->tx_in_flight() != 0 &&
                       ((sender && port_->TxFreeDescs() < cfg_.burst * segs) || port_->free_bufs() < need_bufs);
  if (port_->ArmNotify(tx_wait)) return;

  int64_t wait_ns = kNotifiedSleepNs;
  if (!backend_notifies_) {
    wait_ns = int64_t(*fallback_us) * 1000;
    *fallback_us = std::min(*fallback_us * 2, AdaptivePoll::kMaxSleepUs);
  }
  if (sender && !tx_wait) {
    // Not waiting for the ring: for tokens (rate) or for nothing at all.
    int64_t token_ns = 0;
    if (cfg_.rate > 0) {
      const double burst_ns = double(cfg_.burst) * 1e9 / cfg_.rate;
      const double want_ns = std::min(std::max(burst_ns, double(kMinTokenSleepNs)), kTokenBursts * burst_ns);
      const double need = std::max(double(NextBurst()), want_ns * cfg_.rate / 1e9);
      token_ns = int64_t((need - tokens_) * 1e9 / cfg_.rate) - int64_t(NowNs() - last_refill_ns_);
    }
    if (token_ns <= 0) return;
    if (token_ns < wait_ns) wait_ns = token_ns;
  }
  pollfd fds[3] = {{cfg_.events->fd(), POLLIN, 0}, {stop_fd_, POLLIN, 0}, {cfg_.tap_fd, POLLIN, 0}};
  const nfds_t n = tap && !tx_wait ? 3 : 2;
  timespec ts{wait_ns / 1000000000, wait_ns % 1000000000};
  Bump(port_->stats().sleeps, 1);
  if (ppoll(fds, n, &ts, nullptr) <= 0 || !(fds[0].revents & POLLIN)) return;
  evtchn_port_t ports[8];
  uint32_t got;
  do {  // a short read means the fd is drained: no second read just to see EAGAIN
    got = cfg_.events->Pending(ports, 8);
    for (uint32_t i = 0; i < got; ++i) {
      if (ports[i] == cfg_.evtchn) backend_notifies_ = true;
      cfg_.events->Unmask(ports[i]);
    }
  } while (got == 8);
}

uint32_t FrontEngine::PollOnce() {
  switch (cfg_.mode) {
    case FwdMode::kIo:
    case FwdMode::kMac:
    case FwdMode::kMacSwap: return Forward();
    case FwdMode::kRxOnly: return RxOnly();
    case FwdMode::kTxOnly: return TxOnly();
    case FwdMode::kTap: return Tap();
  }
  return 0;
}

uint32_t FrontEngine::Forward() {
  uint32_t pkts[kBurst];
  const uint32_t n = port_->RxBurst(pkts, cfg_.burst);
  if (n == 0) {
    port_->ReclaimTx();
    return 0;
  }
  if (cfg_.mode != FwdMode::kIo) {
    for (uint32_t i = 0; i < n; i++) {
      uint8_t* eth = port_->SegData(pkts[i]);  // RxBurst guarantees >= 14 bytes here
      if (cfg_.mode == FwdMode::kMac) {
        std::memcpy(eth, cfg_.peer_mac, 6);
        std::memcpy(eth + 6, cfg_.own_mac, 6);
      } else {
        uint8_t tmp[6];
        std::memcpy(tmp, eth, 6);
        std::memcpy(eth, eth + 6, 6);
        std::memcpy(eth + 6, tmp, 6);
      }
    }
  }
  const uint32_t sent = port_->TxBurst(pkts, n);
  if (sent < n) {
    port_->FreeBurst(pkts + sent, n - sent);
    Bump(port_->stats().tx_dropped, n - sent);
  }
  return n;
}

void FrontEngine::Verify(uint32_t pkt) {
  const uint8_t* frame = port_->SegData(pkt);
  uint32_t len = port_->PktLen(pkt);
  if (port_->SegLen(pkt) < len) {
    len = port_->CopyOut(pkt, scratch_.get(), kMaxFrameLen);
    frame = scratch_.get();
  }
  uint64_t seq = 0;
  if (CheckTestFrame(frame, len, &seq) != FrameCheck::kOk) {
    Bump(port_->stats().rx_bad, 1);
    return;
  }
  if (have_seq_ && seq != next_seq_) Bump(port_->stats().rx_out_of_order, 1);
  have_seq_ = true;
  next_seq_ = seq + 1;
}

uint32_t FrontEngine::RxOnly() {
  uint32_t pkts[kBurst];
  const uint32_t n = port_->RxBurst(pkts, cfg_.burst);
  if (cfg_.verify) {
    for (uint32_t i = 0; i < n; i++) Verify(pkts[i]);
  }
  port_->FreeBurst(pkts, n);
  return n;
}

uint32_t FrontEngine::TxOnly() {
  // What comes back (frames looped through other guests) is drained as
  // rxonly does, so the sender can count and verify its own frames.
  const uint32_t received = RxOnly();
  return received + TxBurstOfTestFrames();
}

uint32_t FrontEngine::TxBurstOfTestFrames() {
  port_->ReclaimTx();
  short_of_tokens_ = false;
  if (cfg_.count > 0 && seq_ >= cfg_.count) return 0;
  uint32_t want = NextBurst();
  if (cfg_.rate > 0) {
    const uint64_t now = NowNs();
    tokens_ = std::min(kTokenBursts * cfg_.burst, tokens_ + double(now - last_refill_ns_) * cfg_.rate / 1e9);
    last_refill_ns_ = now;
    // Whole bursts only: a pacer that sent each frame as its token came would
    // never be idle, spinning on its CPU (which the receiver may share) to
    // publish a frame or two per poll.
    if (tokens_ < double(want)) {
      short_of_tokens_ = true;
      return 0;
    }
  }
  // Never build more than the ring takes, so the sequence has no gaps.
  const uint32_t segs = (cfg_.txpkts + port_->data_room() - 1) / port_->data_room();
  want = std::min(want, port_->TxFreeDescs() / segs);
  uint32_t pkts[kBurst];
  const uint32_t got = port_->AllocBurst(cfg_.txpkts, pkts, want);
  uint32_t n = 0;
  for (; n < got; n++) {
    if (segs == 1) {
      BuildTestFrame(port_->SegData(pkts[n]), cfg_.txpkts, cfg_.peer_mac, cfg_.own_mac, seq_ + n, *crc_);
    } else {
      BuildTestFrame(scratch_.get(), cfg_.txpkts, cfg_.peer_mac, cfg_.own_mac, seq_ + n, *crc_);
      uint32_t copied = 0;
      for (uint32_t seg = pkts[n]; seg != kNoBuf; seg = port_->NextSeg(seg)) {
        std::memcpy(port_->SegData(seg), scratch_.get() + copied, port_->SegLen(seg));
        copied += port_->SegLen(seg);
      }
    }
  }
  if (n == 0) return 0;
  const uint32_t sent = port_->TxBurst(pkts, n);
  if (sent < n) port_->FreeBurst(pkts + sent, n - sent);  // not stamped as sent: reused next burst
  seq_ += sent;
  if (cfg_.rate > 0) tokens_ -= sent;
  if (cfg_.count > 0 && seq_ >= cfg_.count) port_->stats().tx_done.store(1, std::memory_order_relaxed);
  return sent;
}

uint32_t FrontEngine::NextBurst() const {
  if (cfg_.count == 0) return cfg_.burst;
  return uint32_t(std::min<uint64_t>(cfg_.burst, cfg_.count > seq_ ? cfg_.count - seq_ : 0));
}

uint32_t FrontEngine::Tap() {
  uint32_t pkts[kBurst];
  iovec iov[kMaxChainSegs];
  uint32_t moved = 0;

  // Kernel -> TX ring: read whole frames into fresh buffer chains.
  uint32_t n = 0, dropped = 0;
  while (n < cfg_.burst) {
    uint32_t pkt;
    if (!port_->Alloc(port_->max_pkt_len(), &pkt)) break;
    uint32_t niov = 0;
    for (uint32_t seg = pkt; seg != kNoBuf && niov < kMaxChainSegs; seg = port_->NextSeg(seg)) {
      iov[niov++] = iovec{port_->SegData(seg), port_->SegLen(seg)};
    }
    const ssize_t got = readv(cfg_.tap_fd, iov, int(niov));
    if (got < ssize_t(kEthHdrLen)) {
      port_->Free(pkt);
      if (got >= 0) {
        dropped++;  // a runt from the kernel
        continue;
      }
      break;  // EAGAIN: nothing more to read (or the interface went away)
    }
    port_->Trim(pkt, uint32_t(got));
    pkts[n++] = pkt;
  }
  if (n > 0) {
    const uint32_t sent = port_->TxBurst(pkts, n);
    if (sent < n) {
      port_->FreeBurst(pkts + sent, n - sent);
      dropped += n - sent;
    }
    moved += n;
  } else {
    port_->ReclaimTx();
  }
  if (dropped > 0) Bump(port_->stats().tx_dropped, dropped);

  // RX ring -> kernel.
  const uint32_t r = port_->RxBurst(pkts, cfg_.burst);
  uint32_t refused = 0;
  for (uint32_t i = 0; i < r; i++) {
    uint32_t niov = 0;
    for (uint32_t seg = pkts[i]; seg != kNoBuf && niov < kMaxChainSegs; seg = port_->NextSeg(seg)) {
      iov[niov++] = iovec{port_->SegData(seg), port_->SegLen(seg)};
    }
    if (writev(cfg_.tap_fd, iov, int(niov)) < 0) refused++;  // down, or the kernel queue is full
    port_->Free(pkts[i]);
  }
  if (refused > 0) Bump(port_->stats().rx_dropped, refused);
  return moved + r;
}

}  // namespace xsw
