// Attacks by a guest on the switch that are not ring faults, each as the
// attacker would mount it, and what the switch must do instead (ASan/UBSan):
//   - VLAN hop: a guest sends a frame that already carries an 802.1Q (or
//     802.1ad, or 0x9100) tag, hoping to leave the NIC double-tagged;
//   - unfair share: a guest with 9 devices in the low slots floods, hoping
//     to take the poll loop and the NIC's transmit ring from a victim guest;
//   - overlapping copy: two devices of one guest share one mempool mapping,
//     and device 0 sends to device 1 with its RX buffer overlapping the TX
//     buffer the frame is read from;
//   - short mappings: a ring or region handed to the switch whose mapping
//     does not cover its layout (a guest listing fewer ring pages than its
//     ring needs, or a control-plane slip) must be refused at AddDevice, not
//     read past later.
#include <sys/mman.h>

#include <memory>
#include <string>

#include "common/errors.h"
#include "switch/switch.h"
#include "switch_test_util.h"

using namespace xsw;
using namespace xsw::test;

namespace {

constexpr uint64_t kMacA = 0x020000000011ull, kMacB = 0x020000000022ull, kMacC = 0x020000000033ull;
constexpr uint64_t kBroadcast = 0xFFFFFFFFFFFFull;
constexpr uint64_t kOutside = 0x020000000099ull;  // a host behind the NIC

// The named counter of a slot; a name the switch does not have fails the test.
uint64_t Drops(const Switch& sw, uint32_t slot, const char* name) {
  for (const auto& s : sw.Stats()) {
    if (s.slot != slot) continue;
    for (uint32_t r = 0; r < kDropCount; ++r)
      if (std::strcmp(DropName(r), name) == 0) return s.drops[r];
  }
  std::fprintf(stderr, "no counter %s on slot %u\n", name, slot);
  CHECK(false);
  return 0;
}

DeviceStatsSnapshot StatsOf(const Switch& sw, uint32_t slot) {
  for (const auto& s : sw.Stats())
    if (s.slot == slot) return s;
  return {};
}

void PollN(Switch& sw, int n = 3) {
  for (int i = 0; i < n; ++i) sw.PollOnce();
}

// A frame whose ethertype is a tag protocol ID, VID 5 inside.
std::vector<uint8_t> TaggedFrame(uint64_t dst, uint64_t src, uint16_t tpid, uint16_t vid = 5) {
  auto f = MakeFrame(dst, src, 100, 1, tpid);
  PutBe16(f.data() + 14, vid);
  PutBe16(f.data() + 16, 0x0800);
  return f;
}

// Guest A (VLAN 1000 on the NIC) sends frames carrying their own tag - to a
// host behind the NIC, to guest B, and broadcast - for each tag protocol ID a
// switch or NIC may honour. Not one of them may reach the NIC (where it would
// leave double-tagged [1000][5]: a VLAN hop if the uplink strips the outer
// tag) or another guest: each is dropped and counted once as guest_vlan_tag.
// An untagged frame still goes out with A's tag.
void TestGuestTaggedFramesAreDropped() {
  auto nic_owned = std::make_unique<FakeNic>();
  FakeNic* nic = nic_owned.get();
  Switch sw({}, std::move(nic_owned));
  FakeGuest a(kMacA, 0x10000000, 256, 1000), b(kMacB, 0x20000000, 256, 1001);
  uint32_t sa = sw.AddDevice(a.Config(1, 0));
  uint32_t sb = sw.AddDevice(b.Config(2, 0));
  b.PostRx(16);
  const uint16_t tpids[] = {0x8100, 0x88A8, 0x9100};
  uint32_t sent = 0;
  for (uint16_t tpid : tpids) {
    for (uint64_t dst : {kOutside, kMacB, kBroadcast}) {
      CHECK(a.Send(TaggedFrame(dst, kMacA, tpid)));
      ++sent;
    }
  }
  auto plain = MakeFrame(kOutside, kMacA, 100, 2);
  CHECK(a.Send(plain));
  PollN(sw);

  CHECK_EQ(nic->tx->size(), 1u);  // only the untagged frame, tagged [1000] by the switch
  if (nic->tx->size() == 1) {
    const auto& out = (*nic->tx)[0];
    CHECK_EQ(Be16At(out.data() + 12), 0x8100);
    CHECK_EQ(Be16At(out.data() + 14), 1000);
    CHECK_EQ(Be16At(out.data() + 16), 0x0800);
  }
  CHECK(b.Harvest().empty());
  CHECK_EQ(Drops(sw, sa, "guest_vlan_tag"), sent);
  auto st = StatsOf(sw, sa);
  CHECK_EQ(st.tx_total, sent + 1);
  CHECK_EQ(st.tx_dropped, sent);
  CHECK(st.state == DeviceState::kActive);  // a dropped frame, not a ring fault
  CHECK_EQ(StatsOf(sw, sb).rx_total, 0u);
  CHECK_EQ(sw.NicStats().tx, 1u);
}

// ---------------------------------------------------------------------------
// Fairness. Domain 1 has 9 devices in slots 0..8, each with more than a burst
// queued; domain 2, the victim, has one device in slot 9 with 20 frames.

struct Flood {
  std::vector<std::unique_ptr<FakeGuest>> attacker;
  std::unique_ptr<FakeGuest> victim;
  std::vector<uint32_t> attacker_slots;
  uint32_t victim_slot = 0;

  Flood(Switch& sw, uint16_t vlan_base = 0) {
    for (uint32_t i = 0; i < 9; ++i) {
      attacker.push_back(std::make_unique<FakeGuest>(0x020000000100ull + i, 0x10000000ull * (i + 1), 256,
                                                     uint16_t(vlan_base ? vlan_base + i : 0)));
      attacker_slots.push_back(sw.AddDevice(attacker.back()->Config(1, i)));
    }
    victim = std::make_unique<FakeGuest>(kMacB, 0x20000000000ull, 256, uint16_t(vlan_base ? vlan_base + 9 : 0));
    victim_slot = sw.AddDevice(victim->Config(2, 0));
  }
  // Each attacker device queues `n` frames to dst.
  void Attack(uint64_t dst, uint32_t n) {
    for (auto& g : attacker)
      for (uint32_t k = 0; k < n; ++k) CHECK(g->Send(MakeFrame(dst, g->mac, 64, uint8_t(k))));
  }
  void Victim(uint64_t dst, uint32_t n) {
    for (uint32_t k = 0; k < n; ++k) CHECK(victim->Send(MakeFrame(dst, kMacB, 64, uint8_t(k))));
  }
  uint64_t AttackerTx(const Switch& sw) const {
    uint64_t n = 0;
    for (uint32_t s : attacker_slots) n += StatsOf(sw, s).tx_total;
    return n;
  }
};

uint32_t NicFramesFrom(const FakeNic& nic, uint64_t src) {
  uint32_t n = 0;
  for (const auto& f : *nic.tx) n += MacAt(f.data() + 6) == src ? 1 : 0;
  return n;
}

// The reproduction: the NIC's ring has 256 slots and the wire drains
// it at every flush. Serviced in slot order, 32 frames per device, the
// attacker's 9 x 32 = 288 frames filled the ring before the victim's turn
// and the victim's 20 frames all dropped as nic_tx_full. Shared per guest,
// the attacker gets one burst per poll and the victim loses nothing.
void TestManyDevicesCannotFillTheNicRingBeforeAnotherGuest() {
  auto nic_owned = std::make_unique<FakeNic>();
  FakeNic* nic = nic_owned.get();
  nic->tx_ring = 256;
  Switch sw({}, std::move(nic_owned));
  Flood f(sw, 1000);
  f.Attack(kOutside, 40);
  f.Victim(kOutside, 20);
  sw.PollOnce();
  auto v = StatsOf(sw, f.victim_slot);
  CHECK_EQ(v.tx_total, 20u);
  CHECK_EQ(v.tx_dropped, 0u);
  CHECK_EQ(Drops(sw, f.victim_slot, "nic_tx_full"), 0u);
  CHECK_EQ(NicFramesFrom(*nic, kMacB), 20u);
  CHECK_EQ(f.AttackerTx(sw), uint64_t(kBurst));  // one burst's worth for all 9 devices together
  CHECK_EQ(sw.NicStats().drops[DropIndex(Drop::kNicTxFull)], 0u);
  // The attacker's frames are not lost either: they wait in its rings.
  for (int i = 0; i < 20; ++i) sw.PollOnce();
  CHECK_EQ(f.AttackerTx(sw), 9u * 40);
  CHECK_EQ(nic->tx->size(), 9u * 40 + 20);
}

// The poll loop: the attacker's 9 devices send to guest C, which has 52 RX
// buffers - room for one burst of the attacker's and the victim's 20, not
// for 9 bursts. In slot order the attacker used all 52 and the victim's
// frames dropped as rx_no_buffer at C; with a per-guest budget and a
// rotating start, each poll moves at most 32 of the attacker's frames and
// all of the victim's. A guest alone still gets a full burst per poll.
void TestManyDevicesGetOneBurstPerPollTogether() {
  Switch sw({}, nullptr);
  Flood f(sw);
  FakeGuest c(kMacC, 0x30000000000ull);
  uint32_t sc = sw.AddDevice(c.Config(3, 0));
  c.PostRx(52);
  f.Attack(kMacC, 40);
  f.Victim(kMacC, 20);
  sw.PollOnce();
  CHECK_EQ(StatsOf(sw, f.victim_slot).tx_dropped, 0u);
  CHECK_EQ(f.AttackerTx(sw), uint64_t(kBurst));
  CHECK_EQ(Drops(sw, sc, "rx_no_buffer"), 0u);
  uint32_t from_victim = 0;
  for (const auto& r : c.Harvest()) from_victim += MacAt(r.bytes.data() + kVirtioNetHdrLen + 6) == kMacB ? 1 : 0;
  CHECK_EQ(from_victim, 20u);

  // Alone, a guest with one device moves a full burst per poll, as before.
  Switch solo({}, nullptr);
  FakeGuest a(kMacA, 0x10000000), b(kMacB, 0x20000000);
  uint32_t sa = solo.AddDevice(a.Config(1, 0));
  solo.AddDevice(b.Config(2, 0));
  b.PostRx(64);
  for (uint32_t k = 0; k < 64; ++k) CHECK(a.Send(MakeFrame(kMacB, kMacA, 64, uint8_t(k))));
  solo.PollOnce();
  CHECK_EQ(StatsOf(solo, sa).tx_total, uint64_t(kBurst));
  solo.PollOnce();
  CHECK_EQ(StatsOf(solo, sa).tx_total, 64u);
  CHECK_EQ(b.Harvest().size(), 64u);
}

// The NIC's ring has room for 40 frames per flush, fewer than the attacker's
// burst and the victim's 20 together. Each guest with frames to send gets
// its share of what is free (the rest of it passes on to the guests after it
// in this poll's order): whichever goes first, the victim's 20 fit, and the
// attacker's frames beyond its share are dropped as nic_tx_share on its own
// devices, never as nic_tx_full on the victim's.
void TestEachGuestGetsItsShareOfTheNicRing() {
  auto nic_owned = std::make_unique<FakeNic>();
  FakeNic* nic = nic_owned.get();
  nic->tx_ring = 40;
  Switch sw({}, std::move(nic_owned));
  Flood f(sw, 1000);
  for (int round = 0; round < 4; ++round) {  // the start rotates: the victim goes first, then second
    f.Attack(kOutside, 4);
    f.Victim(kOutside, 20);
    sw.PollOnce();
  }
  CHECK_EQ(StatsOf(sw, f.victim_slot).tx_total, 80u);
  CHECK_EQ(StatsOf(sw, f.victim_slot).tx_dropped, 0u);
  CHECK_EQ(NicFramesFrom(*nic, kMacB), 80u);
  uint64_t share_drops = 0;
  for (uint32_t s : f.attacker_slots) share_drops += Drops(sw, s, "nic_tx_share");
  CHECK(share_drops > 0);
  CHECK_EQ(sw.NicStats().drops[DropIndex(Drop::kNicTxFull)], 0u);
}

// Device 1 of domain 1 uses device 0's pool (one mapping, as the back end
// maps a guest's pools once for all its devices). Its RX buffer starts 8
// bytes into the TX buffer device 0 sends from, so the body copy's source
// and destination overlap. The copy must be one whose result is defined
// (memmove): memcpy on overlapping ranges is undefined behaviour, and the
// ASan build aborts on it.
void TestOverlappingBuffersOfOneGuest() {
  Switch sw({}, nullptr);
  FakeGuest dev0(kMacA, 0x10000000), dev1(kMacB, 0x20000000);
  DeviceConfig c1 = dev1.Config(1, 1);
  c1.regions = dev0.Config(1, 0).regions;  // one pool, shared
  sw.AddDevice(dev0.Config(1, 0));
  uint32_t s1 = sw.AddDevice(c1);

  auto f = MakeFrame(kMacB, kMacA, 1000, 3);
  CHECK(dev0.Send(f));  // header + frame in dev0's TX buffer 0
  constexpr uint32_t kShift = 8;
  VringView rx = dev1.Rx();
  rx.desc[0] = VringDesc{dev0.TxGva(0) + kShift, kBufSize, VRING_DESC_F_WRITE, 0};
  dev1.PostAvail(rx, 0);
  PollN(sw);

  auto st = StatsOf(sw, s1);
  CHECK_EQ(st.rx_total, 1u);
  CHECK_EQ(st.rx_dropped, 0u);
  CHECK_EQ(FakeGuest::LoadIdx(&rx.used->idx), 1);
  CHECK_EQ(rx.used->ring[0].len, kVirtioNetHdrLen + f.size());
  // What memmove leaves: the zero virtio header and the Ethernet header were
  // written first (over the source's bytes 18..31), then the body was moved
  // from source byte 24 on, so the body starts with Ethernet header bytes 6..13.
  std::vector<uint8_t> expect(f.begin(), f.begin() + kEthHdrLen);
  expect.insert(expect.end(), f.begin() + kEthHdrLen - kShift, f.begin() + kEthHdrLen);
  expect.insert(expect.end(), f.begin() + kEthHdrLen + kShift, f.end());
  const uint8_t* got = dev0.TxBuf(0) + kShift;
  for (uint32_t i = 0; i < kVirtioNetHdrLen; ++i) CHECK_EQ(got[i], 0);
  CHECK(std::memcmp(got + kVirtioNetHdrLen, expect.data(), expect.size()) == 0);
}

// Pages followed by an unmapped guard page: touching past them faults.
struct GuardedPages {
  explicit GuardedPages(uint32_t pages) : size(uint64_t(pages) * kPageSize) {
    void* m = mmap(nullptr, size + kPageSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) std::abort();
    p = static_cast<uint8_t*>(m);
    munmap(p + size, kPageSize);
  }
  ~GuardedPages() { munmap(p, size); }
  uint64_t size;
  uint8_t* p;
};

// Runs AddDevice and checks the EINVAL sentence it throws ("" expects the
// device to be accepted; it is then removed again).
void ExpectRefusal(Switch& sw, const DeviceConfig& c, const std::string& expect) {
  std::string got;
  try {
    sw.RemoveDevice(sw.AddDevice(c));
  } catch (const SysError& e) {
    got = e.err() == EINVAL ? e.what() : "errno " + std::to_string(e.err());
  }
  if (got != expect) std::fprintf(stderr, "AddDevice said \"%s\", expected \"%s\"\n", got.c_str(), expect.c_str());
  CHECK(got == expect);
}

// A 256-entry ring needs 3 pages (10246 bytes). Mapped with only 2, the used
// ring starts exactly at the guard page: before lengths were checked the
// switch faulted there on the first access. Each short mapping is refused
// with a sentence naming it; the full ones are accepted.
void TestMappingsShorterThanTheirLayoutAreRefused() {
  Switch sw({}, nullptr);
  FakeGuest g(kMacA, 0x10000000);
  GuardedPages two(2);
  CHECK(VringUsedOffset(256) == two.size);

  DeviceConfig tx = g.Config(1, 0);
  tx.tx_ring = two.p;
  tx.tx_ring_len = two.size;
  ExpectRefusal(sw, tx, "the TX ring of domain 1 device 0 (256 entries) needs 10246 bytes but "
                        "its mapping has 8192: map all 3 of its pages");
  DeviceConfig rx = g.Config(1, 0);
  rx.rx_ring = two.p;
  rx.rx_ring_len = two.size;
  ExpectRefusal(sw, rx, "the RX ring of domain 1 device 0 (256 entries) needs 10246 bytes but "
                        "its mapping has 8192: map all 3 of its pages");
  DeviceConfig flag = g.Config(1, 0);
  flag.flag_len = 0;
  ExpectRefusal(sw, flag, "the flag page of domain 1 device 0 has an empty mapping: map its page");
  // A region claiming 3 pages over a 2-page mapping: a descriptor in its
  // third page would have been translated to the guard page.
  DeviceConfig region = g.Config(1, 0);
  region.regions.push_back(Region{0x50000000, two.size + kPageSize, two.p, true, two.size});
  ExpectRefusal(sw, region, "region 1 of domain 1 device 0 (gva 0x50000000, 12288 bytes) runs "
                            "past its mapping of 8192 bytes: map the whole region");

  // Exactly the layout is enough; nothing was left registered by the refusals.
  DeviceConfig exact = g.Config(1, 0);
  exact.tx_ring_len = VringSize(256);
  exact.rx_ring_len = VringSize(256);
  exact.flag_len = 1;
  exact.regions.push_back(Region{0x50000000, two.size, two.p, true, two.size});
  ExpectRefusal(sw, exact, "");
  CHECK(sw.Stats().size() <= 1);
}

}  // namespace

int main() {
  TestManyDevicesCannotFillTheNicRingBeforeAnotherGuest();
  TestManyDevicesGetOneBurstPerPollTogether();
  TestEachGuestGetsItsShareOfTheNicRing();
  TestMappingsShorterThanTheirLayoutAreRefused();
  TestGuestTaggedFramesAreDropped();
  TestOverlappingBuffersOfOneGuest();
  return xsw::test::Finish("switch_attacks_test");
}
