// Copies between a flat buffer and a descriptor chain's segments (a guest
// buffer split across several descriptors, e.g. a 9000-byte jumbo frame in
// 2 KiB mbufs). Offsets count bytes from the start of the chain. Data path:
// no allocation, no checks beyond the segment lengths: the caller has
// already checked that offset + len fits (out_len / in_len of the Chain).
//
// Each function starts with the common case inline - the bytes lie in the
// first segment - so that a small fixed-size copy (an Ethernet header)
// compiles to a few moves; the general walk over the segments is out of line.
#pragma once

#include <cstdint>
#include <cstring>

#include "shm/vring.h"

namespace xsw {

// The general cases (chain_copy.cc); use the functions below.
uint32_t GatherFromChain(const Segment* seg, uint32_t nseg, uint32_t offset, uint8_t* out, uint32_t len);
uint32_t ScatterToChain(const Segment* seg, uint32_t nseg, uint32_t offset, const uint8_t* in, uint32_t len);
uint32_t CopyChains(const Segment* src, uint32_t src_n, uint32_t src_off, const Segment* dst, uint32_t dst_n,
                    uint32_t dst_off, uint32_t len);

// True when [offset, offset + len) lies in the first segment.
inline bool InFirstSegment(const Segment* seg, uint32_t nseg, uint32_t offset, uint32_t len) {
  return nseg != 0 && offset <= seg[0].len && len <= seg[0].len - offset;
}

// Copies len bytes starting at chain byte `offset` into out. Returns the
// bytes copied (less than len only if the segments end first).
inline uint32_t GatherFromSegments(const Segment* seg, uint32_t nseg, uint32_t offset, uint8_t* out, uint32_t len) {
  if (!InFirstSegment(seg, nseg, offset, len)) return GatherFromChain(seg, nseg, offset, out, len);
  std::memcpy(out, seg[0].hva + offset, len);
  return len;
}

// Copies len bytes from in to chain byte `offset` onwards. Returns the bytes copied.
inline uint32_t ScatterToSegments(const Segment* seg, uint32_t nseg, uint32_t offset, const uint8_t* in,
                                  uint32_t len) {
  if (!InFirstSegment(seg, nseg, offset, len)) return ScatterToChain(seg, nseg, offset, in, len);
  std::memcpy(seg[0].hva + offset, in, len);
  return len;
}

// Copies len bytes from src chain byte src_off to dst chain byte dst_off.
// Returns the bytes copied. The two chains may overlap: the devices of one
// guest share its mempools, so a guest can post an RX buffer over the TX
// buffer it sends from. Each piece is moved with memmove (as cheap as memcpy
// for frame-sized copies), so the result is defined - the guest garbles only
// its own bytes - where memcpy would be undefined behaviour.
inline uint32_t CopySegments(const Segment* src, uint32_t src_n, uint32_t src_off, const Segment* dst,
                             uint32_t dst_n, uint32_t dst_off, uint32_t len) {
  if (!InFirstSegment(src, src_n, src_off, len) || !InFirstSegment(dst, dst_n, dst_off, len)) {
    return CopyChains(src, src_n, src_off, dst, dst_n, dst_off, len);
  }
  std::memmove(dst[0].hva + dst_off, src[0].hva + src_off, len);
  return len;
}

}  // namespace xsw
