// The netif engine between fake netfronts and the switch, on the simulated
// platform, under ASan/UBSan: frames both ways through the switch, frames of
// many slots, checksums completed, notifications, and the hostile-netfront
// matrix (each class quarantines only the offender; a second pair of guests
// loses nothing).
#include "check.h"

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "netfront_fake.h"
#include "netif_switch_device.h"
#include "netif/checksum.h"
#include "netif/engine.h"
#include "switch/switch.h"

using namespace xsw;
using namespace xsw::netif;
using xsw::test::FakeNetfront;
using xsw::test::NetifSwitchDevice;

namespace {

uint64_t MacOf(domid_t d) { return 0x00163e000000ull | d; }

void PutMac(uint8_t* p, uint64_t mac) {
  for (int i = 0; i < 6; ++i) p[i] = uint8_t(mac >> (40 - 8 * i));
}

std::vector<uint8_t> EthFrame(domid_t from, domid_t to, uint32_t len, uint8_t seed) {
  std::vector<uint8_t> f(std::max<uint32_t>(len, 14));
  PutMac(f.data(), MacOf(to));
  PutMac(f.data() + 6, MacOf(from));
  f[12] = 0x88;
  f[13] = 0xB5;  // local experimental ethertype
  for (uint32_t i = 14; i < len; ++i) f[i] = uint8_t(seed + i * 13);
  f.resize(len);  // a runt keeps its first bytes
  return f;
}

// Ethernet + IPv4 + UDP with a checksum field holding garbage, as a sender
// that left it to the back end (NETTXF_csum_blank).
std::vector<uint8_t> UdpFrame(domid_t from, domid_t to, uint32_t payload) {
  std::vector<uint8_t> f(14 + 20 + 8 + payload);
  PutMac(f.data(), MacOf(to));
  PutMac(f.data() + 6, MacOf(from));
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  uint16_t total = uint16_t(20 + 8 + payload);
  ip[2] = uint8_t(total >> 8);
  ip[3] = uint8_t(total);
  ip[8] = 64;
  ip[9] = 17;
  uint8_t src[4] = {10, 0, 0, uint8_t(from)}, dst[4] = {10, 0, 0, uint8_t(to)};
  std::memcpy(ip + 12, src, 4);
  std::memcpy(ip + 16, dst, 4);
  uint8_t* udp = ip + 20;
  udp[0] = 0x30;
  udp[1] = 0x39;
  udp[2] = 0x00;
  udp[3] = 0x35;
  udp[4] = uint8_t((8 + payload) >> 8);
  udp[5] = uint8_t(8 + payload);
  udp[6] = 0x12;  // garbage: the back end must compute it
  udp[7] = 0x34;
  for (uint32_t i = 0; i < payload; ++i) udp[8 + i] = uint8_t(i * 7 + 1);
  return f;
}

bool UdpChecksumValid(const std::vector<uint8_t>& f) {
  const uint8_t* ip = f.data() + 14;
  uint32_t udp_len = uint32_t(ip[20 + 4] << 8 | ip[20 + 5]);
  uint32_t sum = AddBytes(0, ip + 12, 8) + 17 + udp_len;
  sum = AddBytes(sum, ip + 20, udp_len);
  return FoldSum(sum) == 0xFFFF;
}

struct Vif {
  std::unique_ptr<FakeNetfront> front;
  std::unique_ptr<Engine> engine;
  uint32_t slot = 0;
};

class Rig {
 public:
  Rig() {
    char tmpl[] = "/tmp/xsw-netif-test-XXXXXX";
    dir = mkdtemp(tmpl);
    SwitchConfig sc;
    sc.vm2vm = true;
    sw = std::make_unique<Switch>(sc, nullptr);
  }
  ~Rig() {
    for (auto& v : vifs) {
      if (v->engine) {
        sw->RemoveDevice(v->slot);
        v->engine.reset();
      }
    }
    sw.reset();
    vifs.clear();
    std::string cmd = "rm -rf " + dir;
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "cannot remove %s\n", dir.c_str());
  }

  Vif& Add(domid_t domid) {
    auto v = std::make_unique<Vif>();
    v->front = std::make_unique<FakeNetfront>(dir, domid);
    VifParams p;
    p.platform.platform = "sim";
    p.platform.sim_dir = dir;
    p.platform.self_domid = 0;
    p.domid = domid;
    p.tx_ring_ref = v->front->tx_ring_ref();
    p.rx_ring_ref = v->front->rx_ring_ref();
    p.tx_evtchn = p.rx_evtchn = v->front->port;
    v->engine = OpenVif(p);
    DeviceConfig c = NetifSwitchDevice(v->engine->local(), domid, MacOf(domid));
    v->slot = sw->AddDevice(c);
    vifs.push_back(std::move(v));
    return *vifs.back();
  }

  void Pump(int rounds = 3) {
    for (int i = 0; i < rounds; ++i) {
      for (auto& v : vifs) v->engine->PollOnce();
      sw->PollOnce();
      for (auto& v : vifs) v->engine->PollOnce();
    }
  }

  DeviceState State(const Vif& v) {
    for (const auto& s : sw->Stats())
      if (s.slot == v.slot) return s.state;
    return DeviceState::kFree;
  }

  std::string dir;
  std::unique_ptr<Switch> sw;
  std::vector<std::unique_ptr<Vif>> vifs;
};

void BothWays() {
  Rig rig;
  Vif& a = rig.Add(5);
  Vif& b = rig.Add(6);
  a.front->PostRx(64);
  b.front->PostRx(64);
  rig.Pump(1);
  b.front->Events();
  // One slot, then five slots of uneven sizes, then the largest frame in 18 slots.
  auto f1 = EthFrame(5, 6, 60, 1);
  auto f2 = EthFrame(5, 6, 1000, 2);
  auto f3 = EthFrame(5, 6, 1514, 3);
  a.front->QueueFrame(f1);
  a.front->QueueFrame(f2, {100, 300, 1, 500, 99}, 0, 3000);
  std::vector<uint32_t> pieces(17, 84);
  pieces.insert(pieces.begin(), 1514 - 17 * 84);
  a.front->QueueFrame(f3, pieces, 0, 4000);
  a.front->PushTx();
  rig.Pump();
  auto got = b.front->Received();
  CHECK_EQ(got.size(), 3u);
  if (got.size() == 3) {
    CHECK(got[0] == f1);
    CHECK(got[1] == f2);
    CHECK(got[2] == f3);
  }
  auto rsp = a.front->TxResponses();
  CHECK_EQ(rsp.size(), size_t(1 + 5 + 18));
  for (size_t i = 0; i < rsp.size(); ++i) {
    CHECK_EQ(rsp[i].first, uint16_t(i));
    CHECK_EQ(rsp[i].second, NETIF_RSP_OKAY);
  }
  CHECK(b.front->Events() > 0);  // frames arrived: b was told
  CHECK(a.front->Events() > 0);  // responses: a was told
  CHECK(a.front->notified > 0);
  // A small frame split into the most slots allowed, headers across slots
  // (the XSA-432 class: as many pieces as permitted, smaller than the headers).
  auto tiny = EthFrame(5, 6, 60, 7);
  std::vector<uint32_t> ones(18, 1);
  ones[0] = 60 - 17;
  a.front->QueueFrame(tiny, ones);
  auto hdr_split = EthFrame(5, 6, 60, 8);
  std::vector<uint32_t> early(18, 3);
  early[0] = 60 - 17 * 3;  // the first slot holds only 9 bytes of the Ethernet header
  a.front->QueueFrame(hdr_split, early);
  a.front->PushTx();
  rig.Pump();
  got = b.front->Received();
  CHECK_EQ(got.size(), 2u);
  if (got.size() == 2) {
    CHECK(got[0] == tiny);
    CHECK(got[1] == hdr_split);
  }
  CHECK_EQ(a.front->TxResponses().size(), 36u);
  // And back, with the checksum left blank.
  auto u = UdpFrame(6, 5, 333);
  CHECK(!UdpChecksumValid(u));
  b.front->QueueFrame(u, {200, 175}, NETTXF_csum_blank | NETTXF_data_validated);
  b.front->PushTx();
  rig.Pump();
  auto back = a.front->Received();
  CHECK_EQ(back.size(), 1u);
  if (back.size() == 1) {
    CHECK_EQ(back[0].size(), u.size());
    CHECK(UdpChecksumValid(back[0]));
    CHECK(std::equal(u.begin(), u.begin() + 40, back[0].begin()));
  }
  CHECK_EQ(b.engine->counters().tx_csum_completed.load(), 1u);
  // A runt and an oversized frame: dropped with an error response, no quarantine.
  auto runt = EthFrame(5, 6, 10, 4);
  a.front->QueueFrame(runt);
  std::vector<uint32_t> big(2, 800);
  a.front->QueueFrame(EthFrame(5, 6, 1600, 5), big);
  a.front->PushTx();
  rig.Pump();
  rsp = a.front->TxResponses();
  CHECK_EQ(rsp.size(), 3u);
  for (auto& r : rsp) CHECK_EQ(r.second, NETIF_RSP_ERROR);
  CHECK(a.engine->fault() == Fault::kNone);
  CHECK_EQ(a.engine->counters().tx_dropped.load(), 2u);
  // More frames than RX pages posted.
  a.front->QueueFrame(EthFrame(5, 6, 100, 6));
  b.front->Received();
  for (int i = 0; i < 70; ++i) a.front->QueueFrame(EthFrame(5, 6, 100, uint8_t(i)));
  a.front->PushTx();
  rig.Pump(8);
  CHECK_EQ(b.front->Received().size(), size_t(64 - 5));  // 64 posted, 5 used above
  // The other 12 wait in the local ring until the guest posts pages: none lost.
  CHECK_EQ(b.engine->counters().rx_no_buffer.load(), 0u);
  b.front->PostRx(12);
  rig.Pump();
  CHECK_EQ(b.front->Received().size(), 12u);
  // Responses were published only through the back end's private index,
  // whatever the guest wrote to rsp_prod meanwhile.
  FakeNetfront::Hdr(a.front->TxRing())->rsp_prod = 12345;
  b.front->PostRx(10);
  a.front->QueueFrame(EthFrame(5, 6, 200, 9));
  a.front->PushTx();
  rig.Pump();
  CHECK_EQ(b.front->Received().size(), 1u);
  CHECK(a.engine->fault() == Fault::kNone);
  std::printf("both ways: checked\n");
}

struct Attack {
  const char* name;
  Fault expect;
  std::function<void(FakeNetfront&)> mount;
};

void HostileMatrix() {
  std::vector<Attack> attacks = {
      {"req_prod a ring ahead (XSA-39)", Fault::kTxReqOverflow,
       [](FakeNetfront& f) {
         f.QueueFrame(EthFrame(7, 6, 60, 0));
         f.tx_req_prod += kTxRingSize;
         f.PushTx();
       }},
      {"RX req_prod a ring ahead", Fault::kRxReqOverflow,
       [](FakeNetfront& f) {
         f.rx_req_prod += kRxRingSize + 1;
         f.PostRx(0);
         f.QueueFrame(EthFrame(7, 7, 60, 0));  // ... to itself? no: a broadcast reaches it
         f.PushTx();
       }},
      {"19 slots (XSA-423/448)", Fault::kTxTooManySlots,
       [](FakeNetfront& f) {
         std::vector<uint32_t> p(19, 50);
         p[0] = 1000 - 18 * 50;
         f.QueueFrame(EthFrame(7, 6, 1000, 0), p);
         f.PushTx();
       }},
      {"slot past its page (XSA-155/270)", Fault::kTxSlotPastPage,
       [](FakeNetfront& f) {
         f.QueueFrame(EthFrame(7, 6, 200, 0), {}, 0, 4000);
         f.PushTx();
       }},
      {"zero-length follow-up slot", Fault::kTxZeroSlot,
       [](FakeNetfront& f) {
         f.QueueFrame(EthFrame(7, 6, 200, 0), {100, 100, 0});
         f.PushTx();
       }},
      {"first slot smaller than the rest", Fault::kTxSlotSizes,
       [](FakeNetfront& f) {
         f.QueueFrame(EthFrame(7, 6, 200, 0), {100, 100});
         f.TxSlot(f.tx_req_prod - 2).size = 50;
         f.PushTx();
       }},
      {"extra-info slot never offered", Fault::kTxExtraInfo,
       [](FakeNetfront& f) {
         f.QueueFrame(EthFrame(7, 6, 200, 0), {}, NETTXF_extra_info);
         f.PushTx();
       }},
      {"TX ref never granted", Fault::kTxBadGrant,
       [](FakeNetfront& f) {
         f.QueueFrame(EthFrame(7, 6, 200, 0));
         f.TxSlot(f.tx_req_prod - 1).gref = 4000;
         f.PushTx();
       }},
      {"RX ref granted read-only", Fault::kRxBadGrant,
       [](FakeNetfront& f) {
         f.PostRx(1);
         f.RxSlot(f.rx_req_prod - 1).gref = f.tx_pages.grefs[0];
         uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
         (void)bcast;
       }},
  };
  for (const Attack& a : attacks) {
    Rig rig;
    Vif& v5 = rig.Add(5);
    Vif& v6 = rig.Add(6);
    Vif& bad = rig.Add(7);
    v6.front->PostRx(64);
    v5.front->PostRx(64);
    a.mount(*bad.front);
    // A broadcast from the victim pair reaches the attacker's RX path too.
    auto bc = EthFrame(5, 6, 80, 0);
    std::memset(bc.data(), 0xff, 6);
    v5.front->QueueFrame(bc);
    v5.front->PushTx();
    rig.Pump(2);
    for (int i = 0; i < 50; ++i) v5.front->QueueFrame(EthFrame(5, 6, 100 + i, uint8_t(i)));
    v5.front->PushTx();
    rig.Pump(6);
    auto got = v6.front->Received();
    CHECK_EQ(got.size(), 51u);  // the broadcast and all 50
    bool intact = got.size() == 51;
    for (int i = 0; intact && i < 50; ++i) intact = got[size_t(i) + 1] == EthFrame(5, 6, 100 + i, uint8_t(i));
    CHECK(intact);
    if (bad.engine->fault() != a.expect)
      std::fprintf(stderr, "%s: fault %s, expected %s\n", a.name, FaultName(bad.engine->fault()), FaultName(a.expect));
    CHECK(bad.engine->fault() == a.expect);
    CHECK(rig.State(bad) == DeviceState::kDead);
    CHECK(v5.engine->fault() == Fault::kNone && v6.engine->fault() == Fault::kNone);
    CHECK(rig.State(v5) == DeviceState::kActive && rig.State(v6) == DeviceState::kActive);
  }
  std::printf("hostile matrix: %zu classes checked\n", attacks.size());
}

void ChecksumUnits() {
  auto u = UdpFrame(1, 2, 100);
  CHECK(CompleteChecksum(u.data(), uint32_t(u.size())));
  CHECK(UdpChecksumValid(u));
  auto frag = UdpFrame(1, 2, 100);
  frag[14 + 6] = 0x20;  // MF
  CHECK(!CompleteChecksum(frag.data(), uint32_t(frag.size())));
  auto lying = UdpFrame(1, 2, 100);
  lying[14 + 2] = 0x05;  // IP total length past the frame
  CHECK(!CompleteChecksum(lying.data(), uint32_t(lying.size())));
  auto other = EthFrame(1, 2, 100, 0);
  CHECK(!CompleteChecksum(other.data(), uint32_t(other.size())));
}

}  // namespace

int main() {
  ChecksumUnits();
  BothWays();
  HostileMatrix();
  return xsw::test::Finish("netif_engine_test");
}
