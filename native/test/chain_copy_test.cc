// Copies across descriptor chains (shm/chain_copy.h) against a flat model:
// every offset and length over chains cut into segments of awkward sizes, so
// both the first-segment fast path and the general walk are checked, and
// overlapping source and destination (two devices of one guest) give what
// memmove gives. Runs under ASan/UBSan.
#include <cstring>
#include <vector>

#include "check.h"
#include "shm/chain_copy.h"

using namespace xsw;

namespace {

// A chain over `mem` cut at the given segment lengths.
std::vector<Segment> Cut(uint8_t* mem, const std::vector<uint32_t>& lens) {
  std::vector<Segment> seg;
  for (uint32_t len : lens) {
    seg.push_back(Segment{mem, len, true});
    mem += len;
  }
  return seg;
}

void Fill(uint8_t* p, uint32_t n, uint8_t seed) {
  for (uint32_t i = 0; i < n; ++i) p[i] = uint8_t(seed + i * 13);
}

void TestGatherAndScatterMatchAFlatBuffer() {
  const std::vector<std::vector<uint32_t>> cuts = {{64}, {1, 63}, {24, 40}, {5, 5, 5, 49}, {30, 2, 32}, {0, 64}};
  for (const auto& cut : cuts) {
    uint8_t mem[64], flat[64], out[64];
    auto seg = Cut(mem, cut);
    for (uint32_t off = 0; off <= 64; ++off) {
      for (uint32_t len = 0; off + len <= 64; ++len) {
        Fill(mem, 64, uint8_t(off));
        std::memcpy(flat, mem, 64);
        CHECK_EQ(GatherFromSegments(seg.data(), uint32_t(seg.size()), off, out, len), len);
        CHECK(std::memcmp(out, flat + off, len) == 0);
        Fill(out, len, 0x77);
        CHECK_EQ(ScatterToSegments(seg.data(), uint32_t(seg.size()), off, out, len), len);
        std::memcpy(flat + off, out, len);
        CHECK(std::memcmp(mem, flat, 64) == 0);
      }
    }
    // Past the end: only what the segments hold.
    CHECK_EQ(GatherFromSegments(seg.data(), uint32_t(seg.size()), 60, out, 10), 4u);
  }
}

void TestCopyBetweenChainsIsMemmove() {
  const std::vector<std::vector<uint32_t>> cuts = {{96}, {10, 86}, {24, 24, 48}, {3, 90, 3}};
  for (const auto& src_cut : cuts) {
    for (const auto& dst_cut : cuts) {
      // Apart: plain copies.
      uint8_t a[96], b[96], flat[96];
      auto src = Cut(a, src_cut), dst = Cut(b, dst_cut);
      for (uint32_t so = 0; so < 96; so += 7) {
        for (uint32_t dof = 0; dof < 96; dof += 5) {
          uint32_t len = std::min(96 - so, 96 - dof);
          Fill(a, 96, 1);
          Fill(b, 96, 2);
          std::memcpy(flat, b, 96);
          std::memcpy(flat + dof, a + so, len);
          CHECK_EQ(CopySegments(src.data(), uint32_t(src.size()), so, dst.data(), uint32_t(dst.size()), dof, len), len);
          CHECK(std::memcmp(b, flat, 96) == 0);
        }
      }
      // Over one buffer, in one segment each: exactly memmove, in either direction.
      uint8_t m[96];
      auto one = Cut(m, {96});
      for (uint32_t so : {0u, 8u}) {
        uint32_t dof = 8 - so, len = 80;
        Fill(m, 96, 3);
        std::memcpy(flat, m, 96);
        std::memmove(flat + dof, flat + so, len);
        CopySegments(one.data(), 1, so, one.data(), 1, dof, len);
        CHECK(std::memcmp(m, flat, 96) == 0);
      }
      // Over one buffer, cut differently: defined (no UB, no overrun), whatever the bytes.
      auto s2 = Cut(m, src_cut), d2 = Cut(m, dst_cut);
      CHECK_EQ(CopySegments(s2.data(), uint32_t(s2.size()), 4, d2.data(), uint32_t(d2.size()), 0, 90), 90u);
    }
  }
}

}  // namespace

int main() {
  TestGatherAndScatterMatchAFlatBuffer();
  TestCopyBetweenChainsIsMemmove();
  return xsw::test::Finish("chain_copy_test");
}
