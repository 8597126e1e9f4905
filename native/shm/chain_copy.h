// Copies between a flat buffer and a descriptor chain's segments (a guest
// buffer split across several descriptors, e.g. a 9000-byte jumbo frame in
// 2 KiB mbufs). Offsets count bytes from the start of the chain. Data path:
// no allocation, no checks beyond the segment lengths: the caller has
// already checked that offset + len fits (out_len / in_len of the Chain).
#pragma once

#include <cstdint>

#include "shm/vring.h"

namespace xsw {

// Copies len bytes starting at chain byte `offset` into out. Returns the
// bytes copied (less than len only if the segments end first).
uint32_t GatherFromSegments(const Segment* seg, uint32_t nseg, uint32_t offset, uint8_t* out, uint32_t len);

// Copies len bytes from in to chain byte `offset` onwards. Returns the bytes copied.
uint32_t ScatterToSegments(const Segment* seg, uint32_t nseg, uint32_t offset, const uint8_t* in, uint32_t len);

// Copies len bytes from src chain byte src_off to dst chain byte dst_off.
// Returns the bytes copied. The two chains may overlap: the devices of one
// guest share its mempools, so a guest can post an RX buffer over the TX
// buffer it sends from. Each piece is moved with memmove (as cheap as memcpy
// for frame-sized copies), so the result is defined - the guest garbles only
// its own bytes - where memcpy would be undefined behaviour.
uint32_t CopySegments(const Segment* src, uint32_t src_n, uint32_t src_off, const Segment* dst, uint32_t dst_n,
                      uint32_t dst_off, uint32_t len);

}  // namespace xsw
