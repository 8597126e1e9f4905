// libFuzzer target: the netif engine (netif/engine.h) and the switch, with a
// hostile netfront and a benign pair, on the simulated platform.
//
//   H  domain 7: the input is its script - TX slots with any gref, offset,
//      flags, id and size, its req_prod set anywhere, RX requests with any
//      gref, scribbles on rsp_prod/rsp_event/req_event - written between any
//      two polls. Once quarantined it is replaced by a fresh vif.
//   A  domain 5 sends frames to B (one to three slots each, some with the
//      checksum left blank over UDP); B, domain 6, posts pages for them.
//
// Checked, besides ASan/UBSan: A and B are never quarantined, and every frame
// A sent reaches B, in order, byte for byte (checksummed ones with a valid
// checksum), whatever H does.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "../test/netfront_fake.h"
#include "../test/netif_switch_device.h"
#include "fuzz_util.h"
#include "netif/checksum.h"
#include "netif/engine.h"
#include "switch/switch.h"

using namespace xsw;
using namespace xsw::netif;
using xsw::test::FakeNetfront;
using xsw::test::NetifSwitchDevice;

namespace {

uint64_t MacOf(domid_t d) { return 0x00163e000000ull | d; }

std::vector<uint8_t> Frame(domid_t from, domid_t to, uint32_t len, uint32_t seq) {
  std::vector<uint8_t> f(len);
  for (int i = 0; i < 6; ++i) {
    f[i] = uint8_t(MacOf(to) >> (40 - 8 * i));
    f[6 + i] = uint8_t(MacOf(from) >> (40 - 8 * i));
  }
  f[12] = 0x88;
  f[13] = 0xB5;
  for (uint32_t i = 14; i < len; ++i) f[i] = uint8_t(seq * 31 + i);
  return f;
}

struct Vif {
  std::unique_ptr<FakeNetfront> front;
  std::unique_ptr<Engine> engine;
  uint32_t slot = 0;
};

struct Rig {
  std::string dir;
  std::unique_ptr<Switch> sw;
  Vif a, b, h;
  uint32_t seq = 0;

  Rig() {
    char tmpl[] = "/tmp/xsw-netif-fuzz-XXXXXX";
    dir = mkdtemp(tmpl);
    SwitchConfig sc;
    sw = std::make_unique<Switch>(sc, nullptr);
    Add(a, 5);
    Add(b, 6);
    Add(h, 7);
    b.front->PostRx(FakeNetfront::kRxPages);
  }

  void Add(Vif& v, domid_t domid) {
    v.front = std::make_unique<FakeNetfront>(dir, domid);
    VifParams p;
    p.platform.platform = "sim";
    p.platform.sim_dir = dir;
    p.domid = domid;
    p.tx_ring_ref = v.front->tx_ring_ref();
    p.rx_ring_ref = v.front->rx_ring_ref();
    p.tx_evtchn = p.rx_evtchn = v.front->port;
    v.engine = OpenVif(p);
    DeviceConfig c = NetifSwitchDevice(v.engine->local(), domid, MacOf(domid));
    v.slot = sw->AddDevice(c);
  }

  // The control plane's reaction to a quarantine: out of the switch, then a new vif.
  void ReplaceH() {
    sw->RemoveDevice(h.slot);
    h.engine.reset();
    h.front.reset();
    Add(h, 7);
  }

  // One round of engines and switch; B takes what arrived and keeps all
  // its 64 pages posted (a page is reused only once its frame was read).
  void Poll(std::vector<std::vector<uint8_t>>& got) {
    for (Vif* v : {&a, &b, &h}) v->engine->PollOnce();
    sw->PollOnce();
    for (Vif* v : {&a, &b, &h}) v->engine->PollOnce();
    for (auto& f : b.front->Received()) got.push_back(std::move(f));
    uint32_t outstanding = b.front->rx_req_prod - b.front->rx_rsp_cons;
    if (outstanding < FakeNetfront::kRxPages) b.front->PostRx(FakeNetfront::kRxPages - outstanding);
    a.front->TxResponses();
  }
};

Rig& TheRig() {
  static Rig* rig = new Rig();  // one sim for the whole run: vifs are costly to set up
  return *rig;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Rig& rig = TheRig();
  FuzzedDataProvider in(data, size);
  std::vector<std::vector<uint8_t>> sent;
  std::vector<std::vector<uint8_t>> got;
  size_t polled_at = 0;
  while (in.remaining_bytes() > 0) {
    FakeNetfront& h = *rig.h.front;
    switch (in.ConsumeIntegralInRange<int>(0, 7)) {
      case 0: {  // H writes a TX slot with anything in it
        TxRequest r;
        r.gref = in.ConsumeBool() ? h.tx_pages.grefs[in.ConsumeIntegralInRange<uint32_t>(0, 63)] : in.ConsumeIntegral<uint32_t>();
        r.offset = in.ConsumeIntegralInRange<uint16_t>(0, in.ConsumeBool() ? 4200 : 0xFFFF);
        r.flags = in.ConsumeIntegral<uint8_t>() & 0x0F;
        r.id = in.ConsumeIntegral<uint16_t>();
        r.size = in.ConsumeIntegralInRange<uint16_t>(0, in.ConsumeBool() ? 1600 : 0xFFFF);
        h.TxSlot(h.tx_req_prod++) = r;
        break;
      }
      case 1:  // H publishes its TX requests
        h.PushTx();
        break;
      case 2:  // H sets req_prod anywhere
        FakeNetfront::Hdr(h.TxRing())->req_prod = in.ConsumeIntegral<uint32_t>();
        break;
      case 3: {  // H posts RX requests, some with refs it never granted
        uint32_t n = in.ConsumeIntegralInRange<uint32_t>(0, 8);
        h.PostRx(n);
        if (n && in.ConsumeBool()) h.RxSlot(h.rx_req_prod - 1).gref = in.ConsumeIntegral<uint32_t>();
        if (in.ConsumeBool()) FakeNetfront::Hdr(h.RxRing())->req_prod += in.ConsumeIntegral<uint16_t>();
        break;
      }
      case 4:  // H scribbles on the fields the back end owns or reads
        FakeNetfront::Hdr(in.ConsumeBool() ? h.TxRing() : h.RxRing())->rsp_prod = in.ConsumeIntegral<uint32_t>();
        FakeNetfront::Hdr(h.TxRing())->rsp_event = in.ConsumeIntegral<uint32_t>();
        break;
      case 5: {  // A sends a frame to B (or to H, or broadcast) in 1 to 3 slots
        uint32_t len = in.ConsumeIntegralInRange<uint32_t>(60, 1514);
        domid_t to = in.ConsumeBool() ? 6 : 7;
        auto f = Frame(5, to, len, rig.seq++);
        if (in.ConsumeBool()) std::memset(f.data(), 0xFF, 6);
        uint32_t first = in.ConsumeIntegralInRange<uint32_t>(1, len);
        uint32_t second = in.ConsumeIntegralInRange<uint32_t>(0, len - first);
        std::vector<uint32_t> pieces = {first};
        if (second) pieces.push_back(second);
        if (first + second < len) pieces.push_back(len - first - second);
        rig.a.front->QueueFrame(f, pieces);
        rig.a.front->PushTx();
        if (to == 6 || f[0] == 0xFF) sent.push_back(f);  // a broadcast reaches B too
        break;
      }
      default:
        rig.Poll(got);
        break;
    }
    if (sent.size() - polled_at >= 16) {  // A never has more in flight than B has pages posted
      rig.Poll(got);
      polled_at = sent.size();
    }
    if (rig.h.engine->fault() != Fault::kNone) rig.ReplaceH();
    FUZZ_CHECK(rig.a.engine->fault() == Fault::kNone);
    FUZZ_CHECK(rig.b.engine->fault() == Fault::kNone);
  }
  for (int i = 0; i < 4; ++i) {
    rig.Poll(got);
    if (rig.h.engine->fault() != Fault::kNone) rig.ReplaceH();
  }
  FUZZ_CHECK(got.size() == sent.size());
  for (size_t i = 0; i < got.size() && i < sent.size(); ++i) FUZZ_CHECK(got[i] == sent[i]);
  return 0;
}
