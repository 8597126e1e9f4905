// Live capture (switch/capture.h): the ring alone (bounded, a full ring
// counts drops, pcapng packet blocks byte for byte, a drain that stops at the
// buffer's end), and in the switch (each port's frames once, in the direction
// the port sees them, the NIC's stripped tag put back, nothing captured once
// the session or the device is gone, refusals).
#include <cstring>
#include <memory>
#include <vector>

#include "check.h"
#include "common/errors.h"
#include "switch/capture.h"
#include "switch/switch.h"
#include "switch_test_util.h"

using namespace xsw;
using namespace xsw::test;

namespace {

struct Block {
  uint32_t iface, cap_len, orig_len, flags;
  std::vector<uint8_t> data;
};

uint32_t Get32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Parses EPBs and checks their framing.
std::vector<Block> Parse(const uint8_t* p, size_t n) {
  std::vector<Block> out;
  size_t off = 0;
  while (off < n) {
    CHECK_EQ(Get32(p + off), 6u);
    const uint32_t total = Get32(p + off + 4);
    CHECK_EQ(total % 4, 0u);
    CHECK_EQ(Get32(p + off + total - 4), total);
    Block b;
    b.iface = Get32(p + off + 8);
    b.cap_len = Get32(p + off + 20);
    b.orig_len = Get32(p + off + 24);
    b.data.assign(p + off + 28, p + off + 28 + b.cap_len);
    const uint8_t* opt = p + off + 28 + ((b.cap_len + 3) & ~3u);
    CHECK_EQ(opt[0] | opt[1] << 8, 2);  // epb_flags
    CHECK_EQ(opt[2] | opt[3] << 8, 4);
    b.flags = Get32(opt + 4);
    CHECK_EQ(Get32(opt + 8), 0u);  // opt_endofopt
    out.push_back(std::move(b));
    off += total;
  }
  CHECK_EQ(off, n);
  return out;
}

std::vector<Block> DrainAll(CaptureRing& r) {
  std::vector<uint8_t> buf(1 << 20);
  uint32_t records = 0;
  size_t n = r.DrainPcapng(buf.data(), buf.size(), UINT32_MAX, &records);
  auto blocks = Parse(buf.data(), n);
  CHECK_EQ(blocks.size(), size_t(records));
  return blocks;
}

void TestRingAlone() {
  CaptureRing r(4, 64);
  for (uint32_t i = 0; i < 4; ++i) {
    uint8_t* p = r.Reserve();
    CHECK(p != nullptr);
    std::memset(p, int(i), 64);
    r.Commit(uint16_t(i), i % 2 ? CaptureDir::kOutbound : CaptureDir::kInbound, 100 + i, 61 + i);
  }
  CHECK(r.Reserve() == nullptr);  // full: counted, nothing overwritten
  CHECK_EQ(r.dropped(), 1u);
  CHECK_EQ(r.captured(), 4u);
  // A buffer with room for one block only: one comes out, the rest wait.
  std::vector<uint8_t> small(r.MaxBlockLen());
  uint32_t records = 0;
  size_t n = r.DrainPcapng(small.data(), small.size(), UINT32_MAX, &records);
  CHECK_EQ(records, 1u);
  auto first = Parse(small.data(), n);
  CHECK_EQ(first[0].iface, 0u);
  CHECK_EQ(first[0].cap_len, 61u);
  CHECK_EQ(first[0].orig_len, 100u);
  CHECK_EQ(first[0].flags, 1u);
  CHECK(first[0].data == std::vector<uint8_t>(61, 0));
  auto rest = DrainAll(r);
  CHECK_EQ(rest.size(), 3u);
  for (uint32_t i = 1; i < 4; ++i) {
    const Block& b = rest[i - 1];
    CHECK_EQ(b.iface, i);
    CHECK_EQ(b.cap_len, 61 + i);
    CHECK_EQ(b.orig_len, 100 + i);
    CHECK_EQ(b.flags, i % 2 ? 2u : 1u);
    CHECK(b.data == std::vector<uint8_t>(61 + i, uint8_t(i)));
  }
  CHECK(r.Reserve() != nullptr);  // room again
}

void TestSwitchCapturesEachPortOnce() {
  auto nic_owned = std::make_unique<FakeNic>();
  FakeNic* nic = nic_owned.get();
  Switch sw({}, std::move(nic_owned));
  const uint64_t A = 0x020000000011ull, B = 0x020000000022ull, H = 0x0200000000feull;
  FakeGuest a(A, 0x10000000, 256, 1000), b(B, 0x20000000, 256, 1001);
  const uint32_t sa = sw.AddDevice(a.Config(1, 0));
  sw.AddDevice(b.Config(2, 0));
  a.PostRx(8);
  b.PostRx(8);
  bool refused = false;
  try {
    sw.CaptureStart({7}, 1000, 16);
  } catch (const SysError& e) {
    refused = e.err() == ENOENT;
  }
  CHECK(refused);
  const uint32_t id = sw.CaptureStart({sa, Switch::kCaptureNic}, 65535, 16);
  refused = false;
  try {
    sw.CaptureStart({sa}, 1000, 16);
  } catch (const SysError& e) {
    refused = e.err() == EBUSY;
  }
  CHECK(refused);

  const auto to_b = MakeFrame(B, A, 100, 1);
  const auto bcast = MakeFrame(0xFFFFFFFFFFFFull, A, 80, 2);
  const auto from_b = MakeFrame(A, B, 90, 3);  // not A's TX: captured once, as delivered to A
  const auto from_nic = MakeFrame(A, H, 70, 4);  // the kernel stripped its tag (aux data)
  a.Send(to_b);
  a.Send(bcast);
  b.Send(from_b);
  nic->rx->push_back({from_nic, true, 1000});
  for (int i = 0; i < 4; ++i) sw.PollOnce();

  auto blocks = DrainAll(*sw.Capture(id));
  // A's TX (in, port 0) x2; the broadcast out of the NIC (port 1, tagged 1000);
  // B's frame delivered to A (out, port 0); the NIC's frame in (tag put back) and delivered to A.
  size_t a_in = 0, a_out = 0, nic_in = 0, nic_out = 0;
  for (const Block& blk : blocks) {
    if (blk.iface == 0 && blk.flags == 1) {
      CHECK(blk.data == (a_in == 0 ? to_b : bcast));
      ++a_in;
    } else if (blk.iface == 0 && blk.flags == 2) {
      CHECK(blk.data == (a_out == 0 ? from_b : from_nic));
      ++a_out;
    } else if (blk.iface == 1 && blk.flags == 2) {
      CHECK_EQ(blk.orig_len, 84u);
      CHECK_EQ(blk.data[12], 0x81);
      CHECK_EQ((blk.data[14] << 8 | blk.data[15]) & 0xFFF, 1000);
      CHECK(std::memcmp(blk.data.data() + 16, bcast.data() + 12, bcast.size() - 12) == 0);
      ++nic_out;
    } else if (blk.iface == 1 && blk.flags == 1) {
      CHECK_EQ(blk.orig_len, 74u);
      CHECK_EQ(blk.cap_len, 74u);
      CHECK(std::memcmp(blk.data.data(), from_nic.data(), 12) == 0);
      CHECK_EQ(blk.data[12], 0x81);
      CHECK_EQ((blk.data[14] << 8 | blk.data[15]) & 0xFFF, 1000);
      CHECK(std::memcmp(blk.data.data() + 16, from_nic.data() + 12, from_nic.size() - 12) == 0);
      ++nic_in;
    } else {
      CHECK(false);
    }
  }
  CHECK_EQ(a_in, 2u);
  CHECK_EQ(a_out, 2u);
  CHECK_EQ(nic_out, 1u);
  CHECK_EQ(nic_in, 1u);
  CHECK_EQ(sw.Capture(id)->dropped(), 0u);

  // Stopped: nothing more is copied, and the ports may be captured again.
  sw.CaptureStop(id);
  CHECK(sw.Capture(id) == nullptr);
  a.Send(to_b);
  sw.PollOnce();
  const uint32_t again = sw.CaptureStart({sa}, 64, 16);
  sw.RemoveDevice(sa);  // the session goes on without it
  b.Send(MakeFrame(A, B, 60, 5));
  sw.PollOnce();
  CHECK_EQ(sw.Capture(again)->captured(), 0u);
  sw.CaptureStop(again);
}

void TestFullRingNeverHoldsAFrameBack() {
  Switch sw({}, nullptr);
  const uint64_t A = 0x020000000011ull, B = 0x020000000022ull;
  FakeGuest a(A, 0x10000000, 256, 1000), b(B, 0x20000000, 256, 1001);
  sw.AddDevice(a.Config(1, 0));
  const uint32_t sb = sw.AddDevice(b.Config(2, 0));
  b.PostRx(200);
  const uint32_t id = sw.CaptureStart({sb}, 64, 8);
  for (int i = 0; i < 150; ++i) a.Send(MakeFrame(B, A, 64, uint8_t(i)));
  for (int i = 0; i < 10; ++i) sw.PollOnce();
  CHECK_EQ(b.Harvest().size(), 150u);
  CHECK_EQ(sw.Capture(id)->captured(), 8u);
  CHECK_EQ(sw.Capture(id)->dropped(), 142u);
  sw.CaptureStop(id);
}

}  // namespace

int main() {
  TestRingAlone();
  TestSwitchCapturesEachPortOnce();
  TestFullRingNeverHoldsAFrameBack();
  return Finish("capture_test");
}
