// The table of source MACs seen from the NIC (core/nic_macs.h), alone and in
// the switch: frames from the NIC teach it, guests' frames never do.
#include <memory>

#include "check.h"
#include "switch/nic_macs.h"
#include "switch/switch.h"
#include "switch_test_util.h"

using namespace xsw;
using namespace xsw::test;

namespace {

constexpr uint64_t kBroadcast = 0xFFFFFFFFFFFFull;

void TestLearnAndAge() {
  auto t = std::make_unique<NicMacTable>();
  CHECK(!t->Seen(0x0200000000feull, 100, 300));
  t->Learn(0x0200000000feull, 100);
  CHECK(t->Seen(0x0200000000feull, 100, 300));
  CHECK(t->Seen(0x0200000000feull, 400, 300));
  CHECK(!t->Seen(0x0200000000feull, 401, 300));  // aged out
  t->Learn(0x0200000000feull, 401);               // seen again: fresh
  CHECK(t->Seen(0x0200000000feull, 401, 300));
  CHECK(!t->Seen(0x0200000000fdull, 401, 300));
  t->Learn(0, 401);  // ignored
  CHECK(!t->Seen(0, 401, 300));
}

void TestFullTableReplacesTheStalest() {
  auto t = std::make_unique<NicMacTable>();
  // Many more MACs than slots: the table stays bounded and the newest are found.
  const uint32_t n = NicMacTable::kSize * 4;
  for (uint32_t i = 0; i < n; ++i) t->Learn(0x020000000000ull + i + 1, 10 + i / 64);
  uint32_t recent = 0;
  for (uint32_t i = n - 64; i < n; ++i) recent += t->Seen(0x020000000000ull + i + 1, 10 + n / 64, 1000000);
  CHECK(recent >= 60);  // a probe window can fill with equally fresh entries, rarely
  // A MAC refreshed all along survives a flood of others.
  auto u = std::make_unique<NicMacTable>();
  const uint64_t gateway = 0x0200000000feull;
  for (uint32_t i = 0; i < n; ++i) {
    u->Learn(0x040000000000ull + i, 100 + i);
    if (i % 4 == 0) u->Learn(gateway, 100 + i);
  }
  CHECK(u->Seen(gateway, 100 + n, 300));
}

void TestSwitchLearnsFromTheNicOnly() {
  auto nic_owned = std::make_unique<FakeNic>();
  FakeNic* nic = nic_owned.get();
  Switch sw({}, std::move(nic_owned));
  FakeGuest a(0x020000000011ull, 0x10000000, 256, 1000);
  sw.AddDevice(a.Config(1, 0));
  a.PostRx(8);
  const uint64_t gateway = 0x0200000000feull;
  nic->rx->push_back({MakeFrame(0x020000000011ull, gateway, 64, 1), true, 1000});
  nic->rx->push_back({MakeFrame(kBroadcast, 0x0200000000fcull, 64, 2), true, 7});  // unknown VLAN: still learned
  nic->rx->push_back({MakeFrame(0x020000000011ull, kBroadcast, 64, 3), true, 1000});  // a group source: not learned
  a.Send(MakeFrame(kBroadcast, 0x020000000011ull, 64, 4));
  for (int i = 0; i < 3; ++i) sw.PollOnce();
  CHECK(sw.NicMacSeen(gateway, 300));
  CHECK(sw.NicMacSeen(0x0200000000fcull, 300));
  CHECK(!sw.NicMacSeen(kBroadcast, 300));
  CHECK(!sw.NicMacSeen(0x020000000011ull, 300));  // the guest's own frames went out, never in
  CHECK_EQ(nic->tx->size(), 1u);
}

}  // namespace

int main() {
  TestLearnAndAge();
  TestFullTableReplacesTheStalest();
  TestSwitchLearnsFromTheNicOnly();
  return Finish("nic_macs_test");
}
