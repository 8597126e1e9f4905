// Ethernet helpers for the switch: MACs as 48-bit integers, 802.1Q tags.
// Header-only and allocation-free, so the data plane can use every function.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "abi/abi.h"

namespace xsw {

constexpr uint16_t kEthPQinQ = 0x88A8;  // 802.1ad outer tag, accepted like 0x8100 from the NIC
constexpr uint16_t kEthPQinQOld = 0x9100;  // the pre-802.1ad outer tag some switches still honour
constexpr uint16_t kVlanIdMask = 0x0FFF;
constexpr uint16_t kMaxVlanId = 4095;
constexpr uint32_t kVlanCount = 4096;  // VLAN ids 0..4095 (0: untagged)

// The six bytes at p as a 48-bit number, first byte most significant
// (00:00:00:00:00:11 is 0x11).
inline uint64_t MacAt(const uint8_t* p) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  // Two loads and two byte swaps instead of six loads and shifts (per frame, twice).
  uint16_t hi;
  uint32_t lo;
  std::memcpy(&hi, p, 2);
  std::memcpy(&lo, p + 2, 4);
  return uint64_t(__builtin_bswap16(hi)) << 32 | __builtin_bswap32(lo);
#else
  uint64_t m = 0;
  for (int i = 0; i < 6; ++i) m = (m << 8) | p[i];
  return m;
#endif
}

inline void PutMac(uint8_t* p, uint64_t mac) {
  for (int i = 5; i >= 0; --i) {
    p[i] = uint8_t(mac);
    mac >>= 8;
  }
}

// Group bit (broadcast and multicast): the least significant bit of the first byte.
inline bool MacIsGroup(uint64_t mac) { return (mac >> 40) & 1; }

inline uint16_t Be16At(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
inline void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}

inline bool IsVlanTpid(uint16_t ethertype) { return ethertype == kEthPVlan || ethertype == kEthPQinQ; }
// Any tag protocol ID a switch on the wire may honour: what a guest frame must not start with.
inline bool IsAnyTagTpid(uint16_t ethertype) { return IsVlanTpid(ethertype) || ethertype == kEthPQinQOld; }

// Parses "xx:xx:xx:xx:xx:xx" (hex digits, either case, exactly 17 chars).
std::optional<uint64_t> ParseMac(const std::string& text);
// "xx:xx:xx:xx:xx:xx", lower case.
std::string FormatMac(uint64_t mac);

}  // namespace xsw
