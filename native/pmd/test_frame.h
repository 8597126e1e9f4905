// Test frames for txonly and rxonly --verify: a sender stamps each frame with
// a sequence number and a checksum so a receiver anywhere (the other guest,
// the back end's tests, frontend/frame.ts) can prove order and integrity.
//
// Layout (multi-byte fields big-endian):
//   0  dst MAC (6)   6  src MAC (6)   12  ethertype 0x88B5 (local experimental)
//   14 magic u32 "XSWF"   18 sequence u64   26 frame length u32
//   30 pattern bytes: byte k (k from 0) = (seq * 7 + k) & 0xff
//   len-4 CRC-32 (IEEE) of bytes [14, len-4)
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace xsw {

constexpr uint16_t kTestEtherType = 0x88B5;
constexpr uint32_t kTestFrameMagic = 0x58535746;  // "XSWF"
constexpr uint32_t kTestFrameMinLen = 34;         // header + magic + seq + len + crc
constexpr uint32_t kTestFramePayloadOffset = 14;
constexpr uint32_t kTestFramePatternOffset = 30;

// CRC-32 (IEEE 802.3, reflected, as zlib's crc32), continuing from `crc`
// (0 to start).
uint32_t Crc32(const uint8_t* data, size_t len, uint32_t crc = 0);

// Writes a len-byte test frame (kTestFrameMinLen <= len) at out.
void BuildTestFrame(uint8_t* out, uint32_t len, const uint8_t dst[6], const uint8_t src[6], uint64_t seq);

// The CRCs of one frame length's test frames in nine table lookups instead
// of a pass over the frame (a third of a 64-byte txonly sender's CPU went to
// Crc32). The checksummed bytes of two such frames differ only in the
// sequence number and the pattern, which repeats every 256 sequence numbers,
// and a CRC over a fixed length is affine in its message: CRC(frame) =
// base[seq mod 256] ^ one entry per sequence byte. Built once per engine.
class TestFrameCrc {
 public:
  explicit TestFrameCrc(uint32_t len);  // kTestFrameMinLen <= len; allocates 9 KiB of tables
  uint32_t len() const { return len_; }
  uint32_t operator()(uint64_t seq) const;

 private:
  uint32_t len_;
  std::unique_ptr<uint32_t[]> base_;      // [256]: sequence field 0, the pattern of seq mod 256
  std::unique_ptr<uint32_t[]> seq_byte_;  // [8][256]: what byte i of the sequence adds
};

// The same frame as above, its CRC from crc (crc.len() == len).
void BuildTestFrame(uint8_t* out, uint32_t len, const uint8_t dst[6], const uint8_t src[6], uint64_t seq,
                    const TestFrameCrc& crc);

enum class FrameCheck : uint8_t {
  kOk,
  kNotTestFrame,  // another ethertype, or shorter than an Ethernet header
  kTooShort,      // the test ethertype but shorter than kTestFrameMinLen
  kBadMagic,
  kBadLength,     // the stamped length differs from the received length
  kBadChecksum,   // the CRC does not match (a corrupted byte)
};

// Checks a received frame; on kOk and on kBadChecksum sets *seq.
FrameCheck CheckTestFrame(const uint8_t* frame, uint32_t len, uint64_t* seq);

}  // namespace xsw
