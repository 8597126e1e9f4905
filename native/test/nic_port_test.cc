// NIC ports against the real kernel, inside a private network namespace this
// test creates (needs root: CAP_SYS_ADMIN for unshare, CAP_NET_RAW/ADMIN for
// the ports; `ip` from iproute2). Covers: the one-sentence errors, AF_PACKET
// on a veth pair (VLAN tag stripped by the kernel into aux data on RX,
// written in-frame on TX), a TAP (tags in-frame both ways), and the switch
// between a guest and the outside world over veth with the data thread running.
#include <sched.h>

#include <chrono>
#include <thread>

#include "common/errors.h"
#include "switch/afpacket_port.h"
#include "switch/switch.h"
#include "switch/tap_port.h"
#include "switch_test_util.h"

using namespace xsw;
using namespace xsw::test;

namespace {

constexpr uint16_t kTestType = 0x88B5;  // IEEE local experimental: ignore the kernel's own chatter
constexpr uint64_t kMacA = 0x020000000011ull, kMacOut = 0x0200000000EEull;

struct Received {
  std::vector<uint8_t> bytes;  // with any aux tag put back in-frame, so both forms compare alike
  bool aux = false;
};

// Collects frames of kTestType (tagged or not) from port until `count`
// arrived or 2 s passed.
std::vector<Received> ReceiveTests(NicPort& port, size_t count) {
  std::vector<Received> out;
  NicRxFrame f[kBurst];
  for (int tries = 0; tries < 2000 && out.size() < count; ++tries) {
    uint32_t n = port.RxBurst(f, kBurst);
    for (uint32_t i = 0; i < n; ++i) {
      std::vector<uint8_t> b(f[i].data, f[i].data + f[i].len);
      if (f[i].vlan_valid && b.size() >= 12) {
        uint8_t tag[4] = {0x81, 0x00, uint8_t(f[i].vlan_tci >> 8), uint8_t(f[i].vlan_tci)};
        b.insert(b.begin() + 12, tag, tag + 4);
      }
      if (b.size() < 18) continue;
      uint16_t type = Be16At(b.data() + 12);
      if (type == kEthPVlan) type = Be16At(b.data() + 16);
      if (type == kTestType) out.push_back(Received{b, f[i].vlan_valid});
    }
    port.RxRelease();
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return out;
}

bool ReceiveTest(NicPort& port, Received* out) {
  auto got = ReceiveTests(port, 1);
  if (got.empty()) return false;
  *out = got[0];
  return true;
}

void Transmit(NicPort& port, const std::vector<uint8_t>& frame) {
  uint8_t* buf = port.TxReserve();
  CHECK(buf != nullptr);
  if (!buf) return;
  std::memcpy(buf, frame.data(), frame.size());
  CHECK(port.TxCommit(uint32_t(frame.size())));
  port.TxFlush();
}

std::vector<uint8_t> Tagged(const std::vector<uint8_t>& f, uint16_t vid) {
  std::vector<uint8_t> t(f.begin(), f.begin() + 12);
  t.insert(t.end(), {0x81, 0x00, uint8_t(vid >> 8), uint8_t(vid)});
  t.insert(t.end(), f.begin() + 12, f.end());
  return t;
}

void TestErrorsAreOneSentence() {
  try {
    OpenNicPort("xswnosuch9", 1518);
    CHECK(false);
  } catch (const SysError& e) {
    CHECK_EQ(e.err(), ENODEV);
    CHECK(std::string(e.what()) == "cannot open AF_PACKET socket on xswnosuch9: no such interface (check `ip link`)");
  }
  try {
    OpenNicPort("bad/name", 1518);
    CHECK(false);
  } catch (const SysError& e) {
    CHECK_EQ(e.err(), EINVAL);
  }
  try {
    OpenNicPort("tap:", 1518);
    CHECK(false);
  } catch (const SysError& e) {
    CHECK_EQ(e.err(), EINVAL);
  }
}

void TestAfPacketOverVeth() {
  AfPacketPort pa("xswva", Switch::MaxFrame(1500)), pb("xswvb", Switch::MaxFrame(1500));
  CHECK(pa.TxCapacity() >= Switch::MaxFrame(1500));
  auto f = MakeFrame(0x020000000001ull, 0x020000000002ull, 300, 4, kTestType);
  Transmit(pb, Tagged(f, 1001));
  Received r;
  CHECK(ReceiveTest(pa, &r));
  CHECK(r.bytes == Tagged(f, 1001));
  std::fprintf(stderr, "veth RX tag arrived %s\n", r.aux ? "in aux data" : "in-frame");
  Transmit(pa, f);
  CHECK(ReceiveTest(pb, &r));
  CHECK(r.bytes == f);
  // A burst larger than one RxBurst, all of it arriving in order. The free
  // transmit slots go down by one per frame committed and come back once the
  // kernel has sent them.
  const uint32_t free_before = pb.TxFree();
  CHECK_EQ(free_before, 256u);
  for (uint32_t i = 0; i < 100; ++i) {
    auto g = MakeFrame(0x020000000001ull, 0x020000000002ull, 64 + i, uint8_t(i), kTestType);
    uint8_t* buf = pb.TxReserve();
    CHECK(buf != nullptr);
    if (!buf) break;
    std::memcpy(buf, g.data(), g.size());
    CHECK(pb.TxCommit(uint32_t(g.size())));
  }
  CHECK_EQ(pb.TxFree(), free_before - 100);
  pb.TxFlush();
  auto burst = ReceiveTests(pa, 100);
  CHECK_EQ(burst.size(), 100u);
  CHECK_EQ(pb.TxFree(), free_before);
  for (uint32_t i = 0; i < burst.size(); ++i) {
    CHECK(burst[i].bytes == MakeFrame(0x020000000001ull, 0x020000000002ull, 64 + i, uint8_t(i), kTestType));
  }
}

void TestTap() {
  auto tap = OpenNicPort("tap:xswtap0", Switch::MaxFrame(1500));
  CHECK(std::string(tap->kind()) == "tap");
  AfPacketPort kernel_side("xswtap0", Switch::MaxFrame(1500));
  auto f = MakeFrame(0x020000000001ull, 0x020000000002ull, 200, 8, kTestType);
  Transmit(*tap, f);
  Received r;
  CHECK(ReceiveTest(kernel_side, &r));
  CHECK(r.bytes == f);
  Transmit(kernel_side, Tagged(f, 1002));
  CHECK(ReceiveTest(*tap, &r));
  CHECK(!r.aux);  // a TAP hands tags over in-frame
  CHECK(r.bytes == Tagged(f, 1002));
}

// A guest on VLAN 1000 behind the switch, the outside world on xswvb.
void TestSwitchOverVeth() {
  Switch sw({}, OpenNicPort("xswva", Switch::MaxFrame(1500)));
  AfPacketPort outside("xswvb", Switch::MaxFrame(1500));
  FakeGuest a(kMacA, 0x10000000, 256, 1000);
  uint32_t sa = sw.AddDevice(a.Config(1, 0));
  a.PostRx(16);
  sw.Start();
  auto out = MakeFrame(kMacOut, kMacA, 500, 1, kTestType);
  CHECK(a.Send(out));
  Received r;
  CHECK(ReceiveTest(outside, &r));
  CHECK(r.bytes == Tagged(out, 1000));  // VLAN inserted

  auto in = MakeFrame(kMacA, kMacOut, 400, 2, kTestType);
  Transmit(outside, Tagged(in, 1000));
  Transmit(outside, Tagged(in, 1001));  // another pool: unknown_dst
  std::vector<FakeGuest::Received> got;
  for (int i = 0; i < 2000 && got.empty(); ++i) {
    got = a.Harvest();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(got.size() == 1 && IsDelivery(got[0], in));  // VLAN stripped
  for (int i = 0; i < 2000 && sw.NicStats().drops[DropIndex(Drop::kUnknownDst)] == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  sw.Stop();
  CHECK(sw.NicStats().drops[DropIndex(Drop::kUnknownDst)] >= 1);
  CHECK(sw.NicStats().tx >= 1);
  CHECK(sw.Stats()[0].slot == sa && sw.Stats()[0].rx_total == 1);
}

}  // namespace

int main() {
  if (unshare(CLONE_NEWNET) != 0) {
    std::perror("nic_port_test: unshare(CLONE_NEWNET) needs root");
    return 1;
  }
  if (std::system("ip link add xswva type veth peer name xswvb && ip link set xswva up && ip link set xswvb up") != 0) {
    std::fprintf(stderr, "nic_port_test: cannot create the veth pair (is iproute2 installed?)\n");
    return 1;
  }
  TestErrorsAreOneSentence();
  TestAfPacketOverVeth();
  TestTap();
  TestSwitchOverVeth();
  return xsw::test::Finish("nic_port_test");
}
