// Completing a checksum the sender left blank (netif's NETTXF_csum_blank):
// TCP or UDP over IPv4 or IPv6 (no extension headers), computed from scratch
// over the frame as it is in dom0-private memory.
#pragma once

#include <cstdint>

namespace xsw::netif {

// Fills in the L4 checksum of an untagged Ethernet frame. False (frame
// untouched) when it is not TCP/UDP over IPv4/IPv6, is an IPv4 fragment, or
// its IP length does not fit the frame.
bool CompleteChecksum(uint8_t* frame, uint32_t len);

// The Internet checksum's folded one's-complement sum (for tests too).
uint16_t FoldSum(uint32_t sum);
uint32_t AddBytes(uint32_t sum, const uint8_t* p, uint32_t len);

}  // namespace xsw::netif
