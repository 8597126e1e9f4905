// The forwarding engines, each mode driven one poll at a time against a
// device side played with VringDevice, then on its own thread.
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "pmd/engine.h"
#include "pmd/test_frame.h"
#include "pmd_test_util.h"

using namespace xsw;
using namespace pmdtest;

static const uint8_t kOwn[6] = {0, 0, 0, 0, 0, 0x11};
static const uint8_t kPeer[6] = {0, 0, 0, 0, 0, 0x22};
static const uint8_t kOther[6] = {0x02, 0, 0, 0, 0, 0x99};

static EngineConfig Config(FwdMode mode) {
  EngineConfig c;
  c.mode = mode;
  std::memcpy(c.own_mac, kOwn, 6);
  std::memcpy(c.peer_mac, kPeer, 6);
  return c;
}

static void ModesRewriteAsTestpmdDoes() {
  struct Case {
    FwdMode mode;
    const uint8_t* dst;
    const uint8_t* src;
  };
  // Frames arrive dst = own, src = other.
  const Case cases[] = {{FwdMode::kIo, kOwn, kOther}, {FwdMode::kMac, kPeer, kOwn}, {FwdMode::kMacSwap, kOther, kOwn}};
  for (const Case& k : cases) {
    Rig rig(1024, 256);
    rig.port->RefillRx();
    FrontEngine engine(rig.port, Config(k.mode));
    for (uint32_t i = 0; i < 5; i++) CHECK(rig.Deliver(EthFrame(kOwn, kOther, 60 + i, uint8_t(i))));
    CHECK_EQ(engine.PollOnce(), 5u);
    const auto frames = rig.DrainTx();
    CHECK_EQ(frames.size(), 5u);
    for (uint32_t i = 0; i < frames.size(); i++) {
      std::vector<uint8_t> want = EthFrame(kOwn, kOther, 60 + i, uint8_t(i));
      std::memcpy(want.data(), k.dst, 6);
      std::memcpy(want.data() + 6, k.src, 6);
      CHECK(frames[i] == want);
    }
    CHECK_EQ(rig.port->stats().rx_packets.load(), 5u);
    CHECK_EQ(rig.port->stats().tx_packets.load(), 5u);
  }
}

static void ForwardingIntoAFullRingCountsDrops() {
  Rig rig(256, 16);
  rig.port->RefillRx();
  FrontEngine engine(rig.port, Config(FwdMode::kIo));
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 12; i++) CHECK(rig.Deliver(EthFrame(kOwn, kOther, 60, 1)));
    engine.PollOnce();
  }
  CHECK_EQ(rig.port->stats().tx_packets.load(), 16u);
  CHECK_EQ(rig.port->stats().tx_dropped.load(), 8u);
  CHECK_EQ(rig.DrainTx().size(), 16u);
}

static void RxOnlyVerifyCountsBadAndOutOfOrderFrames() {
  Rig rig(1024, 256);
  rig.port->RefillRx();
  EngineConfig c = Config(FwdMode::kRxOnly);
  c.verify = true;
  FrontEngine engine(rig.port, c);
  auto frame = [](uint64_t seq, uint32_t len) {
    std::vector<uint8_t> f(len);
    BuildTestFrame(f.data(), len, kOwn, kPeer, seq);
    return f;
  };
  for (uint64_t seq : {0, 1, 2, 4, 5}) CHECK(rig.Deliver(frame(seq, 64)));  // 3 is missing
  std::vector<uint8_t> bad = frame(6, 64);
  bad[40] ^= 0xFF;
  CHECK(rig.Deliver(bad));
  CHECK(rig.Deliver(EthFrame(kOwn, kPeer, 60, 0)));  // not a test frame at all
  CHECK_EQ(engine.PollOnce(), 7u);
  CHECK_EQ(rig.port->stats().rx_packets.load(), 7u);
  CHECK_EQ(rig.port->stats().rx_out_of_order.load(), 1u);
  CHECK_EQ(rig.port->stats().rx_bad.load(), 2u);
  CHECK_EQ(rig.DrainTx().size(), 0u);  // rxonly sends nothing
  CHECK_EQ(rig.port->free_bufs(), 1024u - 256);  // every buffer went back
}

static void TxOnlySendsCountFramesInSequenceWithoutGaps() {
  Rig rig(256, 16);
  EngineConfig c = Config(FwdMode::kTxOnly);
  c.txpkts = 100;
  c.count = 40;
  FrontEngine engine(rig.port, c);
  std::vector<std::vector<uint8_t>> got;
  for (int i = 0; i < 10; i++) {
    engine.PollOnce();  // the ring holds 16: the engine waits, it does not drop
    for (auto& f : rig.DrainTx()) got.push_back(std::move(f));
  }
  CHECK_EQ(got.size(), 40u);
  for (uint32_t i = 0; i < got.size(); i++) {
    uint64_t seq = ~0ull;
    CHECK(got[i].size() == 100 && CheckTestFrame(got[i].data(), 100, &seq) == FrameCheck::kOk);
    CHECK_EQ(seq, uint64_t(i));
    CHECK(std::memcmp(got[i].data(), kPeer, 6) == 0 && std::memcmp(got[i].data() + 6, kOwn, 6) == 0);
  }
  CHECK_EQ(rig.port->stats().tx_done.load(), 1u);
  CHECK_EQ(rig.port->stats().tx_dropped.load(), 0u);
}

static void TxOnlyDrainsAndVerifiesWhatComesBack() {
  Rig rig(1024, 256);
  rig.port->RefillRx();
  EngineConfig c = Config(FwdMode::kTxOnly);
  c.count = 8;
  c.verify = true;
  FrontEngine engine(rig.port, c);
  auto frame = [](uint64_t seq) {
    std::vector<uint8_t> f(64);
    BuildTestFrame(f.data(), 64, kOwn, kPeer, seq);
    return f;
  };
  for (uint64_t seq : {0, 1, 3}) CHECK(rig.Deliver(frame(seq)));  // 2 is missing
  std::vector<uint8_t> bad = frame(4);
  bad[30] ^= 0xFF;
  CHECK(rig.Deliver(bad));
  CHECK_EQ(engine.PollOnce(), 4u + 8u);  // 4 received, 8 sent
  CHECK_EQ(rig.DrainTx().size(), 8u);
  CHECK_EQ(rig.port->stats().rx_packets.load(), 4u);
  CHECK_EQ(rig.port->stats().rx_out_of_order.load(), 1u);
  CHECK_EQ(rig.port->stats().rx_bad.load(), 1u);
  CHECK_EQ(rig.port->stats().tx_packets.load(), 8u);
  // Once --count is reached it keeps draining (4 is next: a bad frame does not advance the sequence).
  CHECK(rig.Deliver(frame(4)));
  CHECK_EQ(engine.PollOnce(), 1u);
  CHECK_EQ(rig.port->stats().rx_packets.load(), 5u);
  CHECK_EQ(rig.port->stats().rx_out_of_order.load(), 1u);
  CHECK_EQ(rig.port->stats().tx_packets.load(), 8u);
  rig.port->ReclaimTx();
  CHECK_EQ(rig.port->free_bufs(), 1024u - 256);  // every received and sent buffer went back
}

static void TxOnlyJumboFramesAreChains() {
  Rig rig(1024, 256, 9018);
  EngineConfig c = Config(FwdMode::kTxOnly);
  c.txpkts = 9000;
  c.count = 3;
  FrontEngine engine(rig.port, c);
  CHECK_EQ(engine.PollOnce(), 3u);
  const auto frames = rig.DrainTx();
  CHECK_EQ(frames.size(), 3u);
  for (uint32_t i = 0; i < frames.size(); i++) {
    uint64_t seq = 99;
    CHECK(CheckTestFrame(frames[i].data(), uint32_t(frames[i].size()), &seq) == FrameCheck::kOk);
    CHECK_EQ(seq, uint64_t(i));
  }
}

static void TxOnlyRateIsAnUpperBound() {
  Rig rig(1024, 256);
  EngineConfig c = Config(FwdMode::kTxOnly);
  c.rate = 2000;  // frames per second
  FrontEngine engine(rig.port, c);
  const auto start = std::chrono::steady_clock::now();
  engine.Start();
  size_t got = 0;
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(300)) {
    got += rig.DrainTx().size();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  engine.Stop();
  got += rig.DrainTx().size();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(got > 0);
  CHECK(double(got) <= 2000 * secs + 32);  // one burst of slack
}

// A rate-limited txonly publishes whole bursts (the last one of --count
// excepted), never a frame or two as each token comes: that pacer spun on its
// CPU and published 1-2 frames per poll. Polled by hand, so each publish is
// seen on its own.
static void TxOnlyPacesInWholeBursts() {
  Rig rig(1024, 256);
  EngineConfig c = Config(FwdMode::kTxOnly);
  c.rate = 20000;  // a burst every 1.6 ms
  c.count = 5 * kBurst + 7;
  FrontEngine engine(rig.port, c);
  std::vector<size_t> publishes;
  size_t total = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);  // a bound for failure only
  while (total < c.count && std::chrono::steady_clock::now() < deadline) {
    engine.PollOnce();
    const size_t n = rig.DrainTx().size();
    if (n > 0) publishes.push_back(n);
    total += n;
  }
  CHECK_EQ(total, size_t(c.count));
  CHECK_EQ(publishes.size(), 6u);
  for (size_t i = 0; i < publishes.size(); i++) CHECK_EQ(publishes[i], i < 5 ? size_t(kBurst) : size_t(7));
}

static void AThreadedEngineForwardsEverythingAndStops() {
  Rig rig(2048, 256);
  rig.port->RefillRx();
  EngineConfig c = Config(FwdMode::kMac);
  FrontEngine engine(rig.port, c);
  engine.Start();
  CHECK(engine.running());
  const uint32_t total = 3000;
  uint32_t delivered = 0, returned = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (returned < total && std::chrono::steady_clock::now() < deadline) {
    // At most 128 in flight, so the 256-entry TX ring never overflows.
    while (delivered < total && delivered - returned < 128 &&
           rig.Deliver(EthFrame(kOwn, kOther, 64, uint8_t(delivered)))) {
      delivered++;
    }
    for (const auto& f : rig.DrainTx()) {
      CHECK(std::memcmp(f.data(), kPeer, 6) == 0);
      returned++;
    }
    std::this_thread::yield();
  }
  engine.Stop();
  CHECK(!engine.running());
  CHECK_EQ(returned, total);
  CHECK_EQ(rig.port->stats().tx_dropped.load(), 0u);
}

// The device's event channel as the engine sees it: Fire() is the back end's
// notification (the engine reads it through fd() and Pending()).
class FakeChannel : public EventChannels {
 public:
  static constexpr evtchn_port_t kPort = 7;
  FakeChannel() : efd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~FakeChannel() override { close(efd_); }
  const char* kind() const override { return "test"; }
  evtchn_port_t AllocateUnbound(domid_t) override { return kPort; }
  evtchn_port_t BindInterdomain(domid_t, evtchn_port_t) override { return kPort; }
  void Unbind(evtchn_port_t) override {}
  bool Notify(evtchn_port_t) override { return true; }
  int fd() const override { return efd_; }
  uint32_t Pending(evtchn_port_t* ports, uint32_t max) override {
    uint64_t v;
    if (max == 0 || read(efd_, &v, sizeof v) != sizeof v) return 0;
    ports[0] = kPort;
    return 1;
  }
  void Unmask(evtchn_port_t) override {}
  void Fire() {
    const uint64_t one = 1;
    CHECK(write(efd_, &one, sizeof one) == sizeof one);
  }

 private:
  int efd_;
};

static bool WaitFor(const std::function<bool()>& done) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);  // a bound for failure only
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

// An engine whose pool barely covers its rings (ring + one burst): after one
// burst every free buffer sits in the TX ring. The test plays a back end that
// returns TX buffers only once the engine is asleep and notifies only when
// the engine asked (CallNeeded), as the switch does. Each round the engine
// must have asked for TX completions; one that did not would sleep out its
// guard (the old 100 ms stall), and a txonly or tap engine that spun instead
// of sleeping would never be seen asleep.
static void AnEngineShortOfBuffersSleepsUntilTxCompletes(FwdMode mode) {
  constexpr uint32_t kRing = 64, kRounds = 6;
  Rig rig(kRing + kBurst, kRing);
  FakeChannel channel;
  int sp[2] = {-1, -1};  // tap: a datagram socket pair stands in for the TAP (one frame per read)
  EngineConfig c = Config(mode);
  c.poll = PollMode::kInterrupt;
  c.events = &channel;
  c.evtchn = FakeChannel::kPort;
  if (mode == FwdMode::kTxOnly) c.count = kRounds * kBurst;
  if (mode == FwdMode::kTap) {
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) == 0);
    c.tap_fd = sp[0];
    // More frames than the pool can take at once: the TAP stays readable while the engine waits.
    for (uint32_t i = 0; i < kRounds * kBurst; i++) {
      const std::vector<uint8_t> f = EthFrame(kPeer, kOwn, 60, uint8_t(i));
      CHECK(write(sp[1], f.data(), f.size()) == ssize_t(f.size()));
    }
  }
  FrontEngine engine(rig.port, c);
  channel.Fire();  // the back end's first event: from now on the engine's sleeps are long
  engine.Start();
  uint64_t sent = 0, asked = 0, sleeps = 0;
  for (uint32_t round = 0; round < kRounds; round++) {
    // Asleep with a burst in flight and no free buffer.
    CHECK(WaitFor([&] {
      uint32_t avail = 0;
      rig.dev_tx->Avail(&avail);
      return rig.port->stats().sleeps.load() > sleeps && avail == kBurst;
    }));
    const auto frames = rig.DrainTx();
    sent += frames.size();
    const bool call = rig.dev_tx->CallNeeded();
    asked += call;
    sleeps = rig.port->stats().sleeps.load();
    channel.Fire();
  }
  CHECK_EQ(sent, uint64_t(kRounds) * kBurst);
  CHECK_EQ(asked, uint64_t(kRounds));
  engine.Stop();
  if (sp[0] >= 0) close(sp[0]), close(sp[1]);
}

static void BadEngineConfigsAreRefused() {
  Rig rig(1024, 256);
  auto refused = [&](EngineConfig c) {
    try {
      FrontEngine e(rig.port, c);
    } catch (const std::invalid_argument&) {
      return true;
    }
    return false;
  };
  EngineConfig c = Config(FwdMode::kIo);
  c.burst = 0;
  CHECK(refused(c));
  c.burst = 33;
  CHECK(refused(c));
  c = Config(FwdMode::kTxOnly);
  c.txpkts = 20;
  CHECK(refused(c));
  c.txpkts = 4000;  // above the data room without --max-pkt-len
  CHECK(refused(c));
  c = Config(FwdMode::kTap);
  CHECK(refused(c));
  FwdMode m;
  CHECK(ParseFwdMode("macswap", &m) && m == FwdMode::kMacSwap);
  CHECK(!ParseFwdMode("flowgen", &m));
  CHECK(std::strcmp(FwdModeName(FwdMode::kTxOnly), "txonly") == 0);
}

int main() {
  ModesRewriteAsTestpmdDoes();
  ForwardingIntoAFullRingCountsDrops();
  RxOnlyVerifyCountsBadAndOutOfOrderFrames();
  TxOnlySendsCountFramesInSequenceWithoutGaps();
  TxOnlyDrainsAndVerifiesWhatComesBack();
  TxOnlyJumboFramesAreChains();
  TxOnlyRateIsAnUpperBound();
  TxOnlyPacesInWholeBursts();
  AThreadedEngineForwardsEverythingAndStops();
  AnEngineShortOfBuffersSleepsUntilTxCompletes(FwdMode::kTxOnly);
  AnEngineShortOfBuffersSleepsUntilTxCompletes(FwdMode::kTap);
  BadEngineConfigsAreRefused();
  return xsw::test::Finish("pmd_engine_test");
}
