// The guest PMD against a device side played with VringDevice on the same
// memory: RX refill layout, receive, transmit and reclaim, a full TX ring,
// jumbo chains in both directions, and a lying used ring (ASan + UBSan).
#include <cstring>
#include <stdexcept>
#include <vector>

#include "pmd_test_util.h"

using namespace xsw;
using namespace pmdtest;

static const uint8_t kA[6] = {0, 0, 0, 0, 0, 0x11};
static const uint8_t kB[6] = {0, 0, 0, 0, 0, 0x22};

static void RefillPostsOneWritableBufferPerDescriptorInsideThePool() {
  Rig rig(1024, 256);
  CHECK_EQ(rig.port->RefillRx(), 256u);
  CHECK_EQ(rig.port->RefillRx(), 0u);  // full
  CHECK_EQ(rig.port->rx_in_flight(), 256u);
  uint32_t avail = 0;
  CHECK(rig.dev_rx->Avail(&avail) == Violation::kNone);
  CHECK_EQ(avail, 256u);
  for (uint32_t i = 0; i < avail; i++) {
    Chain c;
    CHECK(rig.dev_rx->Pop(&c) == Violation::kNone);
    CHECK_EQ(c.nseg, 1u);
    CHECK(c.seg[0].device_writable);
    CHECK_EQ(c.seg[0].len, kVirtioNetHdrLen + kMbufDataRoom);
    // headroom - 10 into a page-aligned buffer: one mbuf per page.
    const uint64_t off = uint64_t(c.seg[0].hva - rig.pool.p);
    CHECK_EQ(off % kPageSize, uint64_t(kMbufHeadroom - kVirtioNetHdrLen));
    CHECK(off + c.seg[0].len <= rig.pool.size);
  }
}

static void ReceivedFramesComeOutIntactAndTheRingIsRefilled() {
  Rig rig(1024, 256);
  rig.port->RefillRx();
  const std::vector<uint32_t> lens = {14, 60, 1514, 2048, 5};
  for (size_t i = 0; i + 1 < lens.size(); i++) CHECK(rig.Deliver(EthFrame(kA, kB, lens[i], uint8_t(i))));
  CHECK(rig.Deliver(std::vector<uint8_t>(5, 0xAB)));  // a runt
  uint32_t pkts[32];
  const uint32_t n = rig.port->RxBurst(pkts, 32);
  CHECK_EQ(n, 4u);  // the 5-byte runt is dropped
  CHECK_EQ(rig.port->stats().rx_dropped.load(), 1u);
  CHECK_EQ(rig.port->stats().rx_packets.load(), 4u);
  CHECK_EQ(rig.port->stats().rx_bytes.load(), 14u + 60 + 1514 + 2048);
  for (uint32_t i = 0; i < n; i++) {
    const std::vector<uint8_t> want = EthFrame(kA, kB, lens[i], uint8_t(i));
    CHECK_EQ(rig.port->PktLen(pkts[i]), want.size());
    CHECK_EQ(rig.port->NumSegs(pkts[i]), 1u);
    CHECK(std::memcmp(rig.port->SegData(pkts[i]), want.data(), want.size()) == 0);
    rig.port->Free(pkts[i]);
  }
  CHECK_EQ(rig.RxPosted(), 256u);  // back to a full ring
  CHECK_EQ(rig.port->free_bufs(), 1024u - 256);
}

// The burst paths the guest engines use: AllocBurst takes what the pool has
// (one-buffer frames and chains alike), FreeBurst returns every buffer once
// (a repeated packet is not pushed twice), and a refill short of buffers
// posts what there is and counts rx_nombuf once.
static void BurstsAllocateFreeAndRefillWhatThePoolHas() {
  Rig rig(288, 256);  // the minimum: the RX ring and one burst
  FrontPort& p = *rig.port;
  uint32_t pkts[32];
  CHECK_EQ(p.AllocBurst(64, pkts, 32), 32u);
  CHECK_EQ(p.free_bufs(), 256u);
  for (uint32_t i = 0; i < 32; i++) {
    CHECK_EQ(p.PktLen(pkts[i]), 64u);
    CHECK_EQ(p.SegLen(pkts[i]), 64u);
    CHECK_EQ(p.NumSegs(pkts[i]), 1u);
    for (uint32_t j = 0; j < i; j++) CHECK(pkts[i] != pkts[j]);
  }
  uint32_t twice[33];
  std::memcpy(twice, pkts, sizeof pkts);
  twice[32] = pkts[5];  // a double free in the burst: skipped
  p.FreeBurst(twice, 33);
  CHECK_EQ(p.free_bufs(), 288u);
  CHECK_EQ(p.AllocBurst(64, pkts, 32), 32u);  // all of it again: nothing was lost or duplicated
  CHECK_EQ(p.free_bufs(), 256u);
  // 256 of 288 are out: a refill posts the 256 still free and finds none for the rest of the ring.
  uint32_t more[32];
  CHECK_EQ(p.AllocBurst(2 * kMbufDataRoom, more, 32), 32u);  // chains of two: 64 buffers
  CHECK_EQ(p.free_bufs(), 192u);
  CHECK_EQ(p.NumSegs(more[0]), 2u);
  CHECK_EQ(p.PktLen(more[0]), 2 * kMbufDataRoom);
  CHECK_EQ(p.RefillRx(), 192u);
  CHECK_EQ(p.stats().rx_nombuf.load(), 1u);
  CHECK_EQ(p.AllocBurst(64, more, 32), 0u);  // the pool is empty
  p.FreeBurst(pkts, 32);
  CHECK_EQ(p.RefillRx(), 32u);
  CHECK_EQ(rig.RxPosted(), 224u);
}

static void TransmittedFramesCarryAZeroHeaderAndAreReclaimed() {
  Rig rig(1024, 256);
  rig.port->RefillRx();
  const uint32_t before = rig.port->free_bufs();
  uint32_t pkts[3];
  const std::vector<uint32_t> lens = {60, 1514, 2048};
  for (int i = 0; i < 3; i++) {
    const std::vector<uint8_t> f = EthFrame(kB, kA, lens[i], uint8_t(0x30 + i));
    CHECK(rig.port->CopyIn(f.data(), uint32_t(f.size()), &pkts[i]));
    std::memset(rig.port->SegData(pkts[i]) - kVirtioNetHdrLen, 0xEE, kVirtioNetHdrLen);  // dirty headroom
  }
  CHECK_EQ(rig.port->TxBurst(pkts, 3), 3u);
  CHECK_EQ(rig.port->stats().tx_packets.load(), 3u);
  const auto frames = rig.DrainTx();  // also checks the headers are zero
  CHECK_EQ(frames.size(), 3u);
  for (int i = 0; i < 3 && i < int(frames.size()); i++) {
    CHECK(frames[i] == EthFrame(kB, kA, lens[i], uint8_t(0x30 + i)));
  }
  CHECK_EQ(rig.port->free_bufs(), before - 3);
  CHECK_EQ(rig.port->ReclaimTx(), 3u);
  CHECK_EQ(rig.port->free_bufs(), before);
}

static void AFullTxRingLeavesTheRestToTheCaller() {
  Rig rig(256, 16);
  uint32_t pkts[20];
  for (uint32_t i = 0; i < 20; i++) CHECK(rig.port->Alloc(60, &pkts[i]));
  CHECK_EQ(rig.port->TxBurst(pkts, 20), 16u);
  CHECK_EQ(rig.port->TxBurst(pkts + 16, 4), 0u);  // nothing reclaimed yet
  CHECK_EQ(rig.DrainTx().size(), 16u);
  CHECK_EQ(rig.port->TxBurst(pkts + 16, 4), 4u);  // reclaims first
  CHECK_EQ(rig.DrainTx().size(), 4u);
}

static void JumboFramesSpanChainsBothWays() {
  Rig rig(1024, 256, 9018);
  CHECK_EQ(rig.port->rx_segs(), 5u);  // ceil((9018 + 10) / 2058)
  CHECK_EQ(rig.port->RefillRx(), 51u);  // 256 / 5
  const std::vector<uint8_t> big = EthFrame(kA, kB, 9000, 3);
  CHECK(rig.Deliver(big));
  uint32_t pkt;
  CHECK_EQ(rig.port->RxBurst(&pkt, 1), 1u);
  CHECK_EQ(rig.port->PktLen(pkt), 9000u);
  CHECK_EQ(rig.port->NumSegs(pkt), 5u);
  std::vector<uint8_t> got(9018);
  CHECK_EQ(rig.port->CopyOut(pkt, got.data(), 9018), 9000u);
  got.resize(9000);
  CHECK(got == big);
  CHECK_EQ(rig.port->TxBurst(&pkt, 1), 1u);  // forwarded as it is, zero copy
  auto frames = rig.DrainTx();
  CHECK_EQ(frames.size(), 1u);
  if (!frames.empty()) CHECK(frames[0] == big);
  // A jumbo built by the guest goes out as a chain too.
  CHECK(rig.port->CopyIn(big.data(), 9000, &pkt));
  CHECK_EQ(rig.port->NumSegs(pkt), 5u);
  CHECK_EQ(rig.port->TxBurst(&pkt, 1), 1u);
  frames = rig.DrainTx();
  CHECK_EQ(frames.size(), 1u);
  if (!frames.empty()) CHECK(frames[0] == big);
  // A short frame in a jumbo chain gives back the unused buffers.
  rig.port->ReclaimTx();
  const uint32_t free_before = rig.port->free_bufs();
  CHECK(rig.Deliver(EthFrame(kA, kB, 100, 9)));
  CHECK_EQ(rig.port->RxBurst(&pkt, 1), 1u);
  CHECK_EQ(rig.port->NumSegs(pkt), 1u);
  rig.port->Free(pkt);
  CHECK_EQ(rig.port->free_bufs(), free_before);  // 5 out, 5 back, refill took 5
}

static void ALyingUsedRingIsCountedNotTrusted() {
  Rig rig(1024, 256);
  rig.port->RefillRx();
  VringView v = VringView::At(rig.rx.p, 256);
  v.used->ring[0].id = 9999;  // out of range
  v.used->ring[0].len = 100;
  v.used->ring[1].id = 3;     // a descriptor that is not... fine, but claims too much
  v.used->ring[1].len = 1u << 30;
  __atomic_store_n(&v.used->idx, uint16_t(2), __ATOMIC_RELEASE);
  uint32_t pkts[32];
  const uint32_t n = rig.port->RxBurst(pkts, 32);
  CHECK(rig.port->bad_used() >= 2);
  for (uint32_t i = 0; i < n; i++) {
    CHECK(rig.port->PktLen(pkts[i]) <= kMbufDataRoom);  // clamped to the buffer
    rig.port->Free(pkts[i]);
  }
  // A used index far ahead of what is in flight.
  __atomic_store_n(&v.used->idx, uint16_t(40000), __ATOMIC_RELEASE);
  rig.port->RxBurst(pkts, 32);
  CHECK(rig.port->bad_used() >= 3);
}

static void BadConfigurationsAreRefusedWithAReason() {
  auto refused = [](uint32_t nb, uint32_t ring, uint32_t max_pkt) {
    try {
      Rig rig(nb, ring, max_pkt);
    } catch (const std::invalid_argument& e) {
      return std::strlen(e.what()) > 20;
    }
    return false;
  };
  CHECK(refused(1024, 100, 0));    // not a power of two
  CHECK(refused(200, 256, 0));     // fewer buffers than the RX ring + a burst
  CHECK(refused(1024, 256, 10));   // max packet below an Ethernet header
  CHECK(refused(1024, 256, 9019)); // above the jumbo limit
  CHECK(!refused(1024, 256, 0));
}

// Buffer addresses for every buffer size the pool allows, with the port's
// slice starting anywhere: one, two, three or four buffers per page (the
// power-of-two counts take a shift instead of MempoolLayout's division).
static void BuffersLieWhereTheLayoutPutsThem() {
  const uint32_t ring = 64;
  uint8_t* rings = static_cast<uint8_t*>(std::aligned_alloc(kPageSize, 2 * AlignUp(VringSize(ring), kPageSize)));
  for (const uint32_t buf_size : {2176u, 1984u, 1280u, 960u, 4096u}) {
    const auto layout = MempoolLayout::Make(600, buf_size);
    CHECK(layout.has_value());
    if (!layout) continue;
    uint8_t* pool = static_cast<uint8_t*>(std::aligned_alloc(kPageSize, layout->Bytes()));
    FrontPortConfig c;
    c.pool_base = pool;
    c.layout = *layout;
    c.first_buf = 37;
    c.nb_bufs = 500;
    c.tx_ring = rings;
    c.rx_ring = rings + AlignUp(VringSize(ring), kPageSize);
    c.ring_size = ring;
    FrontPort port(c);
    uint32_t seen = 0, pkts[kBurst], got;
    while ((got = port.AllocBurst(kEthHdrLen, pkts, kBurst)) > 0) {
      for (uint32_t i = 0; i < got; i++) {
        CHECK(port.SegData(pkts[i]) == pool + layout->BufOffset(37 + pkts[i]) + kMbufHeadroom);
      }
      seen += got;
    }
    CHECK_EQ(seen, 500u);
    std::free(pool);
  }
  std::free(rings);
}

int main() {
  RefillPostsOneWritableBufferPerDescriptorInsideThePool();
  ReceivedFramesComeOutIntactAndTheRingIsRefilled();
  BurstsAllocateFreeAndRefillWhatThePoolHas();
  TransmittedFramesCarryAZeroHeaderAndAreReclaimed();
  AFullTxRingLeavesTheRestToTheCaller();
  JumboFramesSpanChainsBothWays();
  ALyingUsedRingIsCountedNotTrusted();
  BadConfigurationsAreRefusedWithAReason();
  BuffersLieWhereTheLayoutPutsThem();
  return xsw::test::Finish("pmd_port_test");
}
