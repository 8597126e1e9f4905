// Notifications (docs/dataplane.md#notifications): the event index on both
// halves of a ring, and a switch that sleeps in interrupt mode and is woken
// by a kick, never loses one, polls devices that cannot notify, and is not
// confused by a guest's hostile event words.
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <random>
#include <thread>
#include <utility>

#include "check.h"
#include "shm/vring.h"
#include "switch/switch.h"
#include "switch_test_util.h"

using namespace xsw;
using namespace xsw::test;

namespace {

constexpr uint64_t kMacA = 0x020000000011ull, kMacB = 0x020000000022ull, kMacC = 0x020000000033ull;

uint16_t* AvailEvent(VringView v) { return reinterpret_cast<uint16_t*>(&v.used->ring[v.num]); }
uint16_t* UsedEvent(VringView v) { return &v.avail->ring[v.num]; }

void TestNeedEvent() {
  CHECK(VringNeedEvent(5, 6, 5));    // the event index was just passed
  CHECK(!VringNeedEvent(6, 6, 5));   // not yet
  CHECK(!VringNeedEvent(4, 6, 5));   // passed before this batch
  CHECK(VringNeedEvent(0xFFFF, 2, 0xFFFE));  // across the wrap
  CHECK(!VringNeedEvent(7, 7, 7));   // nothing new
}

// Both halves of one ring in this process: the driver kicks exactly when the
// device asked, and the device calls exactly when the driver asked.
void TestEventIdxBothHalves() {
  constexpr uint32_t kNum = 16;
  Pages ring(VringSize(kNum)), pool(kNum * kBufSize);
  RegionTable regions;
  CHECK(regions.Add(Region{0x1000000, pool.size, pool.p, true, pool.size}));
  VringDriver drv(ring.p, kNum);
  drv.Init();
  VringDevice dev(ring.p, kNum, ring.size, &regions, 4, RingDirection::kDeviceReads);
  DriverBuf b{0x1000000, 64};

  CHECK(!dev.ArmAvailEvent());  // empty: may sleep
  drv.Add(&b, 1, 0, 1);
  drv.Publish();
  CHECK(drv.KickNeeded());   // the device sleeps: kick
  CHECK(!drv.KickNeeded());  // nothing new published
  drv.Add(&b, 1, 0, 2);
  drv.Publish();
  CHECK(!drv.KickNeeded());  // the device did not re-arm: it is busy, no kick
  CHECK(dev.ArmAvailEvent());  // two chains wait: do not sleep

  uint32_t n = 0;
  CHECK(dev.Avail(&n) == Violation::kNone && n == 2);
  Chain c;
  CHECK(dev.Pop(&c) == Violation::kNone && c.nseg == 1);
  CHECK(!drv.ArmUsedEvent(0));  // nothing used yet: the driver may sleep
  dev.PushUsed(c.head, 0);
  dev.PublishUsed();
  CHECK(dev.CallNeeded());   // the driver sleeps: call
  CHECK(!dev.CallNeeded());  // nothing new
  CHECK(dev.Pop(&c) == Violation::kNone && c.nseg == 1);
  dev.PushUsed(c.head, 0);
  dev.PublishUsed();
  CHECK(!dev.CallNeeded());  // the driver did not re-arm
  CHECK(drv.ArmUsedEvent(0));  // entries are waiting: do not sleep
  UsedEntry u[4];
  CHECK_EQ(drv.Harvest(u, 4), 2u);

  // Every value of a hostile used_event only decides whether the driver is called.
  for (uint32_t ev = 0; ev < 65536; ev += 97) {
    *UsedEvent(VringView::At(ring.p, kNum)) = uint16_t(ev);
    const uint16_t before = dev.UsedIdx();
    drv.Add(&b, 1, 0, 3);
    drv.Publish();
    CHECK(dev.Avail(&n) == Violation::kNone && n == 1);
    CHECK(dev.Pop(&c) == Violation::kNone && c.nseg == 1);
    dev.PushUsed(c.head, 0);
    dev.PublishUsed();
    CHECK_EQ(dev.CallNeeded(), VringNeedEvent(uint16_t(ev), uint16_t(before + 1), before));
    CHECK_EQ(drv.Harvest(u, 4), 1u);
  }
  CHECK_EQ(drv.BadUsed(), 0u);
}

// Event channels for the test: every device shares one eventfd the "guests"
// write to kick; notifications are counted per port.
class FakeEvents : public DeviceEvents {
 public:
  FakeEvents() : efd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~FakeEvents() override { close(efd_); }
  int fd() const override { return efd_; }
  bool Notify(uint32_t port) override {
    if (port < 8) notified[port].fetch_add(1);
    return true;
  }
  uint32_t Pending(uint32_t* ports, uint32_t max) override {
    uint64_t v;
    if (max == 0 || read(efd_, &v, sizeof v) != sizeof v) return 0;
    ports[0] = 1;
    return 1;
  }
  void Unmask(uint32_t) override {}
  void Kick() {
    const uint64_t one = 1;
    CHECK(write(efd_, &one, sizeof one) == sizeof one);
  }
  std::atomic<uint32_t> notified[8] = {};

 private:
  int efd_;
};

bool WaitFor(const std::function<bool()>& done, int ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return true;
}

// The guest's side of a send: publish, then kick only when avail_event asks.
bool SendAndMaybeKick(FakeGuest& g, FakeEvents& ev, const std::vector<uint8_t>& frame) {
  const uint16_t old = FakeGuest::LoadIdx(&g.Tx().avail->idx);
  if (!g.Send(frame)) return false;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  const uint16_t event = __atomic_load_n(AvailEvent(g.Tx()), __ATOMIC_RELAXED);
  if (VringNeedEvent(event, uint16_t(old + 1), old)) ev.Kick();
  return true;
}

// Guests a (domain 1, port 3) and b (domain 2, port 4) on the switch, each
// with an event channel; returns their slots.
std::pair<uint32_t, uint32_t> AddNotifyingPair(Switch& sw, FakeGuest& a, FakeGuest& b) {
  DeviceConfig ca = a.Config(1, 0), cb = b.Config(2, 0);
  ca.evtchn = 3;
  cb.evtchn = 4;
  const uint32_t sa = sw.AddDevice(ca);
  return {sa, sw.AddDevice(cb)};
}

// Idle -> one frame, many times: the switch is asleep each time (it went to
// sleep again since the last frame), and every frame arrives.
void TestSleepingSwitchLosesNoWakeup() {
  SwitchConfig cfg;
  cfg.interrupt = true;
  Switch sw(cfg, nullptr);
  FakeEvents ev;
  sw.SetEvents(&ev);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000);
  AddNotifyingPair(sw, a, b);
  b.PostRx(200);
  sw.Start();
  // B asks to be notified of the next frame it receives, as a sleeping guest does.
  auto arm_b = [&] { __atomic_store_n(UsedEvent(b.Rx()), b.rx_used_seen, __ATOMIC_SEQ_CST); };

  constexpr uint32_t kIterations = 150;
  uint32_t delivered = 0, kicks_seen = 0, asleep = 0;
  uint64_t sleeps = 0;  // the data thread's sleeps before the last frame: it went to sleep again since
  for (uint32_t i = 0; i < kIterations; ++i) {
    if (WaitFor([&] { return sw.Sleeps() > sleeps; }, 2000)) ++asleep;
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // well into ppoll, usually
    sleeps = sw.Sleeps();
    arm_b();
    const uint32_t notes = ev.notified[4].load();
    auto f = MakeFrame(kMacB, kMacA, 60 + i % 100, uint8_t(i));
    CHECK(SendAndMaybeKick(a, ev, f));
    std::vector<FakeGuest::Received> got;
    const bool arrived = WaitFor([&] {
      auto more = b.Harvest();
      got.insert(got.end(), more.begin(), more.end());
      return !got.empty();
    }, 2000);
    if (arrived && got.size() == 1 && IsDelivery(got[0], f)) ++delivered;
    if (WaitFor([&] { return ev.notified[4].load() > notes; }, 2000)) ++kicks_seen;
  }
  CHECK_EQ(asleep, kIterations);
  CHECK_EQ(delivered, kIterations);
  CHECK_EQ(kicks_seen, kIterations);  // B was notified of each frame it had armed for
  sw.Stop();
}

// A sleeping switch stays asleep without a kick (the wake-up is what moves
// the frame), and a device that cannot notify is polled all the same.
void TestWithoutKickOnlyPolledDevicesMove() {
  SwitchConfig cfg;
  cfg.interrupt = true;
  Switch sw(cfg, nullptr);
  FakeEvents ev;
  sw.SetEvents(&ev);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000);
  AddNotifyingPair(sw, a, b);
  b.PostRx(8);
  sw.Start();
  CHECK(WaitFor([&] { return sw.Sleeps() > 0; }, 2000));
  auto f = MakeFrame(kMacB, kMacA, 64, 1);
  CHECK(a.Send(f));  // no kick
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(b.Harvest().empty());  // the switch slept through it: no timer polls evented devices
  ev.Kick();
  std::vector<FakeGuest::Received> got;
  CHECK(WaitFor([&] {
    auto more = b.Harvest();
    got.insert(got.end(), more.begin(), more.end());
    return !got.empty();
  }, 2000));
  CHECK(got.size() == 1 && IsDelivery(got[0], f));

  // C has no channel (DPDK's xenvirt keys): polled, no kick needed.
  FakeGuest c(kMacC, 0x30000000);
  sw.AddDevice(c.Config(3, 0));
  for (uint32_t i = 0; i < 20; ++i) {
    auto g = MakeFrame(kMacB, kMacC, 64 + i, uint8_t(i));
    CHECK(c.Send(g));
    std::vector<FakeGuest::Received> r;
    CHECK(WaitFor([&] {
      auto more = b.Harvest();
      r.insert(r.end(), more.begin(), more.end());
      return !r.empty();
    }, 2000));
    CHECK(r.size() == 1 && IsDelivery(r[0], g));
    b.PostRx(1);
  }
  sw.Stop();
}

// A guest scribbling random values over both event words while it sends:
// every frame still arrives, nothing is quarantined; at worst the switch
// notifies the guest when it did not ask.
void TestHostileEventWords() {
  SwitchConfig cfg;
  Switch sw(cfg, nullptr);
  FakeEvents ev;
  sw.SetEvents(&ev);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000);
  const auto [sa, sb] = AddNotifyingPair(sw, a, b);
  sw.Start();
  std::atomic<bool> stop{false};
  std::thread scribbler([&] {
    std::mt19937 rng(7);
    while (!stop.load()) {
      __atomic_store_n(UsedEvent(a.Tx()), uint16_t(rng()), __ATOMIC_RELAXED);
      __atomic_store_n(UsedEvent(b.Rx()), uint16_t(rng()), __ATOMIC_RELAXED);
      __atomic_store_n(AvailEvent(a.Tx()), uint16_t(rng()), __ATOMIC_RELAXED);  // the switch's word, overwritten
    }
  });
  uint32_t delivered = 0;
  for (uint32_t i = 0; i < 2000; ++i) {
    b.PostRx(1);
    auto f = MakeFrame(kMacB, kMacA, 60, uint8_t(i));
    CHECK(a.Send(f));
    ev.Kick();  // a guest that always kicks: allowed, only costs it
    std::vector<FakeGuest::Received> got;
    WaitFor([&] {
      auto more = b.Harvest();
      got.insert(got.end(), more.begin(), more.end());
      return !got.empty();
    }, 2000);
    if (got.size() == 1 && IsDelivery(got[0], f)) ++delivered;
  }
  stop.store(true);
  scribbler.join();
  sw.Stop();
  CHECK_EQ(delivered, 2000u);
  for (const auto& s : sw.Stats()) {
    CHECK(s.state == DeviceState::kActive);
    if (s.slot == sa) CHECK_EQ(s.tx_total, 2000u);
    if (s.slot == sb) CHECK_EQ(s.rx_total, 2000u);
  }
}

}  // namespace

// A driver without the event index (vhost-user's virtio_user) reads
// used->flags: NO_NOTIFY while the device polls, cleared when it arms for a
// sleep, set again by the next Avail; a peer overwriting it changes nothing.
void TestNoNotifyFlag() {
  constexpr uint32_t kNum = 16;
  Pages ring(VringSize(kNum)), pool(kNum * kBufSize);
  RegionTable regions;
  CHECK(regions.Add(Region{0x1000000, pool.size, pool.p, true, pool.size}));
  VringDriver drv(ring.p, kNum);
  drv.Init();
  VringView v = VringView::At(ring.p, kNum);
  VringDevice dev(ring.p, kNum, ring.size, &regions, 4, RingDirection::kDeviceReads);
  CHECK_EQ(v.used->flags, 0);  // not asked: the flag is left alone
  CHECK(!dev.ArmAvailEvent());
  CHECK_EQ(v.used->flags, 0);
  dev.UseNoNotifyFlag();
  CHECK_EQ(v.used->flags, VRING_USED_F_NO_NOTIFY);
  uint32_t n = 0;
  CHECK(dev.Avail(&n) == Violation::kNone && n == 0);
  CHECK_EQ(v.used->flags, VRING_USED_F_NO_NOTIFY);  // polling: stays set
  CHECK(!dev.ArmAvailEvent());                       // about to sleep: kicks wanted
  CHECK_EQ(v.used->flags, 0);
  DriverBuf b{0x1000000, 64};
  drv.Add(&b, 1, 0, 1);
  drv.Publish();
  CHECK(dev.ArmAvailEvent());  // a chain came: do not sleep
  CHECK(dev.Avail(&n) == Violation::kNone && n == 1);
  CHECK_EQ(v.used->flags, VRING_USED_F_NO_NOTIFY);  // awake: no kicks again
  v.used->flags = 0xFFFF;  // the peer's scribble: advice to itself only
  Chain c;
  CHECK(dev.Pop(&c) == Violation::kNone && c.nseg == 1 && c.out_len == 64);
  CHECK(dev.Avail(&n) == Violation::kNone && n == 0);
}

int main() {
  TestNeedEvent();
  TestEventIdxBothHalves();
  TestNoNotifyFlag();
  TestSleepingSwitchLosesNoWakeup();
  TestWithoutKickOnlyPolledDevicesMove();
  TestHostileEventWords();
  return Finish("notify_test");
}
