// Networks (issue 16): devices dom0 put in networks 10 and 20 switch unicast,
// broadcast and multicast only within their network; the NIC sees each
// network's tag (or none for the uplink's native VLAN); a frame from the NIC
// reaches only devices of the VLAN it arrived on; devices without a network
// keep the guide's one switching domain. Runs under ASan and UBSan.
#include <memory>

#include "common/errors.h"
#include "switch/switch.h"
#include "switch_test_util.h"

using namespace xsw;
using namespace xsw::test;

namespace {

constexpr uint64_t kA1 = 0x020000000a01ull, kA2 = 0x020000000a02ull;  // network 10
constexpr uint64_t kB1 = 0x020000000b01ull, kB2 = 0x020000000b02ull;  // network 20
constexpr uint64_t kU1 = 0x020000000c01ull, kU2 = 0x020000000c02ull;  // no network (the guide's model)
constexpr uint64_t kBroadcast = 0xFFFFFFFFFFFFull, kMulticast = 0x01005e000001ull, kHost = 0x02000000aaaaull;

void PollN(Switch& sw, int n = 3) {
  for (int i = 0; i < n; ++i) sw.PollOnce();
}

DeviceConfig InNetwork(FakeGuest& g, uint16_t domid, uint16_t network) {
  DeviceConfig c = g.Config(domid, 0);
  c.network = network;
  return c;
}

uint16_t TagOf(const std::vector<uint8_t>& f) { return Be16At(f.data() + 12) == 0x8100 ? Be16At(f.data() + 14) : 0; }

uint64_t NicVlan(const Switch& sw, uint16_t vlan, bool rx) {
  for (const auto& v : sw.NicVlanStats())
    if (v.vlan == vlan) return rx ? v.rx : v.tx;
  return 0;
}

struct World {
  FakeNic* nic;
  Switch sw;
  FakeGuest a1{kA1, 0x10000000, 256, 10}, a2{kA2, 0x20000000, 256, 10};
  FakeGuest b1{kB1, 0x30000000, 256, 20}, b2{kB2, 0x40000000, 256, 20};
  FakeGuest u1{kU1, 0x50000000, 256, 1004}, u2{kU2, 0x60000000, 256, 1005};
  explicit World(std::unique_ptr<FakeNic> n) : nic(n.get()), sw({}, std::move(n)) {
    sw.AddDevice(InNetwork(a1, 1, 10));
    sw.AddDevice(InNetwork(b1, 2, 20));
    sw.AddDevice(InNetwork(a2, 3, 10));
    sw.AddDevice(InNetwork(b2, 4, 20));
    sw.AddDevice(u1.Config(5, 0));
    sw.AddDevice(u2.Config(6, 0));
    for (FakeGuest* g : {&a1, &a2, &b1, &b2, &u1, &u2}) g->PostRx(32);
  }
  World() : World(std::make_unique<FakeNic>()) {}
};

void TestUnicastStaysInItsNetwork() {
  World w;
  auto to_a2 = MakeFrame(kA2, kA1, 200, 1);
  auto to_b1 = MakeFrame(kB1, kA1, 200, 2);  // a MAC of network 20, sent from network 10
  auto to_u1 = MakeFrame(kU1, kA1, 200, 3);  // a device without a network
  auto u_to_a1 = MakeFrame(kA1, kU2, 200, 4);
  CHECK(w.a1.Send(to_a2));
  CHECK(w.a1.Send(to_b1));
  CHECK(w.a1.Send(to_u1));
  CHECK(w.u2.Send(u_to_a1));
  PollN(w.sw);
  auto got = w.a2.Harvest();
  CHECK(got.size() == 1 && IsDelivery(got[0], to_a2));
  CHECK(w.b1.Harvest().empty());
  CHECK(w.u1.Harvest().empty());
  CHECK(w.a1.Harvest().empty());
  // Unknown in the sender's network, so they go to the uplink with its tag.
  CHECK_EQ(w.nic->tx->size(), 3u);
  if (w.nic->tx->size() == 3) {
    CHECK_EQ(TagOf((*w.nic->tx)[0]), 10);
    CHECK_EQ(TagOf((*w.nic->tx)[1]), 10);
    CHECK_EQ(TagOf((*w.nic->tx)[2]), 1005);
  }
  CHECK_EQ(NicVlan(w.sw, 10, false), 2u);
}

void TestBroadcastAndMulticastStayInTheirNetwork() {
  World w;
  auto bc10 = MakeFrame(kBroadcast, kA1, 100, 5, 0x0806);
  auto mc20 = MakeFrame(kMulticast, kB2, 100, 6);
  auto bcu = MakeFrame(kBroadcast, kU1, 100, 7, 0x0806);
  CHECK(w.a1.Send(bc10));
  CHECK(w.b2.Send(mc20));
  CHECK(w.u1.Send(bcu));
  PollN(w.sw);
  auto a2 = w.a2.Harvest(), b1 = w.b1.Harvest(), u2 = w.u2.Harvest();
  CHECK(a2.size() == 1 && IsDelivery(a2[0], bc10));
  CHECK(b1.size() == 1 && IsDelivery(b1[0], mc20));
  CHECK(u2.size() == 1 && IsDelivery(u2[0], bcu));  // the guide's model among devices without a network
  CHECK(w.a1.Harvest().empty());
  CHECK(w.b2.Harvest().empty());
  CHECK(w.u1.Harvest().empty());
  CHECK_EQ(w.nic->tx->size(), 3u);
  if (w.nic->tx->size() == 3) {
    CHECK_EQ(TagOf((*w.nic->tx)[0]), 10);
    CHECK_EQ(TagOf((*w.nic->tx)[1]), 20);
    CHECK_EQ(TagOf((*w.nic->tx)[2]), 1004);
  }
  CHECK_EQ(NicVlan(w.sw, 10, false), 1u);
  CHECK_EQ(NicVlan(w.sw, 20, false), 1u);
}

void TestNicFramesReachOnlyTheirVlan() {
  World w;
  auto bc = MakeFrame(kBroadcast, kHost, 100, 8, 0x0806);
  auto to_a1 = MakeFrame(kA1, kHost, 100, 9);
  w.nic->rx->push_back({bc, true, 20});      // broadcast on VID 20: network 20 only
  w.nic->rx->push_back({to_a1, true, 20});   // network 10's MAC arriving on VID 20: nobody
  w.nic->rx->push_back({to_a1, true, 10});   // ... and on VID 10: a1
  w.nic->rx->push_back({bc, false, 0});      // untagged: no device here is untagged
  PollN(w.sw);
  auto b1 = w.b1.Harvest(), b2 = w.b2.Harvest(), a1 = w.a1.Harvest();
  CHECK(b1.size() == 1 && IsDelivery(b1[0], bc));
  CHECK(b2.size() == 1 && IsDelivery(b2[0], bc));
  CHECK(a1.size() == 1 && IsDelivery(a1[0], to_a1));
  CHECK(w.a2.Harvest().empty());
  CHECK(w.u1.Harvest().empty());
  CHECK(w.u2.Harvest().empty());
  CHECK_EQ(NicVlan(w.sw, 20, true), 2u);
  CHECK_EQ(NicVlan(w.sw, 10, true), 1u);
  CHECK_EQ(NicVlan(w.sw, 0, true), 1u);
  CHECK_EQ(w.sw.NicStats().drops[DropIndex(Drop::kUnknownDst)], 2u);
}

// The uplink's native VLAN: network 10 leaves untagged (its devices' NIC
// tag is 0) and untagged frames from the NIC belong to it.
void TestNativeVlanIsUntaggedOnTheNic() {
  auto n = std::make_unique<FakeNic>();
  FakeNic* nic = n.get();
  Switch sw({}, std::move(n));
  FakeGuest a1(kA1, 0x10000000, 256, 0), b1(kB1, 0x30000000, 256, 20);
  sw.AddDevice(InNetwork(a1, 1, 10));
  sw.AddDevice(InNetwork(b1, 2, 20));
  a1.PostRx(4);
  b1.PostRx(4);
  auto bc = MakeFrame(kBroadcast, kA1, 80, 1, 0x0806);
  CHECK(a1.Send(bc));
  auto in = MakeFrame(kBroadcast, kHost, 80, 2, 0x0806);
  nic->rx->push_back({in, false, 0});
  PollN(sw);
  CHECK(nic->tx->size() == 1 && (*nic->tx)[0] == bc);  // untagged, unchanged
  auto got = a1.Harvest();
  CHECK(got.size() == 1 && IsDelivery(got[0], in));
  CHECK(b1.Harvest().empty());
}

void TestNetworkOutOfRangeIsRefused() {
  Switch sw({}, nullptr);
  FakeGuest a(kA1, 0x10000000);
  for (uint16_t bad : {uint16_t(0), uint16_t(4095)}) {
    bool threw = false;
    try {
      sw.AddDevice(InNetwork(a, 1, bad));
    } catch (const SysError& e) {
      threw = e.err() == EINVAL && std::string(e.what()).find("network") != std::string::npos;
    }
    CHECK(threw);
  }
  uint32_t slot = sw.AddDevice(InNetwork(a, 1, 4094));
  CHECK_EQ(sw.Stats()[slot].network, 4094);
}

}  // namespace

int main() {
  TestUnicastStaysInItsNetwork();
  TestBroadcastAndMulticastStayInTheirNetwork();
  TestNicFramesReachOnlyTheirVlan();
  TestNativeVlanIsUntaggedOnTheNic();
  TestNetworkOutOfRangeIsRefused();
  return xsw::test::Finish("switch_networks_test");
}
