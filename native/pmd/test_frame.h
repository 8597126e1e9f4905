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
