// Attacks by a guest on the switch that are not ring faults, each as the
// attacker would mount it, and what the switch must do instead (ASan/UBSan):
//   - overlapping copy: two devices of one guest share one mempool mapping,
//     and device 0 sends to device 1 with its RX buffer overlapping the TX
//     buffer the frame is read from.
#include <memory>

#include "common/errors.h"
#include "switch/switch.h"
#include "switch_test_util.h"

using namespace xsw;
using namespace xsw::test;

namespace {

constexpr uint64_t kMacA = 0x020000000011ull, kMacB = 0x020000000022ull;

DeviceStatsSnapshot StatsOf(const Switch& sw, uint32_t slot) {
  for (const auto& s : sw.Stats())
    if (s.slot == slot) return s;
  return {};
}

void PollN(Switch& sw, int n = 3) {
  for (int i = 0; i < n; ++i) sw.PollOnce();
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

}  // namespace

int main() {
  TestOverlappingBuffersOfOneGuest();
  return xsw::test::Finish("switch_attacks_test");
}
