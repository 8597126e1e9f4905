// The switch with two data threads (--cores): devices spread over them,
// frames between threads handed over (handoff.h) and copied once by the
// destination's thread, the source's TX chain given back only on completion,
// broadcasts and the NIC across threads, removal and quarantine with
// handoffs in flight (nothing of a removed device is read: its pages are
// unmapped before the other thread polls, which ASan would catch), and a run
// of both threads with traffic both ways. The deterministic tests drive each
// thread's loop by PollOnce(thread). Runs under ASan and UBSan.
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

#include "common/errors.h"
#include "switch/switch.h"
#include "switch_test_util.h"

using namespace xsw;
using namespace xsw::test;

namespace {

constexpr uint64_t kMacA = 0x020000000011ull, kMacB = 0x020000000022ull, kMacC = 0x020000000033ull,
                   kMacD = 0x020000000044ull, kMacHost = 0x02000000AA01ull;
constexpr uint64_t kBroadcast = 0xFFFFFFFFFFFFull;

// Two CPUs this process may run on (the test needs two).
std::vector<int> TwoCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof set, &set);
  std::vector<int> out;
  for (int c = 0; c < CPU_SETSIZE && out.size() < 2; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  if (out.size() < 2) std::fprintf(stderr, "switch_cores_test needs 2 CPUs in its affinity mask\n");
  CHECK_EQ(out.size(), 2u);
  return out;
}

SwitchConfig TwoThreads() {
  SwitchConfig cfg;
  cfg.cores = TwoCpus();
  return cfg;
}

DeviceStatsSnapshot StatsOf(const Switch& sw, uint32_t slot) {
  for (const auto& s : sw.Stats())
    if (s.slot == slot) return s;
  return {};
}
uint16_t TxUsed(FakeGuest& g) { return FakeGuest::LoadIdx(&g.Tx().used->idx); }

void TestOptionsAreChecked() {
  auto message = [](const SwitchConfig& c) {
    try {
      Switch::Validate(c);
    } catch (const SysError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  SwitchConfig c;
  c.cores = {0, 0};
  CHECK(message(c).find("CPU 0 is listed twice") != std::string::npos);
  c.cores = {CPU_SETSIZE + 5};
  CHECK(message(c).find("is not one this process may run on: give CPUs from") != std::string::npos);
  c.cores.assign(17, 0);
  for (int i = 0; i < 17; ++i) c.cores[i] = i;
  CHECK(message(c).find("give at most 16") != std::string::npos);
  c.cores = TwoCpus();
  CHECK(message(c).empty());
}

// A on thread 0, B on thread 1: thread 0 hands A's frames over without
// touching B's ring and keeps A's chains; thread 1 copies them into B in
// order; thread 0 then gives the chains back. And the other way round.
void TestUnicastAcrossThreads() {
  Switch sw(TwoThreads(), nullptr);
  CHECK_EQ(sw.threads(), 2u);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000);
  uint32_t sa = sw.AddDevice(a.Config(1, 0)), sb = sw.AddDevice(b.Config(2, 0));
  CHECK_EQ(StatsOf(sw, sa).thread, 0u);
  CHECK_EQ(StatsOf(sw, sb).thread, 1u);
  b.PostRx(64);
  a.PostRx(64);
  std::vector<std::vector<uint8_t>> sent;
  for (uint32_t i = 0; i < 40; ++i) {  // more than one burst
    sent.push_back(MakeFrame(kMacB, kMacA, 60 + i * 37, uint8_t(i)));
    CHECK(a.Send(sent.back(), i % 3 == 0 ? 100 : kBufSize));  // some chains of several segments
  }
  sw.PollOnce(0);
  sw.PollOnce(0);
  CHECK(b.Harvest().empty());  // thread 0 never writes B's ring
  CHECK_EQ(TxUsed(a), 0);      // A's chains are out until thread 1 is done with them
  sw.PollOnce(1);
  sw.PollOnce(1);
  auto got = b.Harvest();
  CHECK_EQ(got.size(), 40u);
  for (size_t i = 0; i < got.size() && i < sent.size(); ++i) CHECK(IsDelivery(got[i], sent[i]));
  CHECK_EQ(TxUsed(a), 0);
  sw.PollOnce(0);
  CHECK_EQ(TxUsed(a), 40);
  auto st_a = StatsOf(sw, sa), st_b = StatsOf(sw, sb);
  CHECK_EQ(st_a.tx_total, 40u);
  CHECK_EQ(st_a.tx_dropped, 0u);
  CHECK_EQ(st_b.rx_total, 40u);
  CHECK_EQ(st_b.rx_dropped, 0u);
  uint64_t bytes = 0;
  for (const auto& f : sent) bytes += f.size();
  CHECK_EQ(st_a.tx_bytes, bytes);
  CHECK_EQ(st_b.rx_bytes, bytes);
  auto th = sw.ThreadStats();
  CHECK_EQ(th.size(), 2u);
  CHECK_EQ(th[0].handed_out, 40u);
  CHECK_EQ(th[1].handed_in, 40u);
  CHECK_EQ(th[0].devices, 1u);
  CHECK_EQ(th[1].devices, 1u);

  // B answers: thread 1 hands, thread 0 copies.
  auto back = MakeFrame(kMacA, kMacB, 300, 9);
  CHECK(b.Send(back));
  sw.PollOnce(1);
  sw.PollOnce(0);
  sw.PollOnce(1);
  auto ga = a.Harvest();
  CHECK(ga.size() == 1 && IsDelivery(ga[0], back));
  CHECK_EQ(TxUsed(b), 1);
}

// Thread 1 falls behind: thread 0 hands over at most a ring's worth and
// leaves the rest in A's TX ring (no drop); all arrive once thread 1 runs.
void TestBackpressureWhenTheOtherThreadIsBehind() {
  Switch sw(TwoThreads(), nullptr);
  FakeGuest a(kMacA, 0x10000000, 512), b(kMacB, 0x20000000, 512);
  uint32_t sa = sw.AddDevice(a.Config(1, 0));
  sw.AddDevice(b.Config(2, 0));
  b.PostRx(300);
  std::vector<std::vector<uint8_t>> sent;
  for (uint32_t i = 0; i < 300; ++i) {
    sent.push_back(MakeFrame(kMacB, kMacA, 64 + i % 200, uint8_t(i)));
    CHECK(a.Send(sent.back()));
  }
  for (int i = 0; i < 20; ++i) sw.PollOnce(0);
  CHECK(sw.ThreadStats()[0].handed_out <= kHandoffRing);
  CHECK(sw.ThreadStats()[0].handed_out >= kHandoffRing - kBurst);
  for (int i = 0; i < 40; ++i) {
    sw.PollOnce(1);
    sw.PollOnce(0);
  }
  auto got = b.Harvest();
  CHECK_EQ(got.size(), sent.size());
  for (size_t i = 0; i < got.size() && i < sent.size(); ++i) CHECK(IsDelivery(got[i], sent[i]));
  CHECK_EQ(TxUsed(a), 300);
  CHECK_EQ(StatsOf(sw, sa).tx_dropped, 0u);
}

// The NIC is on thread 0 and counts as one device there: A (thread 1), B
// (thread 0), C (thread 1). A's broadcast reaches C on its own thread, B and
// the NIC through thread 0; A's unknown unicast leaves by the NIC; the NIC's
// frame for A and its broadcast cross to thread 1, and the NIC's burst is
// held until thread 1 is done with it.
void TestBroadcastAndNicAcrossThreads() {
  auto nic_owned = std::make_unique<FakeNic>();
  FakeNic* nic = nic_owned.get();
  Switch sw(TwoThreads(), std::move(nic_owned));
  FakeGuest a(kMacA, 0x10000000, 256, 1000), b(kMacB, 0x20000000, 256, 1001), c(kMacC, 0x30000000, 256, 1002);
  uint32_t sa = sw.AddDevice(a.Config(1, 0)), sb = sw.AddDevice(b.Config(2, 0)), sc = sw.AddDevice(c.Config(3, 0));
  CHECK_EQ(StatsOf(sw, sa).thread, 1u);
  CHECK_EQ(StatsOf(sw, sb).thread, 0u);
  CHECK_EQ(StatsOf(sw, sc).thread, 1u);
  a.PostRx(8);
  b.PostRx(8);
  c.PostRx(8);
  auto bc = MakeFrame(kBroadcast, kMacA, 100, 7, 0x0806);
  auto out = MakeFrame(0x02000000BEEFull, kMacA, 200, 3);
  CHECK(a.Send(bc));
  CHECK(a.Send(out));
  sw.PollOnce(1);
  auto gc = c.Harvest();
  CHECK(gc.size() == 1 && IsDelivery(gc[0], bc));
  CHECK_EQ(TxUsed(a), 0);
  sw.PollOnce(0);
  auto gb = b.Harvest();
  CHECK(gb.size() == 1 && IsDelivery(gb[0], bc));
  CHECK_EQ(nic->tx->size(), 2u);
  if (nic->tx->size() == 2) {
    CHECK_EQ(Be16At((*nic->tx)[0].data() + 14), 1000);  // A's VLAN
    CHECK(std::memcmp((*nic->tx)[1].data() + 16, out.data() + 12, out.size() - 12) == 0);
  }
  sw.PollOnce(1);
  CHECK_EQ(TxUsed(a), 2);
  CHECK_EQ(StatsOf(sw, sa).tx_dropped, 0u);
  CHECK_EQ(StatsOf(sw, sa).tx_bytes, bc.size() + out.size());

  // From the NIC: a unicast for A (VLAN 1000) and a broadcast on VLAN 1002 (C's).
  auto to_a = MakeFrame(kMacA, kMacHost, 120, 5);
  auto bc_c = MakeFrame(kBroadcast, kMacHost, 90, 6, 0x0806);
  FakeNic::Frame fa{to_a, true, 1000}, fc{bc_c, true, 1002};
  nic->rx->push_back(fa);
  nic->rx->push_back(fc);
  nic->rx->push_back(FakeNic::Frame{MakeFrame(kMacB, kMacHost, 80, 8), true, 1001});
  sw.PollOnce(0);
  CHECK_EQ(sw.NicStats().rx, 3u);
  auto gb2 = b.Harvest();  // B, on the NIC's thread, has its frame at once
  CHECK_EQ(gb2.size(), 1u);
  nic->rx->push_back(FakeNic::Frame{MakeFrame(kMacB, kMacHost, 81, 8), true, 1001});
  sw.PollOnce(0);
  CHECK_EQ(sw.NicStats().rx, 3u);  // the burst is held: no new one taken
  sw.PollOnce(1);
  auto ga = a.Harvest();
  CHECK(ga.size() == 1 && IsDelivery(ga[0], to_a));
  auto gc2 = c.Harvest();
  CHECK(gc2.size() == 1 && IsDelivery(gc2[0], bc_c));
  sw.PollOnce(0);  // completions release the burst; the next one is taken
  CHECK_EQ(sw.NicStats().rx, 4u);
  CHECK_EQ(b.Harvest().size(), 1u);
  CHECK_EQ(sw.NicStats().dropped, 0u);
}

// Handoffs in flight when their destination, or their source, is removed
// and its memory unmapped: dropped unread and counted; the other device's
// chains still come back.
void TestRemoveWithHandoffsInFlight() {
  {
    Switch sw(TwoThreads(), nullptr);
    FakeGuest a(kMacA, 0x10000000);
    auto b = std::make_unique<FakeGuest>(kMacB, 0x20000000);
    uint32_t sa = sw.AddDevice(a.Config(1, 0)), sb = sw.AddDevice(b->Config(2, 0));
    b->PostRx(16);
    for (uint32_t i = 0; i < 10; ++i) CHECK(a.Send(MakeFrame(kMacB, kMacA, 100, uint8_t(i))));
    sw.PollOnce(0);
    sw.RemoveDevice(sb);
    b.reset();  // its rings and pool are unmapped
    sw.PollOnce(1);
    sw.PollOnce(0);
    CHECK_EQ(TxUsed(a), 10);
    CHECK_EQ(StatsOf(sw, sa).tx_dropped, 10u);
    CHECK_EQ(sw.ThreadStats()[1].handoff_dropped, 10u);
  }
  {
    Switch sw(TwoThreads(), nullptr);
    auto a = std::make_unique<FakeGuest>(kMacA, 0x10000000);
    FakeGuest b(kMacB, 0x20000000);
    uint32_t sa = sw.AddDevice(a->Config(1, 0)), sb = sw.AddDevice(b.Config(2, 0));
    b.PostRx(16);
    for (uint32_t i = 0; i < 10; ++i) CHECK(a->Send(MakeFrame(kMacB, kMacA, 100, uint8_t(i))));
    sw.PollOnce(0);
    sw.RemoveDevice(sa);
    a.reset();  // the source's buffers, which the handoffs point into, are gone
    sw.PollOnce(1);
    CHECK(b.Harvest().empty());
    sw.PollOnce(0);
    CHECK_EQ(sw.ThreadStats()[1].handoff_dropped, 10u);
    CHECK_EQ(sw.ThreadStats()[0].handoff_dropped, 10u);  // their completions too
    CHECK_EQ(StatsOf(sw, sb).rx_total, 0u);
    // A new device in the slot does not get the old one's completions.
    FakeGuest c(kMacC, 0x30000000);
    CHECK_EQ(sw.AddDevice(c.Config(3, 0)), sa);
    sw.PollOnce(0);
    sw.PollOnce(1);
    CHECK_EQ(TxUsed(c), 0);
  }
}

// A hostile guest on thread 0 is quarantined; its frames already handed to
// thread 1 are still copied (they were validated) but its ring is not
// touched again; C (thread 0) and D (thread 1) keep switching.
void TestQuarantineAcrossThreads() {
  Switch sw(TwoThreads(), nullptr);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000), c(kMacC, 0x30000000), d(kMacD, 0x40000000);
  uint32_t sa = sw.AddDevice(a.Config(1, 0)), sb = sw.AddDevice(b.Config(2, 0));
  uint32_t sc = sw.AddDevice(c.Config(3, 0)), sd = sw.AddDevice(d.Config(4, 0));
  CHECK(StatsOf(sw, sa).thread == 0 && StatsOf(sw, sc).thread == 0);
  CHECK(StatsOf(sw, sb).thread == 1 && StatsOf(sw, sd).thread == 1);
  b.PostRx(16);
  d.PostRx(64);
  for (uint32_t i = 0; i < 3; ++i) CHECK(a.Send(MakeFrame(kMacB, kMacA, 100, uint8_t(i))));
  a.PostAvail(a.Tx(), 9999);  // a head past the ring
  std::vector<std::vector<uint8_t>> sent;
  for (uint32_t round = 0; round < 3; ++round) {
    for (uint32_t i = 0; i < 10; ++i) {
      sent.push_back(MakeFrame(kMacD, kMacC, 64 + i, uint8_t(round * 10 + i)));
      CHECK(c.Send(sent.back()));
    }
    sw.PollOnce(0);
    sw.PollOnce(1);
  }
  sw.PollOnce(0);
  CHECK(StatsOf(sw, sa).state == DeviceState::kQuarantined);
  CHECK_EQ(b.Harvest().size(), 3u);
  CHECK_EQ(TxUsed(a), 0);  // completions after the quarantine leave its ring alone
  CHECK_EQ(sw.ThreadStats()[0].handoff_dropped, 3u);
  auto got = d.Harvest();
  CHECK_EQ(got.size(), sent.size());
  for (size_t i = 0; i < got.size() && i < sent.size(); ++i) CHECK(IsDelivery(got[i], sent[i]));
  CHECK_EQ(TxUsed(c), 30);
  auto ev = sw.DrainEvents();
  CHECK(ev.size() == 1 && ev[0].slot == sa);
}

// Both threads running (adaptive: they sleep and are woken by handoffs):
// A (thread 0) and B (thread 1) send each other numbered frames at a steady
// pace; each receives every frame intact and in order.
void TestThreadsRunTrafficBothWays() {
  Switch sw(TwoThreads(), nullptr);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000);
  sw.AddDevice(a.Config(1, 0));
  sw.AddDevice(b.Config(2, 0));
  a.PostRx(256);
  b.PostRx(256);
  sw.Start();
  constexpr uint32_t kFrames = 3000;
  auto run = [](FakeGuest& self, uint64_t dst, uint64_t src, uint32_t* ok) {
    uint32_t sent = 0, got = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while ((sent < kFrames || got < kFrames) && std::chrono::steady_clock::now() < deadline) {
      if (sent < kFrames && sent < got + 64) {
        auto f = MakeFrame(dst, src, 60 + sent % 1400, uint8_t(sent));
        PutBe16(f.data() + 14, uint16_t(sent));
        if (self.Send(f)) ++sent;
      }
      for (const auto& r : self.Harvest()) {
        std::vector<uint8_t> want = MakeFrame(src, dst, 60 + got % 1400, uint8_t(got));
        PutBe16(want.data() + 14, uint16_t(got));
        if (IsDelivery(r, want)) ++*ok;
        ++got;
        self.PostRx(1);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  };
  uint32_t ok_a = 0, ok_b = 0;
  std::thread ta([&] { run(a, kMacB, kMacA, &ok_a); });
  std::thread tb([&] { run(b, kMacA, kMacB, &ok_b); });
  ta.join();
  tb.join();
  sw.Stop();
  CHECK_EQ(ok_a, kFrames);
  CHECK_EQ(ok_b, kFrames);
  auto th = sw.ThreadStats();
  CHECK_EQ(th[0].handed_out, uint64_t(kFrames));
  CHECK_EQ(th[1].handed_out, uint64_t(kFrames));
  CHECK_EQ(th[0].handoff_dropped + th[1].handoff_dropped, 0u);
}

}  // namespace

int main() {
  TestOptionsAreChecked();
  TestUnicastAcrossThreads();
  TestBackpressureWhenTheOtherThreadIsBehind();
  TestBroadcastAndNicAcrossThreads();
  TestRemoveWithHandoffsInFlight();
  TestQuarantineAcrossThreads();
  TestThreadsRunTrafficBothWays();
  return xsw::test::Finish("switch_cores_test");
}
