// Test frames: the CRC is zlib's, a built frame checks out with its sequence
// number, and every kind of damage is named.
#include <cstring>
#include <vector>

#include "pmd/test_frame.h"
#include "pmd_test_util.h"

using namespace xsw;
using namespace pmdtest;

static const uint8_t kDst[6] = {0, 0, 0, 0, 0, 0x22};
static const uint8_t kSrc[6] = {0, 0, 0, 0, 0, 0x11};

static void CrcMatchesTheStandardCheckValue() {
  const char* s = "123456789";
  CHECK_EQ(Crc32(reinterpret_cast<const uint8_t*>(s), 9), 0xCBF43926u);
  // Continuing a CRC over two halves equals one pass.
  CHECK_EQ(Crc32(reinterpret_cast<const uint8_t*>(s) + 4, 5, Crc32(reinterpret_cast<const uint8_t*>(s), 4)),
           0xCBF43926u);
}

// The bit-at-a-time definition of CRC-32, as the reference for the fast one.
static uint32_t ReferenceCrc32(const uint8_t* p, size_t n) {
  uint32_t c = ~0u;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

static void CrcMatchesTheReferenceAtEveryLengthAndAlignment() {
  std::vector<uint8_t> buf(300);
  uint32_t x = 12345;
  for (auto& b : buf) b = uint8_t((x = x * 1103515245u + 12345u) >> 16);
  for (size_t off = 0; off < 8; off++) {
    for (size_t len = 0; len + off <= buf.size(); len++) CHECK_EQ(Crc32(buf.data() + off, len), ReferenceCrc32(buf.data() + off, len));
  }
}

static void BuiltFramesCheckOutWithTheirSequence() {
  for (uint32_t len : {kTestFrameMinLen, 60u, 64u, 1514u, 9018u}) {
    std::vector<uint8_t> f(len);
    BuildTestFrame(f.data(), len, kDst, kSrc, 1000 + len);
    uint64_t seq = 0;
    CHECK(CheckTestFrame(f.data(), len, &seq) == FrameCheck::kOk);
    CHECK_EQ(seq, 1000 + len);
    CHECK(std::memcmp(f.data(), kDst, 6) == 0 && std::memcmp(f.data() + 6, kSrc, 6) == 0);
    CHECK_EQ(f[12], 0x88);
    CHECK_EQ(f[13], 0xB5);
  }
}

// Every byte is where the layout in test_frame.h puts it: the fields
// big-endian and the pattern (seq * 7 + k) & 0xff, for lengths whose pattern
// wraps past 255 many times and sequence numbers in all 256 pattern phases.
static void BuiltFramesFollowTheLayout() {
  for (uint32_t len : {kTestFrameMinLen, 35u, 64u, 300u, 1514u, 9018u}) {
    std::vector<uint8_t> f(len);
    for (uint64_t seq : {0ull, 1ull, 37ull, 255ull, 256ull, 0x0102030405060708ull, ~0ull}) {
      BuildTestFrame(f.data(), len, kDst, kSrc, seq);
      CHECK(std::memcmp(f.data(), kDst, 6) == 0 && std::memcmp(f.data() + 6, kSrc, 6) == 0);
      const uint8_t head[] = {0x88, 0xB5, 'X', 'S', 'W', 'F'};
      CHECK(std::memcmp(f.data() + 12, head, sizeof head) == 0);
      for (uint32_t i = 0; i < 8; i++) CHECK_EQ(f[18 + i], uint8_t(seq >> (56 - 8 * i)));
      for (uint32_t i = 0; i < 4; i++) CHECK_EQ(f[26 + i], uint8_t(len >> (24 - 8 * i)));
      uint32_t bad = 0;
      for (uint32_t k = 0; 30 + k < len - 4; k++) bad += f[30 + k] != uint8_t(seq * 7 + k);
      CHECK_EQ(bad, 0u);
      const uint32_t crc = Crc32(f.data() + 14, len - 18);
      for (uint32_t i = 0; i < 4; i++) CHECK_EQ(f[len - 4 + i], uint8_t(crc >> (24 - 8 * i)));
    }
  }
}

// The txonly sender's table CRC equals a full pass, for every length class
// and sequence numbers across all 8 bytes and the pattern's 256 phases.
static void TableCrcMatchesAFullPass() {
  for (uint32_t len : {kTestFrameMinLen, 35u, 60u, 64u, 65u, 1514u, 9018u}) {
    TestFrameCrc crc(len);
    CHECK_EQ(crc.len(), len);
    std::vector<uint8_t> a(len), b(len);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (uint32_t i = 0; i < 600; i++) {
      const uint64_t seq = i < 300 ? i : (x = x * 6364136223846793005ull + 1442695040888963407ull);
      BuildTestFrame(a.data(), len, kDst, kSrc, seq);
      BuildTestFrame(b.data(), len, kDst, kSrc, seq, crc);
      CHECK(a == b);
      uint64_t got = 0;
      CHECK(CheckTestFrame(b.data(), len, &got) == FrameCheck::kOk && got == seq);
    }
  }
}

static void DamageIsNamed() {
  std::vector<uint8_t> f(128);
  BuildTestFrame(f.data(), 128, kDst, kSrc, 7);
  uint64_t seq = 0;
  for (uint32_t at = 14; at < 128; at += 9) {  // any flipped byte past the MACs is caught
    std::vector<uint8_t> g = f;
    g[at] ^= 0x40;
    CHECK(CheckTestFrame(g.data(), 128, &seq) != FrameCheck::kOk);
  }
  std::vector<uint8_t> g = f;
  g[100] ^= 1;
  CHECK(CheckTestFrame(g.data(), 128, &seq) == FrameCheck::kBadChecksum);
  CHECK(CheckTestFrame(f.data(), 127, &seq) == FrameCheck::kBadLength);  // truncated
  g = f;
  g[14] = 0;
  CHECK(CheckTestFrame(g.data(), 128, &seq) == FrameCheck::kBadMagic);
  g = f;
  g[13] = 0x00;
  CHECK(CheckTestFrame(g.data(), 128, &seq) == FrameCheck::kNotTestFrame);
  CHECK(CheckTestFrame(f.data(), 20, &seq) == FrameCheck::kTooShort);
  CHECK(CheckTestFrame(f.data(), 10, &seq) == FrameCheck::kNotTestFrame);
}

int main() {
  TableCrcMatchesAFullPass();
  CrcMatchesTheStandardCheckValue();
  CrcMatchesTheReferenceAtEveryLengthAndAlignment();
  BuiltFramesCheckOutWithTheirSequence();
  BuiltFramesFollowTheLayout();
  DamageIsNamed();
  return xsw::test::Finish("test_frame_test");
}
