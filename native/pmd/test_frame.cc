#include "pmd/test_frame.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "abi/abi.h"

namespace xsw {
namespace {

// CRC-32 tables for slicing by 8: kCrc[0] is the classic byte table; kCrc[s]
// advances a byte's contribution by s more bytes. Eight bytes per step, not
// one: the txonly sender and --verify checksum every frame.
using CrcTables = std::array<std::array<uint32_t, 256>, 8>;
constexpr CrcTables MakeCrcTables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++) {
    for (int s = 1; s < 8; s++) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
  return t;
}
constexpr CrcTables kCrc = MakeCrcTables();

void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the byte swaps and slice-by-8 below assume little-endian");
void PutBe32(uint8_t* p, uint32_t v) {
  v = __builtin_bswap32(v);
  std::memcpy(p, &v, 4);
}
void PutBe64(uint8_t* p, uint64_t v) {
  v = __builtin_bswap64(v);
  std::memcpy(p, &v, 8);
}
uint32_t GetBe32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
uint64_t GetBe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

}  // namespace

uint32_t Crc32(const uint8_t* data, size_t len, uint32_t crc) {
  crc = ~crc;
  for (; len >= 8; data += 8, len -= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, data, 4);
    std::memcpy(&hi, data + 4, 4);
    lo ^= crc;
    crc = kCrc[7][lo & 0xff] ^ kCrc[6][(lo >> 8) & 0xff] ^ kCrc[5][(lo >> 16) & 0xff] ^ kCrc[4][lo >> 24] ^
          kCrc[3][hi & 0xff] ^ kCrc[2][(hi >> 8) & 0xff] ^ kCrc[1][(hi >> 16) & 0xff] ^ kCrc[0][hi >> 24];
  }
  for (; len != 0; ++data, --len) crc = kCrc[0][(crc ^ *data) & 0xff] ^ (crc >> 8);
  return ~crc;
}

namespace {

// 0, 1, ..., 255, 0, 1, ...: the pattern of any start byte is one copy out of
// it (a byte loop was a sixth of both guests' per-frame instructions).
constexpr uint32_t kRampLen = 256 + kMaxFrameLen;
using Ramp = std::array<uint8_t, kRampLen>;
constexpr Ramp MakeRamp() {
  Ramp r{};
  for (uint32_t i = 0; i < kRampLen; i++) r[i] = uint8_t(i);
  return r;
}
constexpr Ramp kRamp = MakeRamp();

// Everything but the CRC.
void BuildTestFrameBody(uint8_t* out, uint32_t len, const uint8_t dst[6], const uint8_t src[6], uint64_t seq) {
  std::memcpy(out, dst, 6);
  std::memcpy(out + 6, src, 6);
  PutBe16(out + 12, kTestEtherType);
  PutBe32(out + 14, kTestFrameMagic);
  PutBe64(out + 18, seq);
  PutBe32(out + 26, len);
  uint8_t* p = out + kTestFramePatternOffset;
  uint32_t left = len - 4 - kTestFramePatternOffset;
  for (uint32_t start = uint8_t(seq * 7); left != 0;) {  // once, unless len > kMaxFrameLen
    const uint32_t take = std::min(left, kRampLen - start);
    std::memcpy(p, kRamp.data() + start, take);
    p += take;
    left -= take;
    start = uint8_t(start + take);
  }
}

}  // namespace

void BuildTestFrame(uint8_t* out, uint32_t len, const uint8_t dst[6], const uint8_t src[6], uint64_t seq) {
  BuildTestFrameBody(out, len, dst, src, seq);
  PutBe32(out + len - 4, Crc32(out + kTestFramePayloadOffset, len - 4 - kTestFramePayloadOffset));
}

void BuildTestFrame(uint8_t* out, uint32_t len, const uint8_t dst[6], const uint8_t src[6], uint64_t seq,
                    const TestFrameCrc& crc) {
  BuildTestFrameBody(out, len, dst, src, seq);
  PutBe32(out + len - 4, crc(seq));
}

TestFrameCrc::TestFrameCrc(uint32_t len)
    : len_(len), base_(new uint32_t[256]), seq_byte_(new uint32_t[8 * 256]) {
  const uint32_t n = len - 4 - kTestFramePayloadOffset;  // the checksummed bytes
  std::unique_ptr<uint8_t[]> frame(new uint8_t[len]);
  const uint8_t mac[6] = {};
  for (uint32_t m = 0; m < 256; m++) {  // sequence m with its 8 bytes zeroed: the pattern of m, the rest
    BuildTestFrameBody(frame.get(), len, mac, mac, m);
    std::memset(frame.get() + 18, 0, 8);
    base_[m] = Crc32(frame.get() + kTestFramePayloadOffset, n);
  }
  // CRC(a ^ b) = CRC(a) ^ CRC(b) ^ CRC(zeros) for messages of one length:
  // each set bit of a sequence byte adds CRC(that bit alone) ^ CRC(zeros).
  std::memset(frame.get(), 0, len);
  const uint32_t zeros = Crc32(frame.get() + kTestFramePayloadOffset, n);
  for (uint32_t i = 0; i < 8; i++) {
    uint32_t bit[8];
    for (uint32_t j = 0; j < 8; j++) {
      frame[18 + i] = uint8_t(1u << j);
      bit[j] = Crc32(frame.get() + kTestFramePayloadOffset, n) ^ zeros;
    }
    frame[18 + i] = 0;
    for (uint32_t b = 0; b < 256; b++) {
      uint32_t v = 0;
      for (uint32_t j = 0; j < 8; j++) {
        if (b & (1u << j)) v ^= bit[j];
      }
      seq_byte_[i * 256 + b] = v;
    }
  }
}

uint32_t TestFrameCrc::operator()(uint64_t seq) const {
  uint32_t crc = base_[seq & 0xff];
  for (uint32_t i = 0; i < 8; i++) crc ^= seq_byte_[i * 256 + uint8_t(seq >> (56 - 8 * i))];  // big-endian byte i
  return crc;
}

FrameCheck CheckTestFrame(const uint8_t* frame, uint32_t len, uint64_t* seq) {
  if (len < 14 || frame[12] != uint8_t(kTestEtherType >> 8) || frame[13] != uint8_t(kTestEtherType & 0xff)) {
    return FrameCheck::kNotTestFrame;
  }
  if (len < kTestFrameMinLen) return FrameCheck::kTooShort;
  if (GetBe32(frame + 14) != kTestFrameMagic) return FrameCheck::kBadMagic;
  if (GetBe32(frame + 26) != len) return FrameCheck::kBadLength;
  *seq = GetBe64(frame + 18);
  const uint32_t crc = Crc32(frame + kTestFramePayloadOffset, len - 4 - kTestFramePayloadOffset);
  if (crc != GetBe32(frame + len - 4)) return FrameCheck::kBadChecksum;
  return FrameCheck::kOk;
}

}  // namespace xsw
