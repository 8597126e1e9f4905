// The switch, driven by fake guests and an in-memory NIC: vm2vm delivery,
// broadcast, the NIC path with VLAN insert/strip, jumbo chains, the hostile
// matrix (each fault quarantines or drops, names its counter, and a second
// pair of devices keeps switching with zero loss), flag death, restart from
// the rings' indexes, and removing a device while the data thread runs.
// Runs under ASan and UBSan.
#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include <sys/eventfd.h>
#include <unistd.h>

#include "common/cycles.h"
#include "common/errors.h"
#include "switch/switch.h"
#include "switch_test_util.h"

using namespace xsw;
using namespace xsw::test;

namespace {

constexpr uint64_t kMacA = 0x020000000011ull, kMacB = 0x020000000022ull, kMacC = 0x020000000033ull;
constexpr uint64_t kBroadcast = 0xFFFFFFFFFFFFull;

uint64_t Drops(const Switch& sw, uint32_t slot, const char* name) {
  for (const auto& s : sw.Stats()) {
    if (s.slot != slot) continue;
    for (uint32_t r = 0; r < kDropCount; ++r)
      if (std::strcmp(DropName(r), name) == 0) return s.drops[r];
  }
  return ~0ull;
}
uint64_t NicDrops(const Switch& sw, const char* name) {
  auto s = sw.NicStats();
  for (uint32_t r = 0; r < kDropCount; ++r)
    if (std::strcmp(DropName(r), name) == 0) return s.drops[r];
  return ~0ull;
}
DeviceStatsSnapshot StatsOf(const Switch& sw, uint32_t slot) {
  for (const auto& s : sw.Stats())
    if (s.slot == slot) return s;
  return {};
}

void PollN(Switch& sw, int n = 3) {
  for (int i = 0; i < n; ++i) sw.PollOnce();
}

void TestVm2vmUnicast() {
  Switch sw({}, nullptr);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000);
  uint32_t sa = sw.AddDevice(a.Config(1, 0)), sb = sw.AddDevice(b.Config(2, 0));
  b.PostRx(8);
  std::vector<std::vector<uint8_t>> sent;
  for (uint32_t i = 0; i < 5; ++i) {
    sent.push_back(MakeFrame(kMacB, kMacA, 60 + i * 100, uint8_t(i)));
    CHECK(a.Send(sent.back()));
  }
  PollN(sw);
  auto got = b.Harvest();
  CHECK_EQ(got.size(), 5u);
  for (size_t i = 0; i < got.size() && i < sent.size(); ++i) CHECK(IsDelivery(got[i], sent[i]));
  CHECK_EQ(FakeGuest::LoadIdx(&a.Tx().used->idx), 5);
  CHECK_EQ(a.Tx().used->ring[0].len, 0u);  // TX chains come back with len 0
  auto st_a = StatsOf(sw, sa), st_b = StatsOf(sw, sb);
  CHECK_EQ(st_a.tx_total, 5u);
  CHECK_EQ(st_a.tx_dropped, 0u);
  CHECK_EQ(st_b.rx_total, 5u);
  CHECK_EQ(st_b.rx_dropped, 0u);
  CHECK_EQ(st_b.rx_bytes, 60u + 160 + 260 + 360 + 460);
}

void TestBroadcastReachesNicAndEveryOtherDevice() {
  auto nic_owned = std::make_unique<FakeNic>();
  FakeNic* nic = nic_owned.get();
  Switch sw({}, std::move(nic_owned));
  FakeGuest a(kMacA, 0x10000000, 256, 1000), b(kMacB, 0x20000000, 256, 1001), c(kMacC, 0x30000000, 256, 1002);
  sw.AddDevice(a.Config(1, 0));
  sw.AddDevice(b.Config(2, 0));
  sw.AddDevice(c.Config(3, 0));
  a.PostRx(4);
  b.PostRx(4);
  c.PostRx(4);
  auto f = MakeFrame(kBroadcast, kMacA, 100, 7, 0x0806);
  CHECK(a.Send(f));
  PollN(sw);
  CHECK(a.Harvest().empty());
  auto gb = b.Harvest(), gc = c.Harvest();
  CHECK(gb.size() == 1 && IsDelivery(gb[0], f));
  CHECK(gc.size() == 1 && IsDelivery(gc[0], f));
  CHECK_EQ(nic->tx->size(), 1u);
  if (nic->tx->size() == 1) {
    const auto& out = (*nic->tx)[0];
    CHECK_EQ(out.size(), f.size() + 4);
    CHECK(std::memcmp(out.data(), f.data(), 12) == 0);
    CHECK_EQ(Be16At(out.data() + 12), 0x8100);
    CHECK_EQ(Be16At(out.data() + 14), 1000);  // the sender's VLAN
    CHECK(std::memcmp(out.data() + 16, f.data() + 12, f.size() - 12) == 0);
  }
  CHECK_EQ(sw.NicStats().tx, 1u);
}

// One burst mixing unicast to two guests, broadcasts and frames to the NIC:
// the staged path pops the unicast frames' RX chains before it copies, and
// the broadcasts' and the NIC's at copy time; each receiver must still get
// its frames in the order sent, each intact.
void TestMixedBurstKeepsOrderPerReceiver() {
  auto nic_owned = std::make_unique<FakeNic>();
  FakeNic* nic = nic_owned.get();
  Switch sw({}, std::move(nic_owned));
  FakeGuest a(kMacA, 0x10000000, 256, 1000), b(kMacB, 0x20000000, 256, 1001), c(kMacC, 0x30000000, 256, 1002);
  sw.AddDevice(a.Config(1, 0));
  sw.AddDevice(b.Config(2, 0));
  sw.AddDevice(c.Config(3, 0));
  b.PostRx(32);
  c.PostRx(32);
  const uint64_t dsts[] = {kMacB, kBroadcast, kMacB, kMacC, 0x020000000099ull, kBroadcast, kMacB, kMacC, kMacB};
  std::vector<std::vector<uint8_t>> to_b, to_c, to_nic;
  uint8_t seed = 1;
  for (uint64_t d : dsts) {
    auto f = MakeFrame(d, kMacA, 60 + 10 * seed, seed);
    ++seed;
    CHECK(a.Send(f));
    if (d == kMacB || d == kBroadcast) to_b.push_back(f);
    if (d == kMacC || d == kBroadcast) to_c.push_back(f);
    if (d != kMacB && d != kMacC) to_nic.push_back(f);
  }
  sw.PollOnce();  // one loop: the whole burst at once
  auto gb = b.Harvest(), gc = c.Harvest();
  CHECK_EQ(gb.size(), to_b.size());
  CHECK_EQ(gc.size(), to_c.size());
  for (size_t i = 0; i < gb.size() && i < to_b.size(); ++i) CHECK(IsDelivery(gb[i], to_b[i]));
  for (size_t i = 0; i < gc.size() && i < to_c.size(); ++i) CHECK(IsDelivery(gc[i], to_c[i]));
  CHECK_EQ(nic->tx->size(), to_nic.size());
  for (size_t i = 0; i < nic->tx->size() && i < to_nic.size(); ++i) {
    CHECK(std::memcmp((*nic->tx)[i].data() + 16, to_nic[i].data() + 12, to_nic[i].size() - 12) == 0);
  }
  CHECK_EQ(FakeGuest::LoadIdx(&a.Tx().used->idx), uint16_t(sizeof dsts / sizeof dsts[0]));
  CHECK_EQ(sw.Stats()[0].tx_dropped, 0u);
  // Each receiver used its RX chains in the order it posted them (virtio's
  // IN_ORDER, which vhost-user peers negotiate), broadcasts in between or not.
  for (FakeGuest* g : {&b, &c}) {
    VringView v = g->Rx();
    const uint16_t used = FakeGuest::LoadIdx(&v.used->idx);
    CHECK(used >= 4);
    for (uint16_t k = 0; k < used; ++k) CHECK_EQ(v.used->ring[k].id, uint32_t(v.avail->ring[k]));
  }
}

void TestUnknownUnicastGoesToNicTagged() {
  auto nic_owned = std::make_unique<FakeNic>();
  FakeNic* nic = nic_owned.get();
  Switch sw({}, std::move(nic_owned));
  FakeGuest a(kMacA, 0x10000000, 256, 1005);
  sw.AddDevice(a.Config(1, 0));
  auto f = MakeFrame(0x020000000099ull, kMacA, 1514, 3);  // a full 1500-byte MTU frame
  CHECK(a.Send(f));
  PollN(sw);
  CHECK(nic->tx->size() == 1 && (*nic->tx)[0].size() == 1518 && Be16At((*nic->tx)[0].data() + 14) == 1005);
  CHECK(nic->flushes > 0);

  // vm2vm off: even a local MAC goes to the NIC.
  auto nic2_owned = std::make_unique<FakeNic>();
  FakeNic* nic2 = nic2_owned.get();
  SwitchConfig cfg;
  cfg.vm2vm = false;
  Switch sw2(cfg, std::move(nic2_owned));
  FakeGuest a2(kMacA, 0x10000000), b2(kMacB, 0x20000000);
  sw2.AddDevice(a2.Config(1, 0));
  sw2.AddDevice(b2.Config(2, 0));
  b2.PostRx(2);
  auto g = MakeFrame(kMacB, kMacA, 80, 1);
  CHECK(a2.Send(g));
  PollN(sw2);
  CHECK(b2.Harvest().empty());
  // VLAN 0 means untagged on the NIC.
  CHECK(nic2->tx->size() == 1 && (*nic2->tx)[0] == g);
}

void TestNicToGuestClassifiesByMacAndVlanAndStripsTheTag() {
  auto nic_owned = std::make_unique<FakeNic>();
  FakeNic* nic = nic_owned.get();
  Switch sw({}, std::move(nic_owned));
  FakeGuest a(kMacA, 0x10000000, 256, 1000), b(kMacB, 0x20000000, 256, 1001);
  uint32_t sa = sw.AddDevice(a.Config(1, 0));
  uint32_t sb = sw.AddDevice(b.Config(2, 0));
  a.PostRx(8);
  b.PostRx(8);
  auto plain = MakeFrame(kMacB, 0x02000000AAAAull, 200, 9);
  // 1: tag in the port's metadata (AF_PACKET aux data).
  nic->rx->push_back({plain, true, 1001});
  // 2: tag inside the frame.
  std::vector<uint8_t> tagged(plain.begin(), plain.begin() + 12);
  tagged.insert(tagged.end(), {0x81, 0x00, 0x03, 0xE9});  // VID 1001
  tagged.insert(tagged.end(), plain.begin() + 12, plain.end());
  nic->rx->push_back({tagged, false, 0});
  // 3: right MAC, wrong VLAN -> unknown_dst.
  nic->rx->push_back({plain, true, 1000});
  // 4: unknown MAC.
  nic->rx->push_back({MakeFrame(0x020000000077ull, 0x02000000AAAAull, 64, 1), true, 1001});
  // 5: broadcast on VLAN 1000 -> only A.
  auto bc = MakeFrame(kBroadcast, 0x02000000AAAAull, 64, 2);
  nic->rx->push_back({bc, true, 1000});
  // 6: runt.
  nic->rx->push_back({std::vector<uint8_t>(10, 0), false, 0});
  PollN(sw);
  auto gb = b.Harvest(), ga = a.Harvest();
  CHECK_EQ(gb.size(), 2u);
  for (auto& r : gb) CHECK(IsDelivery(r, plain));
  CHECK(ga.size() == 1 && IsDelivery(ga[0], bc));
  auto n = sw.NicStats();
  CHECK_EQ(n.rx, 6u);
  CHECK_EQ(n.dropped, 3u);
  CHECK_EQ(NicDrops(sw, "unknown_dst"), 2u);
  CHECK_EQ(NicDrops(sw, "runt"), 1u);
  CHECK_EQ(StatsOf(sw, sb).rx_total, 2u);
  CHECK_EQ(StatsOf(sw, sa).rx_total, 1u);
}

void TestJumboFrameCrossesVm2vmThroughChains() {
  SwitchConfig cfg;
  cfg.mtu = 9000;
  Switch sw(cfg, nullptr);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000);
  sw.AddDevice(a.Config(1, 0));
  uint32_t sb = sw.AddDevice(b.Config(2, 0));
  b.PostRx(2, 5);  // chains of 5 x 2 KiB
  auto f = MakeFrame(kMacB, kMacA, 9014, 5);
  CHECK(a.Send(f, 2048));  // 9024 bytes in 5 descriptors
  auto f2 = MakeFrame(kMacB, kMacA, 9014, 6);
  CHECK(a.Send(f2, 1000));  // 10 descriptors of 1000 bytes
  PollN(sw);
  auto got = b.Harvest();
  CHECK(got.size() == 2 && IsDelivery(got[0], f) && IsDelivery(got[1], f2));
  CHECK_EQ(StatsOf(sw, sb).rx_bytes, 2u * 9014);
}

// ---------------------------------------------------------------------------
// The hostile matrix. Device A (domain 1) misbehaves; C sends 20 frames to B
// meanwhile, which must all arrive.

struct HostileCase {
  const char* name;
  std::function<void(FakeGuest& a)> act;  // does the bad thing
  const char* counter;                     // the named counter that must move (on A, or on B for RX ones)
  bool quarantine;                         // A is quarantined (else only frames are dropped)
  uint32_t ring = 16;
  uint32_t mtu = 1500;
};

void RunHostile(const HostileCase& hc) {
  std::fprintf(stderr, "hostile: %s\n", hc.name);
  SwitchConfig cfg;
  cfg.mtu = hc.mtu;
  Switch sw(cfg, nullptr);
  FakeGuest a(kMacA, 0x10000000, hc.ring), b(kMacB, 0x20000000), c(kMacC, 0x30000000);
  uint32_t sa = sw.AddDevice(a.Config(1, 0));
  uint32_t sb = sw.AddDevice(b.Config(2, 0));
  sw.AddDevice(c.Config(3, 0));
  b.PostRx(40);
  std::vector<std::vector<uint8_t>> sent;
  for (uint32_t i = 0; i < 10; ++i) {
    sent.push_back(MakeFrame(kMacB, kMacC, 64 + i, uint8_t(i)));
    CHECK(c.Send(sent.back()));
  }
  hc.act(a);
  PollN(sw);
  for (uint32_t i = 10; i < 20; ++i) {
    sent.push_back(MakeFrame(kMacB, kMacC, 64 + i, uint8_t(i)));
    CHECK(c.Send(sent.back()));
  }
  PollN(sw);
  auto got = b.Harvest();
  CHECK_EQ(got.size(), 20u);
  for (size_t i = 0; i < got.size() && i < sent.size(); ++i) CHECK(IsDelivery(got[i], sent[i]));

  auto st = StatsOf(sw, sa);
  CHECK_EQ(Drops(sw, sa, hc.counter), 1u);
  auto events = sw.DrainEvents();
  if (hc.quarantine) {
    CHECK(st.state == DeviceState::kQuarantined);
    CHECK(events.size() == 1 && events[0].slot == sa && events[0].kind == FaultKind::kQuarantine &&
          events[0].reason == hc.counter);
    CHECK(sw.DrainEvents().empty());  // reported once
  } else {
    CHECK(st.state == DeviceState::kActive);
    CHECK(events.empty());
  }
  // Removing the offender frees its slot; C and B are untouched.
  sw.RemoveDevice(sa);
  CHECK(StatsOf(sw, sb).state == DeviceState::kActive);
}

void TestHostileMatrix() {
  auto raw_tx = [](FakeGuest& a, VringDesc d) {
    VringView v = a.Tx();
    v.desc[0] = d;
    a.PostAvail(v, 0);
  };
  std::vector<HostileCase> cases = {
      {"gva outside every region",
       [&](FakeGuest& a) { raw_tx(a, VringDesc{0x50000000, 100, 0, 0}); }, "addr_outside_region", true},
      {"length past the region end",
       [&](FakeGuest& a) { raw_tx(a, VringDesc{a.gva + a.pool.size - 50, 100, 0, 0}); }, "addr_outside_region",
       true},
      {"length overflowing the address space",
       [&](FakeGuest& a) { raw_tx(a, VringDesc{~0ull - 10, 100, 0, 0}); }, "len_overflow", true},
      {"length over the MTU",
       [&](FakeGuest& a) { CHECK(a.Send(MakeFrame(kMacB, kMacA, 1515, 1))); }, "mtu_exceeded", false},
      {"descriptor index past the ring",
       [&](FakeGuest& a) { a.PostAvail(a.Tx(), 16 + 5); }, "desc_index", true},
      {"next index past the ring",
       [&](FakeGuest& a) { raw_tx(a, VringDesc{a.TxGva(0), 100, VRING_DESC_F_NEXT, 300}); }, "desc_index", true},
      {"NEXT loop",
       [&](FakeGuest& a) {
         VringView v = a.Tx();
         v.desc[0] = VringDesc{a.TxGva(0), 100, VRING_DESC_F_NEXT, 1};
         v.desc[1] = VringDesc{a.TxGva(1), 100, VRING_DESC_F_NEXT, 0};
         a.PostAvail(v, 0);
       },
       "chain_loop", true},
      {"chain longer than the ring",  // 16 entries: a 17th link must revisit one
       [&](FakeGuest& a) {
         VringView v = a.Tx();
         for (uint32_t i = 0; i < 16; ++i) v.desc[i] = VringDesc{a.TxGva(i), 64, VRING_DESC_F_NEXT, uint16_t((i + 1) % 16)};
         a.PostAvail(v, 0);
       },
       "chain_loop", true},
      {"chain of 17 descriptors (more than a jumbo needs)",
       [&](FakeGuest& a) {
         VringView v = a.Tx();
         for (uint32_t i = 0; i < 17; ++i)
           v.desc[i] = VringDesc{a.TxGva(i), 64, uint16_t(i < 16 ? VRING_DESC_F_NEXT : 0), uint16_t(i + 1)};
         a.PostAvail(v, 0);
       },
       "chain_too_long", true, 32},
      {"avail idx jumped past the ring size",
       [&](FakeGuest& a) { FakeGuest::StoreIdx(&a.Tx().avail->idx, 17); }, "avail_idx_jump", true},
      {"device-writable descriptor on the TX ring",
       [&](FakeGuest& a) { raw_tx(a, VringDesc{a.TxGva(0), 100, VRING_DESC_F_WRITE, 0}); }, "read_from_writeonly",
       true},
      {"indirect descriptor",
       [&](FakeGuest& a) { raw_tx(a, VringDesc{a.TxGva(0), 100, VRING_DESC_F_INDIRECT, 0}); }, "indirect_desc",
       true},
      {"spoofed source MAC",
       [&](FakeGuest& a) { CHECK(a.Send(MakeFrame(kMacB, kMacC, 64, 1))); }, "spoofed_src_mac", false},
      {"runt frame", [&](FakeGuest& a) { CHECK(a.Send(std::vector<uint8_t>(10, 0xAB))); }, "runt", false},
      {"frame to itself", [&](FakeGuest& a) { CHECK(a.Send(MakeFrame(kMacA, kMacA, 64, 1))); }, "same_device",
       false},
      {"no RX buffer at the destination",
       [&](FakeGuest& a) { CHECK(a.Send(MakeFrame(kMacC, kMacA, 64, 1))); }, "rx_no_buffer", false},
  };
  for (auto& hc : cases) {
    std::string name = hc.name;
    if (name == "no RX buffer at the destination") {
      // C has no RX buffers posted; the counter moves on C, A stays active.
      SwitchConfig cfg;
      Switch sw(cfg, nullptr);
      FakeGuest a(kMacA, 0x10000000), c(kMacC, 0x30000000);
      uint32_t sa = sw.AddDevice(a.Config(1, 0));
      uint32_t sc = sw.AddDevice(c.Config(3, 0));
      hc.act(a);
      PollN(sw);
      CHECK_EQ(Drops(sw, sc, "rx_no_buffer"), 1u);
      CHECK_EQ(StatsOf(sw, sc).rx_dropped, 1u);
      CHECK_EQ(StatsOf(sw, sa).tx_dropped, 1u);
      continue;
    }
    RunHostile(hc);
  }
}

// RX faults need a sender: these cases get traffic from C to A too.
void TestHostileRxRings() {
  struct Row {
    const char* name;
    std::function<void(FakeGuest&)> act;
    const char* counter;
    bool writable_pool;
  };
  std::vector<Row> rows = {
      {"rx descriptor without WRITE", [](FakeGuest& a) { a.PostRx(1, 1, kBufSize, 0); }, "write_to_readonly", true},
      {"rx in a read-only region", [](FakeGuest& a) { a.PostRx(1); }, "write_to_readonly", false},
      {"rx avail idx jumped", [](FakeGuest& a) { FakeGuest::StoreIdx(&a.Rx().avail->idx, 40); }, "avail_idx_jump",
       true},
      {"rx descriptor index past the ring", [](FakeGuest& a) { a.PostAvail(a.Rx(), 999); }, "desc_index", true},
  };
  for (auto& row : rows) {
    std::fprintf(stderr, "hostile rx: %s\n", row.name);
    Switch sw({}, nullptr);
    FakeGuest a(kMacA, 0x10000000, 16), b(kMacB, 0x20000000), c(kMacC, 0x30000000);
    uint32_t sa = sw.AddDevice(a.Config(1, 0, row.writable_pool));
    sw.AddDevice(b.Config(2, 0));
    uint32_t sc = sw.AddDevice(c.Config(3, 0));
    b.PostRx(20);
    row.act(a);
    CHECK(c.Send(MakeFrame(kMacA, kMacC, 64, 1)));
    std::vector<std::vector<uint8_t>> sent;
    for (uint32_t i = 0; i < 20; ++i) {
      sent.push_back(MakeFrame(kMacB, kMacC, 64 + i, uint8_t(i)));
      CHECK(c.Send(sent.back()));
    }
    PollN(sw);
    auto got = b.Harvest();
    CHECK_EQ(got.size(), 20u);
    for (size_t i = 0; i < got.size() && i < sent.size(); ++i) CHECK(IsDelivery(got[i], sent[i]));
    CHECK(StatsOf(sw, sa).state == DeviceState::kQuarantined);
    CHECK_EQ(Drops(sw, sa, row.counter), 1u);
    CHECK_EQ(StatsOf(sw, sc).tx_dropped, 1u);
    auto ev = sw.DrainEvents();
    CHECK(ev.size() == 1 && ev[0].reason == row.counter);
    // Later frames to A are dropped at the source as dst_down; A is never touched again.
    CHECK(c.Send(MakeFrame(kMacA, kMacC, 64, 2)));
    PollN(sw);
    CHECK_EQ(Drops(sw, sc, "dst_down"), 1u);
  }
}

void TestRxChainTooSmallIsReturnedEmpty() {
  Switch sw({}, nullptr);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000);
  sw.AddDevice(a.Config(1, 0));
  uint32_t sb = sw.AddDevice(b.Config(2, 0));
  b.PostRx(1, 1, 64);
  b.PostRx(1);
  auto big = MakeFrame(kMacB, kMacA, 1000, 1), small = MakeFrame(kMacB, kMacA, 40, 2);
  CHECK(a.Send(big));
  CHECK(a.Send(small));
  PollN(sw);
  auto got = b.Harvest();
  CHECK(got.size() == 2 && got[0].len == 0 && IsDelivery(got[1], small));
  CHECK_EQ(Drops(sw, sb, "rx_too_big"), 1u);
  CHECK(StatsOf(sw, sb).state == DeviceState::kActive);
}

void TestNicTxFullIsCounted() {
  auto nic_owned = std::make_unique<FakeNic>();
  FakeNic* nic = nic_owned.get();
  Switch sw({}, std::move(nic_owned));
  FakeGuest a(kMacA, 0x10000000, 256, 1000);
  uint32_t sa = sw.AddDevice(a.Config(1, 0));
  nic->tx_full = true;
  CHECK(a.Send(MakeFrame(0x020000000099ull, kMacA, 64, 1)));
  PollN(sw);
  CHECK_EQ(Drops(sw, sa, "nic_tx_full"), 1u);
  CHECK_EQ(NicDrops(sw, "nic_tx_full"), 1u);
  CHECK_EQ(StatsOf(sw, sa).tx_dropped, 1u);
}

void TestNoNicDropsExternalFrames() {
  Switch sw({}, nullptr);
  FakeGuest a(kMacA, 0x10000000);
  uint32_t sa = sw.AddDevice(a.Config(1, 0));
  CHECK(a.Send(MakeFrame(0x020000000099ull, kMacA, 64, 1)));
  CHECK(a.Send(MakeFrame(kBroadcast, kMacA, 64, 1)));
  PollN(sw);
  CHECK_EQ(Drops(sw, sa, "no_nic"), 2u);
}

void TestFlagClearedMarksDeadOnce() {
  Switch sw({}, nullptr);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000);
  uint32_t sa = sw.AddDevice(a.Config(4, 2));
  sw.AddDevice(b.Config(5, 0));
  a.flag.p[0] = kVringFlagDead;
  CHECK(a.Send(MakeFrame(kMacB, kMacA, 64, 1)));
  b.PostRx(1);
  PollN(sw);
  CHECK(b.Harvest().empty());  // a dead device's ring is not read
  CHECK(StatsOf(sw, sa).state == DeviceState::kDead);
  auto ev = sw.DrainEvents();
  CHECK(ev.size() == 1 && ev[0].kind == FaultKind::kDead && ev[0].domid == 4 && ev[0].dev == 2 &&
        ev[0].reason == "vring_flag_cleared");
  CHECK(sw.DrainEvents().empty());
}

void TestRestartResumesFromTheRingIndexes() {
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000);
  b.PostRx(10);
  std::vector<std::vector<uint8_t>> sent;
  {
    Switch sw({}, nullptr);
    sw.AddDevice(a.Config(1, 0));
    sw.AddDevice(b.Config(2, 0));
    for (uint32_t i = 0; i < 3; ++i) {
      sent.push_back(MakeFrame(kMacB, kMacA, 64, uint8_t(i)));
      CHECK(a.Send(sent.back()));
    }
    PollN(sw);
  }
  for (uint32_t i = 3; i < 5; ++i) {
    sent.push_back(MakeFrame(kMacB, kMacA, 64, uint8_t(i)));
    CHECK(a.Send(sent.back()));
  }
  Switch sw2({}, nullptr);
  sw2.AddDevice(a.Config(1, 0));
  sw2.AddDevice(b.Config(2, 0));
  PollN(sw2);
  auto got = b.Harvest();
  CHECK_EQ(got.size(), 5u);  // nothing lost, nothing delivered twice
  for (size_t i = 0; i < got.size() && i < sent.size(); ++i) CHECK(IsDelivery(got[i], sent[i]));
  CHECK_EQ(FakeGuest::LoadIdx(&a.Tx().used->idx), 5);
  CHECK_EQ(StatsOf(sw2, 0).tx_total, 2u);
}

void TestRegistrationErrors() {
  SwitchConfig cfg;
  cfg.max_devices = 2;
  Switch sw(cfg, nullptr);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000), c(kMacC, 0x30000000), dup(kMacA, 0x40000000);
  uint32_t sa = sw.AddDevice(a.Config(1, 0));
  try {
    sw.AddDevice(dup.Config(7, 3));
    CHECK(false);
  } catch (const SysError& e) {
    CHECK_EQ(e.err(), EEXIST);
    CHECK(std::string(e.what()) == "MAC 02:00:00:00:00:11 is already registered by domain 1 device 0");
  }
  sw.AddDevice(b.Config(2, 0));
  try {
    sw.AddDevice(c.Config(3, 0));
    CHECK(false);
  } catch (const SysError& e) {
    CHECK_EQ(e.err(), ENOSPC);
  }
  auto bad = c.Config(3, 0);
  bad.mac = kBroadcast;
  try {
    sw.RemoveDevice(sa);
    sw.AddDevice(bad);
    CHECK(false);
  } catch (const SysError& e) {
    CHECK_EQ(e.err(), EINVAL);
  }
  auto badring = c.Config(3, 0);
  badring.tx_num = 100;
  try {
    sw.AddDevice(badring);
    CHECK(false);
  } catch (const SysError& e) {
    CHECK_EQ(e.err(), EINVAL);
  }
  // The removed slot keeps its counters until reused, then the new device starts from zero.
  CHECK(StatsOf(sw, sa).state == DeviceState::kRemoved);
  CHECK_EQ(sw.AddDevice(c.Config(3, 0)), sa);
  CHECK(StatsOf(sw, sa).state == DeviceState::kActive && StatsOf(sw, sa).mac == kMacC);
  try {
    sw.RemoveDevice(9);
    CHECK(false);
  } catch (const SysError& e) {
    CHECK_EQ(e.err(), ENOENT);
  }
  SwitchConfig badcfg;
  badcfg.mtu = 9001;
  try {
    Switch s(badcfg, nullptr);
    CHECK(false);
  } catch (const SysError& e) {
    CHECK_EQ(e.err(), EINVAL);
  }
}

// The data thread runs; a guest thread keeps sending from A to B; B is
// removed and its memory unmapped at once. Any later touch of B's rings or
// buffers would fault (and ASan would report it).
void TestRemoveWhileTrafficFlows() {
  Switch sw({}, nullptr);
  FakeGuest a(kMacA, 0x10000000);
  auto b = std::make_unique<FakeGuest>(kMacB, 0x20000000);
  sw.AddDevice(a.Config(1, 0));
  uint32_t sb = sw.AddDevice(b->Config(2, 0));
  b->PostRx(256);
  sw.Start();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> queued{0};
  std::thread guest([&] {
    auto f = MakeFrame(kMacB, kMacA, 200, 1);
    while (!stop.load()) {
      if (a.Send(f)) ++queued;
      else std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  while (queued.load() < 100) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  sw.RemoveDevice(sb);
  b.reset();  // munmap of its rings, flag and pool
  uint64_t at_removal = queued.load();
  while (queued.load() < at_removal + 300) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  stop = true;
  guest.join();
  // Let the switch drain what is queued, then check the books balance.
  for (int i = 0; i < 2000 && FakeGuest::LoadIdx(&a.Tx().used->idx) != FakeGuest::LoadIdx(&a.Tx().avail->idx); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  sw.Stop();
  auto st = StatsOf(sw, 0);
  CHECK_EQ(st.tx_total, queued.load());
  CHECK(Drops(sw, 0, "no_nic") > 0);  // after removal B's MAC is unknown and there is no NIC
  CHECK(StatsOf(sw, sb).state == DeviceState::kRemoved);
}

// Random lengths, random segmentations and random destinations among three
// guests (jumbo MTU), fixed seed: every frame arrives intact, in order per
// (sender, receiver) pair, and the counters balance.
void TestRandomizedTrafficArrivesIntact() {
  SwitchConfig cfg;
  cfg.mtu = 9000;
  Switch sw(cfg, nullptr);
  uint64_t macs[3] = {kMacA, kMacB, kMacC};
  std::vector<std::unique_ptr<FakeGuest>> g;
  for (int i = 0; i < 3; ++i) {
    g.push_back(std::make_unique<FakeGuest>(macs[i], 0x10000000ull * (i + 1)));
    sw.AddDevice(g[i]->Config(uint16_t(i + 1), 0));
  }
  uint32_t rng = 12345;
  auto next = [&rng](uint32_t n) {
    rng = rng * 1103515245u + 12345u;
    return (rng >> 8) % n;
  };
  std::deque<std::vector<uint8_t>> expected[3][3];  // [src][dst]
  uint32_t posted[3] = {0, 0, 0};  // RX chains posted and not yet used
  uint64_t sent = 0;
  for (int round = 0; round < 40; ++round) {
    for (int i = 0; i < 3; ++i) {
      g[i]->PostRx(8 - posted[i], 5);  // chains of 5 x 2 KiB fit any frame
      posted[i] = 8;
    }
    for (int k = 0; k < 8; ++k) {
      int src = int(next(3));
      int dst = (src + 1 + int(next(2))) % 3;
      uint32_t len = 14 + next(9001);
      uint32_t seg = 64 + next(2048 - 64);
      auto f = MakeFrame(macs[dst], macs[src], len, uint8_t(next(256)));
      if (uint32_t((len + kVirtioNetHdrLen + seg - 1) / seg) > kMaxChainSegs) seg = kBufSize;
      if (!g[src]->Send(f, seg)) continue;
      expected[src][dst].push_back(f);
      ++sent;
    }
    PollN(sw, 2);
    for (int i = 0; i < 3; ++i) {
      auto got = g[i]->Harvest();
      posted[i] -= uint32_t(got.size());
      for (auto& r : got) {
        CHECK(r.bytes.size() >= kVirtioNetHdrLen + kEthHdrLen);
        if (r.bytes.size() < kVirtioNetHdrLen + kEthHdrLen) continue;
        uint64_t from = MacAt(r.bytes.data() + kVirtioNetHdrLen + 6);
        int src = from == kMacA ? 0 : from == kMacB ? 1 : from == kMacC ? 2 : -1;
        CHECK(src >= 0 && !expected[src][i].empty());
        if (src < 0 || expected[src][i].empty()) continue;
        CHECK(IsDelivery(r, expected[src][i].front()));
        expected[src][i].pop_front();
      }
    }
  }
  uint64_t tx = 0, rx = 0, dropped = 0;
  for (const auto& st : sw.Stats()) {
    tx += st.tx_total;
    rx += st.rx_total - st.rx_dropped;
    dropped += st.tx_dropped;
    CHECK(st.state == DeviceState::kActive);
  }
  CHECK(sent > 250);  // the ring had room for (nearly) every attempt
  CHECK_EQ(tx, sent);
  CHECK_EQ(rx + dropped, sent);
  CHECK_EQ(dropped, 0u);
  for (auto& row : expected)
    for (auto& q : row) CHECK(q.empty());
}

}  // namespace

// A burst first prefetches the RX ring of the receiver of the sender's last
// burst (datapath.cc, stage 0). That hint never outlives the receiver: once
// it is removed and its memory unmapped (any read of its ring would fault),
// and once another device holds its slot, the sender's bursts go on.
void TestRxHintNeverOutlivesTheReceiver() {
  Switch sw({}, nullptr);
  FakeGuest a(kMacA, 0x10000000);
  auto b = std::make_unique<FakeGuest>(kMacB, 0x20000000);
  uint32_t sa = sw.AddDevice(a.Config(1, 0));
  uint32_t sb = sw.AddDevice(b->Config(2, 0));
  b->PostRx(8);
  CHECK(a.Send(MakeFrame(kMacB, kMacA, 64, 1)));
  PollN(sw);
  CHECK_EQ(b->Harvest().size(), 1u);  // A's next burst would prefetch B's RX ring
  sw.RemoveDevice(sb);
  b.reset();
  CHECK(a.Send(MakeFrame(kMacB, kMacA, 64, 2)));
  PollN(sw);
  CHECK_EQ(Drops(sw, sa, "no_nic"), 1u);
  FakeGuest c(kMacC, 0x30000000);
  uint32_t sc = sw.AddDevice(c.Config(3, 0));
  CHECK_EQ(sc, sb);  // the slot is reused: a new generation there
  c.PostRx(8);
  auto f = MakeFrame(kMacC, kMacA, 64, 3);
  CHECK(a.Send(f));
  PollN(sw);
  auto got = c.Harvest();
  CHECK(got.size() == 1 && IsDelivery(got[0], f));
  CHECK_EQ(FakeGuest::LoadIdx(&a.Tx().used->idx), uint16_t(3));
}

// The hinted receiver's RX avail index is read ahead of the burst's frames;
// a jump found there is still the receiver's fault, named once, and the
// sender's frames are dropped and given back, never written anywhere.
void TestRxHintedReceiverGoingBadIsQuarantined() {
  Switch sw({}, nullptr);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000), c(kMacC, 0x30000000);
  uint32_t sa = sw.AddDevice(a.Config(1, 0));
  uint32_t sb = sw.AddDevice(b.Config(2, 0));
  sw.AddDevice(c.Config(3, 0));
  b.PostRx(2);
  c.PostRx(4);
  for (uint8_t i = 0; i < 2; ++i) CHECK(a.Send(MakeFrame(kMacB, kMacA, 64, i)));
  PollN(sw);
  CHECK_EQ(b.Harvest().size(), 2u);
  FakeGuest::StoreIdx(&b.Rx().avail->idx, uint16_t(2 + 300));  // more than the ring holds
  for (uint8_t i = 0; i < 3; ++i) CHECK(a.Send(MakeFrame(kMacB, kMacA, 64, i)));
  PollN(sw);
  CHECK(StatsOf(sw, sb).state == DeviceState::kQuarantined);
  CHECK_EQ(Drops(sw, sb, "avail_idx_jump"), 1u);
  CHECK_EQ(FakeGuest::LoadIdx(&b.Rx().used->idx), uint16_t(2));
  CHECK_EQ(StatsOf(sw, sa).tx_dropped, 3u);
  CHECK_EQ(FakeGuest::LoadIdx(&a.Tx().used->idx), uint16_t(5));
  auto f = MakeFrame(kMacC, kMacA, 64, 9);
  CHECK(a.Send(f));
  PollN(sw);
  auto got = c.Harvest();
  CHECK(got.size() == 1 && IsDelivery(got[0], f));
  CHECK(StatsOf(sw, sa).state == DeviceState::kActive);
}

// Bursts after the first pop the hinted receiver's RX chains before the
// frames are classified, keep those the leading frames to it use and give
// the others back to the ring. Whatever the mix (all to the hinted
// receiver, a broadcast or another receiver in between, the first frame
// elsewhere), every receiver uses its chains in the order it posted them,
// gets its frames in the order sent and counts each once.
void TestRxHintKeepsEveryReceiversOrder() {
  Switch sw({}, nullptr);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000), c(kMacC, 0x30000000);
  uint32_t sa = sw.AddDevice(a.Config(1, 0));
  uint32_t sb = sw.AddDevice(b.Config(2, 0));
  uint32_t sc = sw.AddDevice(c.Config(3, 0));
  b.PostRx(64);
  c.PostRx(64);
  const std::vector<std::vector<uint64_t>> bursts = {
      {kMacB, kMacB},
      {kMacB, kMacB, kBroadcast, kMacB, kMacC, kMacB},
      {kMacC, kMacB, kMacB},
      {kMacC, kMacC},
      {kMacB, kMacC, kMacB},
      {kMacB, kMacB, kMacB, kMacB},
  };
  std::vector<std::vector<uint8_t>> to_b, to_c;
  uint8_t seed = 1;
  uint16_t sent = 0;
  for (const auto& burst : bursts) {
    for (uint64_t d : burst) {
      auto f = MakeFrame(d, kMacA, 60 + seed, seed);
      ++seed;
      CHECK(a.Send(f));
      ++sent;
      if (d != kMacC) to_b.push_back(f);
      if (d != kMacB) to_c.push_back(f);
    }
    sw.PollOnce();  // one burst per loop
    CHECK_EQ(FakeGuest::LoadIdx(&a.Tx().used->idx), sent);
  }
  auto gb = b.Harvest(), gc = c.Harvest();
  CHECK_EQ(gb.size(), to_b.size());
  CHECK_EQ(gc.size(), to_c.size());
  for (size_t i = 0; i < gb.size() && i < to_b.size(); ++i) CHECK(IsDelivery(gb[i], to_b[i]));
  for (size_t i = 0; i < gc.size() && i < to_c.size(); ++i) CHECK(IsDelivery(gc[i], to_c[i]));
  for (FakeGuest* g : {&b, &c}) {
    VringView v = g->Rx();
    const uint16_t used = FakeGuest::LoadIdx(&v.used->idx);
    for (uint16_t k = 0; k < used; ++k) CHECK_EQ(v.used->ring[k].id, uint32_t(v.avail->ring[k]));
  }
  CHECK_EQ(StatsOf(sw, sb).rx_total, uint64_t(to_b.size()));
  CHECK_EQ(StatsOf(sw, sc).rx_total, uint64_t(to_c.size()));
  CHECK_EQ(StatsOf(sw, sa).tx_dropped, 0u);
}

uint64_t ReadCalls(int fd) {
  uint64_t n = 0;
  return read(fd, &n, sizeof n) == ssize_t(sizeof n) ? n : 0;
}

// A peer with call eventfds (vhost-user) gets one call per burst on each
// ring whose used entries were published, unless it set
// VRING_AVAIL_F_NO_INTERRUPT; the TX and RX rings' flags are read after one
// fence for both (datapath.cc's FlushTouched).
void TestCallsFollowEachPublishedBurst() {
  Switch sw({}, nullptr);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000);
  int fd[4];
  for (int& x : fd) {
    x = eventfd(0, EFD_NONBLOCK);
    CHECK(x >= 0);
  }
  DeviceConfig ca = a.Config(1, 0), cb = b.Config(2, 0);
  ca.tx_call_fd = fd[0];
  ca.rx_call_fd = fd[1];
  cb.tx_call_fd = fd[2];
  cb.rx_call_fd = fd[3];
  sw.AddDevice(ca);
  sw.AddDevice(cb);
  b.PostRx(16);
  for (uint8_t i = 0; i < 3; ++i) CHECK(a.Send(MakeFrame(kMacB, kMacA, 64, i)));
  sw.PollOnce();
  CHECK_EQ(ReadCalls(fd[0]), 1u);  // A's TX chains came back
  CHECK_EQ(ReadCalls(fd[3]), 1u);  // B received
  CHECK_EQ(ReadCalls(fd[1]), 0u);
  CHECK_EQ(ReadCalls(fd[2]), 0u);
  __atomic_store_n(&a.Tx().avail->flags, uint16_t(VRING_AVAIL_F_NO_INTERRUPT), __ATOMIC_RELAXED);
  __atomic_store_n(&b.Rx().avail->flags, uint16_t(VRING_AVAIL_F_NO_INTERRUPT), __ATOMIC_RELAXED);
  for (uint8_t i = 0; i < 2; ++i) CHECK(a.Send(MakeFrame(kMacB, kMacA, 64, i)));
  sw.PollOnce();
  CHECK_EQ(b.Harvest().size(), 5u);
  for (int x : fd) CHECK_EQ(ReadCalls(x), 0u);
  __atomic_store_n(&b.Rx().avail->flags, uint16_t(0), __ATOMIC_RELAXED);  // only B's RX wants calls again
  CHECK(a.Send(MakeFrame(kMacB, kMacA, 64, 7)));
  sw.PollOnce();
  CHECK_EQ(ReadCalls(fd[0]), 0u);
  CHECK_EQ(ReadCalls(fd[3]), 1u);
  for (int x : fd) close(x);
}

// The data thread's time split (ThreadStatsSnapshot): an idle switch books
// its whole time, sleeps included, as idle and none as processing; frames
// move time to processing. Both poll modes that run a thread.
void TestBusyCyclesSplitIdleAndProcessing() {
  for (bool busy : {true, false}) {
    SwitchConfig cfg;
    cfg.busy_poll = busy;
    Switch sw(cfg, nullptr);
    FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000);
    sw.AddDevice(a.Config(1, 0));
    sw.AddDevice(b.Config(2, 0));
    b.PostRx(256);
    const uint64_t t0 = CycleCount();
    sw.Start();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto th = sw.ThreadStats();
    const uint64_t elapsed = CycleCount() - t0;
    CHECK_EQ(th[0].processing_cycles, 0u);
    CHECK(th[0].idle_cycles > elapsed / 2);  // adaptive: mostly asleep, and that is booked
    CHECK(th[0].idle_cycles <= elapsed);
    const auto f = MakeFrame(kMacB, kMacA, 200, 1);
    for (int i = 0; i < 100; ++i) CHECK(a.Send(f));
    size_t got = 0;
    for (int i = 0; i < 2000 && got < 100; ++i) {
      got += b.Harvest().size();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    sw.Stop();
    CHECK_EQ(got, 100u);
    th = sw.ThreadStats();
    CHECK(th[0].processing_cycles > 0);
    CHECK(th[0].processing_cycles + th[0].idle_cycles <= CycleCount() - t0);
  }
}

int main() {
  TestVm2vmUnicast();
  TestBroadcastReachesNicAndEveryOtherDevice();
  TestMixedBurstKeepsOrderPerReceiver();
  TestUnknownUnicastGoesToNicTagged();
  TestNicToGuestClassifiesByMacAndVlanAndStripsTheTag();
  TestJumboFrameCrossesVm2vmThroughChains();
  TestHostileMatrix();
  TestHostileRxRings();
  TestRxChainTooSmallIsReturnedEmpty();
  TestNicTxFullIsCounted();
  TestNoNicDropsExternalFrames();
  TestFlagClearedMarksDeadOnce();
  TestRestartResumesFromTheRingIndexes();
  TestRegistrationErrors();
  TestRemoveWhileTrafficFlows();
  TestRandomizedTrafficArrivesIntact();
  TestRxHintNeverOutlivesTheReceiver();
  TestRxHintedReceiverGoingBadIsQuarantined();
  TestRxHintKeepsEveryReceiversOrder();
  TestCallsFollowEachPublishedBurst();
  TestBusyCyclesSplitIdleAndProcessing();
  return xsw::test::Finish("switch_test");
}
