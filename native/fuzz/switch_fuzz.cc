// libFuzzer target: the whole switch (switch/switch.h) with a hostile guest,
// two benign ones and a NIC, as the back end runs it.
//
//   H  domain 1, devices H0 and H1 sharing one mempool (as a guest's devices
//      do): the input is its script - descriptors, avail entries and indexes
//      on both rings, used-ring scribbles, frame bytes (any MAC, any tag, any
//      length), its flag byte - written between any two polls; and the
//      control plane removing and re-adding H0 as it does after a fault.
//   B  domain 2, a well-behaved driver: sends to C, to a host behind the NIC
//      and broadcast, and receives from the NIC.
//   C  domain 3, a well-behaved receiver.
//   The NIC: an in-memory port whose traffic the input also drives.
//
// Checked, besides ASan/UBSan: B and C lose nothing - every frame B sent
// reaches C and/or the NIC, every frame the NIC had for B reaches B, each
// once, in order, byte for byte - and neither is ever quarantined. Inputs of
// odd length put H in network 20 and B and C in network 10 (their NIC tags
// unchanged): then nothing H sends ever reaches B or C. The
// benign guests post enough RX buffers and send little enough per poll that
// only a switch fault could cost them a frame (the switch gives each guest
// one burst per poll, docs/dataplane.md).
#include <fuzzer/FuzzedDataProvider.h>

#include <deque>
#include <memory>
#include <vector>

#include "common/ethernet.h"
#include "fuzz_util.h"
#include "switch/switch.h"

using namespace xsw;
using xsw::fuzz::ExactMem;

namespace {

constexpr uint32_t kNum = 128;   // entries of every ring
constexpr uint32_t kBuf = 2048;  // bytes of every buffer
constexpr uint32_t kMtu = 1500;
constexpr uint32_t kPerPoll = 16;  // most frames B sends, or the NIC receives, between two polls
constexpr uint64_t kMacH0 = 0x020000000010, kMacH1 = 0x020000000011, kMacB = 0x020000000020,
                   kMacC = 0x020000000030, kOutside = 0x020000000099, kNicHost = 0x020000000077,
                   kBroadcast = 0xFFFFFFFFFFFF;
constexpr uint16_t kVlanH0 = 1000, kVlanH1 = 1001, kVlanB = 1002, kVlanC = 1003;
constexpr uint64_t kGvaH = 0x10000000, kGvaB = 0x20000000, kGvaC = 0x30000000;
constexpr uint64_t kPoolH = 16 * kBuf;        // H's one pool, shared by H0 and H1
constexpr uint64_t kPoolBC = 2 * kNum * kBuf;  // B's and C's: TX buffers, then RX buffers
constexpr uint16_t kType = 0x88B5;

// One device's shared memory: two rings and a flag page (the pool is apart).
struct Rings {
  ExactMem tx{VringSize(kNum)}, rx{VringSize(kNum)}, flag{kPageSize};
  void Reset() {
    std::memset(tx.p, 0, tx.size);
    std::memset(rx.p, 0, rx.size);
    flag.p[0] = kVringFlagLive;
  }
  DeviceConfig Config(uint16_t domid, uint32_t dev, uint64_t mac, uint16_t vlan, uint64_t gva,
                      const ExactMem& pool) {
    DeviceConfig c;
    c.domid = domid;
    c.dev = dev;
    c.mac = mac;
    c.vlan = vlan;
    c.tx_ring = tx.p;
    c.tx_num = kNum;
    c.tx_ring_len = tx.size;
    c.rx_ring = rx.p;
    c.rx_num = kNum;
    c.rx_ring_len = rx.size;
    c.flag = flag.p;
    c.flag_len = flag.size;
    c.regions.push_back(Region{gva, pool.size, pool.p, true, pool.size});
    return c;
  }
  VringView Tx() { return VringView::At(tx.p, kNum); }
  VringView Rx() { return VringView::At(rx.p, kNum); }
};

uint16_t LoadIdx(const uint16_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
void StoreIdx(uint16_t* p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

// A well-behaved guest device: TX buffer i and RX buffer i back descriptor i
// of their ring; frames go out one descriptor each; every RX descriptor is
// posted and re-posted as soon as it comes back.
struct Benign {
  Rings* r;
  ExactMem* pool;
  uint64_t base;  // the pool's gva
  uint16_t tx_next = 0, rx_avail = 0, rx_seen = 0;

  void Start() {
    VringView v = r->Rx();
    for (uint32_t i = 0; i < kNum; ++i) {
      v.desc[i] = VringDesc{RxGva(i), kBuf, VRING_DESC_F_WRITE, 0};
      v.avail->ring[i] = uint16_t(i);
    }
    rx_avail = uint16_t(kNum);
    StoreIdx(&v.avail->idx, rx_avail);
  }
  uint64_t TxGva(uint32_t i) const { return base + uint64_t(i) * kBuf; }
  uint64_t RxGva(uint32_t i) const { return base + uint64_t(kNum + i) * kBuf; }
  uint8_t* RxBuf(uint32_t i) const { return pool->p + uint64_t(kNum + i) * kBuf; }

  bool Send(const std::vector<uint8_t>& frame) {
    VringView v = r->Tx();
    if (uint16_t(tx_next - LoadIdx(&v.used->idx)) >= kNum) return false;
    uint32_t d = tx_next % kNum;
    uint8_t* buf = pool->p + uint64_t(d) * kBuf;
    std::memset(buf, 0, kVirtioNetHdrLen);
    std::memcpy(buf + kVirtioNetHdrLen, frame.data(), frame.size());
    v.desc[d] = VringDesc{TxGva(d), uint32_t(kVirtioNetHdrLen + frame.size()), 0, 0};
    v.avail->ring[d] = uint16_t(d);
    StoreIdx(&v.avail->idx, ++tx_next);
    return true;
  }
  // Frames received since the last call (their bytes after the virtio header); re-posts the buffers.
  void Harvest(std::vector<std::vector<uint8_t>>* out) {
    VringView v = r->Rx();
    uint16_t used = LoadIdx(&v.used->idx);
    for (; rx_seen != used; ++rx_seen) {
      VringUsedElem e = v.used->ring[rx_seen % kNum];
      FUZZ_CHECK(e.id < kNum && e.len <= kBuf);
      if (e.len > kVirtioNetHdrLen) {
        const uint8_t* b = RxBuf(e.id);
        for (uint32_t k = 0; k < kVirtioNetHdrLen; ++k) FUZZ_CHECK(b[k] == 0);
        out->emplace_back(b + kVirtioNetHdrLen, b + e.len);
      }
      v.avail->ring[rx_avail % kNum] = uint16_t(e.id);
      ++rx_avail;
    }
    StoreIdx(&v.avail->idx, rx_avail);
  }
};

// An in-memory NIC: frames queued for reception, and what was transmitted.
class FuzzNic : public NicPort {
 public:
  const char* kind() const override { return "fuzz"; }
  const std::string& name() const override { return name_; }
  uint32_t RxBurst(NicRxFrame* out, uint32_t max) override {
    uint32_t n = 0;
    while (n < max && !rx.empty()) {
      held_.push_back(std::move(rx.front()));
      rx.pop_front();
      ++n;
    }
    for (uint32_t i = 0; i < n; ++i) {
      const Frame& f = held_[i];
      out[i] = NicRxFrame{f.bytes.data(), uint32_t(f.bytes.size()), uint32_t(f.bytes.size()), f.tci, f.aux};
    }
    return n;
  }
  void RxRelease() override { held_.clear(); }
  uint8_t* TxReserve() override { return in_ring_ == kRing ? nullptr : buf_; }
  uint32_t TxCapacity() const override { return sizeof buf_; }
  bool TxCommit(uint32_t len) override {
    FUZZ_CHECK(len <= sizeof buf_);
    ++in_ring_;
    if (len >= 12 && MacAt(buf_ + 6) == kMacB) sent_by_b.emplace_back(buf_, buf_ + len);
    return true;
  }
  uint32_t TxFree() override { return kRing - in_ring_; }
  void TxFlush() override { in_ring_ = 0; }  // the wire takes everything at each flush

  struct Frame {
    std::vector<uint8_t> bytes;
    uint16_t tci;
    bool aux;
  };
  std::deque<Frame> rx;
  std::vector<std::vector<uint8_t>> sent_by_b;

 private:
  static constexpr uint32_t kRing = 256;
  std::string name_ = "fuzz0";
  std::vector<Frame> held_;
  uint8_t buf_[kMtu + kEthHdrLen + kVlanHdrLen];
  uint32_t in_ring_ = 0;
};

// A benign frame: its sequence number after the header, then a fill that
// depends on it. (The harness's own loops are kept out of the coverage map:
// the fuzzer is after the switch's branches, not these.)
__attribute__((no_sanitize("coverage"))) std::vector<uint8_t> Frame(uint64_t dst, uint64_t src, uint32_t len,
                                                                   uint32_t seq) {
  std::vector<uint8_t> f(len);
  PutMac(f.data(), dst);
  PutMac(f.data() + 6, src);
  PutBe16(f.data() + 12, kType);
  if (len > kEthHdrLen) std::memset(f.data() + kEthHdrLen, int(seq * 31 + 7) & 0xff, len - kEthHdrLen);
  if (len >= 18) std::memcpy(f.data() + 14, &seq, 4);
  if (len >= 19) f[len - 1] = uint8_t(len);
  return f;
}

std::vector<uint8_t> Tagged(const std::vector<uint8_t>& f, uint16_t vid) {
  std::vector<uint8_t> t(f.begin(), f.begin() + 12);
  t.push_back(0x81);
  t.push_back(0x00);
  t.push_back(uint8_t(vid >> 8));
  t.push_back(uint8_t(vid));
  t.insert(t.end(), f.begin() + 12, f.end());
  return t;
}

struct World {
  Rings h0, h1, b, c;
  ExactMem pool_h{kPoolH}, pool_b{kPoolBC}, pool_c{kPoolBC};
};

// The hostile guest's choice of a gva: mostly in or near its pool, sometimes
// another guest's, sometimes anything.
uint64_t PickGva(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
    case 1: return kGvaH + in.ConsumeIntegralInRange<uint64_t>(0, kPoolH + 64);
    case 2: return kGvaB + in.ConsumeIntegralInRange<uint64_t>(0, kPoolBC);
    default: return in.ConsumeIntegral<uint64_t>();
  }
}

uint64_t PickMac(FuzzedDataProvider& in, uint64_t own) {
  const uint64_t macs[] = {own, kMacB, kMacC, kBroadcast, kOutside, kMacH0, kMacH1, 0x010000000001};
  uint32_t i = in.ConsumeIntegralInRange<uint32_t>(0, 8);
  return i < 8 ? macs[i] : in.ConsumeIntegral<uint64_t>() & 0xFFFFFFFFFFFF;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* w = new World();
  for (Rings* r : {&w->h0, &w->h1, &w->b, &w->c}) r->Reset();
  std::memset(w->pool_h.p, 0, w->pool_h.size);
  FuzzedDataProvider in(data, size);

  auto nic_owned = std::make_unique<FuzzNic>();
  FuzzNic* nic = nic_owned.get();
  SwitchConfig cfg;
  cfg.mtu = kMtu;
  cfg.max_devices = 4;
  Switch sw(cfg, std::move(nic_owned));
  const bool networks = size % 2 == 1;
  DeviceConfig h0_cfg = w->h0.Config(1, 0, kMacH0, kVlanH0, kGvaH, w->pool_h);
  DeviceConfig h1_cfg = w->h1.Config(1, 1, kMacH1, kVlanH1, kGvaH, w->pool_h);
  DeviceConfig b_cfg = w->b.Config(2, 0, kMacB, kVlanB, kGvaB, w->pool_b);
  DeviceConfig c_cfg = w->c.Config(3, 0, kMacC, kVlanC, kGvaC, w->pool_c);
  if (networks) {
    h0_cfg.network = h1_cfg.network = 20;
    b_cfg.network = c_cfg.network = 10;
  }
  int64_t h0_slot = sw.AddDevice(h0_cfg);
  sw.AddDevice(h1_cfg);
  const uint32_t b_slot = sw.AddDevice(b_cfg);
  const uint32_t c_slot = sw.AddDevice(c_cfg);
  Benign b{&w->b, &w->pool_b, kGvaB};
  Benign c{&w->c, &w->pool_c, kGvaC};
  b.Start();
  c.Start();

  std::deque<std::vector<uint8_t>> expect_c, expect_nic, expect_b;  // what each must receive, in order
  std::vector<std::vector<uint8_t>> got_c, got_b;
  uint32_t seq = 0, b_sent = 0, nic_queued = 0;
  auto poll = [&] {
    sw.PollOnce();
    b.Harvest(&got_b);
    c.Harvest(&got_c);
    b_sent = nic_queued = 0;
  };

  for (int ops = 0; ops < 256 && in.remaining_bytes() != 0; ++ops) {
    Rings& hr = in.ConsumeBool() ? w->h1 : w->h0;
    const uint64_t own = &hr == &w->h0 ? kMacH0 : kMacH1;
    switch (in.ConsumeIntegralInRange<int>(0, 11)) {
      case 0:
      case 1: {  // H writes a descriptor of one of its rings
        VringView v = in.ConsumeBool() ? hr.Rx() : hr.Tx();
        uint32_t i = in.ConsumeIntegral<uint16_t>() % kNum;
        uint64_t gva = PickGva(in);
        uint32_t len = in.ConsumeBool() ? in.ConsumeIntegralInRange<uint32_t>(0, 2 * kBuf) : in.ConsumeIntegral<uint32_t>();
        uint16_t flags = in.ConsumeBool() ? in.ConsumeIntegral<uint16_t>()
                                          : uint16_t((in.ConsumeBool() ? VRING_DESC_F_NEXT : 0) |
                                                     (in.ConsumeBool() ? VRING_DESC_F_WRITE : 0));
        uint16_t next = in.ConsumeBool() ? uint16_t((i + 1) % kNum) : in.ConsumeIntegral<uint16_t>();
        v.desc[i] = VringDesc{gva, len, flags, next};
        break;
      }
      case 2: {  // ... an avail entry, then moves the index (a little, or anywhere)
        VringView v = in.ConsumeBool() ? hr.Rx() : hr.Tx();
        uint16_t idx = v.avail->idx;
        v.avail->ring[idx % kNum] = in.ConsumeBool() ? uint16_t(in.ConsumeIntegral<uint16_t>() % kNum)
                                                     : in.ConsumeIntegral<uint16_t>();
        idx = in.ConsumeBool() ? uint16_t(idx + in.ConsumeIntegralInRange<uint32_t>(0, 4))
                               : in.ConsumeIntegral<uint16_t>();
        StoreIdx(&v.avail->idx, idx);
        break;
      }
      case 3: {  // ... scribbles on its used rings
        VringView v = in.ConsumeBool() ? hr.Rx() : hr.Tx();
        if (in.ConsumeBool()) {
          v.used->idx = in.ConsumeIntegral<uint16_t>();
        } else {
          v.used->ring[in.ConsumeIntegral<uint16_t>() % kNum] = VringUsedElem{in.ConsumeIntegral<uint32_t>(),
                                                                              in.ConsumeIntegral<uint32_t>()};
        }
        break;
      }
      case 4: {  // ... writes a frame (virtio header first) anywhere in its pool
        uint64_t off = in.ConsumeIntegralInRange<uint64_t>(0, kPoolH - 1);
        uint8_t hdr[kVirtioNetHdrLen + kEthHdrLen + kVlanHdrLen] = {};
        PutMac(hdr + kVirtioNetHdrLen, PickMac(in, own));
        PutMac(hdr + kVirtioNetHdrLen + 6, in.ConsumeIntegralInRange<int>(0, 3) != 0 ? own : PickMac(in, own));
        const uint16_t types[] = {0x0800, 0x8100, 0x88A8, 0x9100};
        uint32_t t = in.ConsumeIntegralInRange<uint32_t>(0, 4);
        PutBe16(hdr + kVirtioNetHdrLen + 12, t < 4 ? types[t] : in.ConsumeIntegral<uint16_t>());
        PutBe16(hdr + kVirtioNetHdrLen + 14, in.ConsumeIntegral<uint16_t>());
        std::memcpy(w->pool_h.p + off, hdr, std::min<uint64_t>(sizeof hdr, kPoolH - off));
        break;
      }
      case 5: {  // ... sends a chain of 1..3 descriptors over its pool, as a driver would
        VringView v = hr.Tx();
        uint16_t idx = v.avail->idx;
        uint32_t head = in.ConsumeIntegral<uint16_t>() % kNum;
        uint32_t nseg = in.ConsumeIntegralInRange<uint32_t>(1, 3);
        for (uint32_t k = 0; k < nseg; ++k) {
          uint32_t d = (head + k) % kNum;
          uint64_t off = in.ConsumeIntegralInRange<uint64_t>(0, kPoolH - 1);
          uint32_t len = in.ConsumeIntegralInRange<uint32_t>(0, uint32_t(kPoolH - off));
          v.desc[d] = VringDesc{kGvaH + off, len, uint16_t(k + 1 < nseg ? VRING_DESC_F_NEXT : 0),
                                uint16_t((d + 1) % kNum)};
        }
        v.avail->ring[idx % kNum] = uint16_t(head);
        StoreIdx(&v.avail->idx, uint16_t(idx + 1));
        break;
      }
      case 6: {  // ... posts RX buffers anywhere in its pool (over its TX buffers, too)
        VringView v = hr.Rx();
        uint16_t idx = v.avail->idx;
        uint32_t d = in.ConsumeIntegral<uint16_t>() % kNum;
        uint64_t off = in.ConsumeIntegralInRange<uint64_t>(0, kPoolH - 1);
        v.desc[d] = VringDesc{kGvaH + off, in.ConsumeIntegralInRange<uint32_t>(0, uint32_t(kPoolH - off)),
                              VRING_DESC_F_WRITE, 0};
        v.avail->ring[idx % kNum] = uint16_t(d);
        StoreIdx(&v.avail->idx, uint16_t(idx + 1));
        break;
      }
      case 7:  // ... flips its flag byte
        hr.flag.p[0] = in.ConsumeBool() ? kVringFlagLive : in.ConsumeIntegral<uint8_t>();
        break;
      case 8: {  // B sends: to C, to the NIC's side, or broadcast
        if (b_sent == kPerPoll) break;
        uint32_t kind = in.ConsumeIntegralInRange<uint32_t>(0, 2);
        uint64_t dst = kind == 0 ? kMacC : kind == 1 ? kOutside : kBroadcast;
        auto f = Frame(dst, kMacB, in.ConsumeIntegralInRange<uint32_t>(kEthHdrLen, kMtu + kEthHdrLen), seq++);
        if (!b.Send(f)) break;
        ++b_sent;
        if (kind != 1) expect_c.push_back(f);
        if (kind != 0) expect_nic.push_back(Tagged(f, kVlanB));
        break;
      }
      case 9: {  // the NIC receives: for B (tag as metadata or in the frame), or anything
        if (nic_queued == kPerPoll) break;
        ++nic_queued;
        uint32_t kind = in.ConsumeIntegralInRange<uint32_t>(0, 2);
        if (kind < 2) {
          auto f = Frame(kMacB, kNicHost, in.ConsumeIntegralInRange<uint32_t>(kEthHdrLen, kMtu + kEthHdrLen), seq++);
          expect_b.push_back(f);
          nic->rx.push_back(kind == 0 ? FuzzNic::Frame{f, kVlanB, true} : FuzzNic::Frame{Tagged(f, kVlanB), 0, false});
        } else {
          // Anything, but never from the host whose frames B counts.
          std::vector<uint8_t> junk = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(0, kMtu + 32));
          if (junk.size() >= 12 && MacAt(junk.data() + 6) == kNicHost) junk[11] ^= 1;
          // With networks, H's MACs are the mark of H's frames: the NIC does not forge them.
          if (networks && junk.size() >= 12 && (MacAt(junk.data() + 6) | 1) == (kMacH0 | 1)) junk[10] ^= 1;
          nic->rx.push_back(FuzzNic::Frame{junk, in.ConsumeIntegral<uint16_t>(), in.ConsumeBool()});
        }
        break;
      }
      case 10:
        poll();
        break;
      default:  // the control plane takes H0 away (as after a fault) or attaches it again
        if (h0_slot >= 0) {
          sw.RemoveDevice(uint32_t(h0_slot));
          h0_slot = -1;
        } else {
          w->h0.flag.p[0] = kVringFlagLive;
          h0_slot = sw.AddDevice(h0_cfg);
        }
        break;
    }
  }
  for (int i = 0; i < 4; ++i) poll();

  // With networks, nothing from H reached B or C (H's frames carry H's MACs: others are spoofed, dropped).
  if (networks) {
    for (const auto* got : {&got_b, &got_c}) {
      for (const auto& f : *got) FUZZ_CHECK(f.size() < 12 || (MacAt(f.data() + 6) | 1) != (kMacH0 | 1));
    }
  }

  // B and C lost nothing: everything arrived once, in order, intact.
  std::vector<std::vector<uint8_t>> c_from_b, b_from_nic;
  for (auto& f : got_c)
    if (f.size() >= 12 && MacAt(f.data() + 6) == kMacB) c_from_b.push_back(std::move(f));
  for (auto& f : got_b)
    if (f.size() >= 12 && MacAt(f.data() + 6) == kNicHost) b_from_nic.push_back(std::move(f));
  FUZZ_CHECK(c_from_b.size() == expect_c.size());
  for (size_t i = 0; i < c_from_b.size(); ++i) FUZZ_CHECK(c_from_b[i] == expect_c[i]);
  FUZZ_CHECK(nic->sent_by_b.size() == expect_nic.size());
  for (size_t i = 0; i < expect_nic.size(); ++i) FUZZ_CHECK(nic->sent_by_b[i] == expect_nic[i]);
  FUZZ_CHECK(b_from_nic.size() == expect_b.size());
  for (size_t i = 0; i < b_from_nic.size(); ++i) FUZZ_CHECK(b_from_nic[i] == expect_b[i]);
  for (const auto& s : sw.Stats()) {
    if (s.slot != b_slot && s.slot != c_slot) continue;
    FUZZ_CHECK(s.state == DeviceState::kActive);
    FUZZ_CHECK(s.tx_dropped == 0 && s.rx_dropped == 0);
  }
  return 0;
}
