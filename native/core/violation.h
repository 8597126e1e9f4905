// What a hostile or broken peer did to a shared ring, as one named code.
//
// The data plane never throws or logs per packet: the first violation on a
// device is returned to the caller, which counts it under ViolationName() and
// quarantines that device (DESIGN.md section 10).
#pragma once

#include <cstdint>

namespace xsw {

enum class Violation : uint8_t {
  kNone = 0,
  kAvailIdxJump,      // avail->idx moved more than the ring size past what we consumed
  kDescIndex,         // a head or a next index >= ring size
  kChainLoop,         // a chain revisits one of its own descriptors
  kChainTooLong,      // more descriptors in one chain than the accepted maximum
  kAddrOutsideRegion, // [addr, addr+len) is not wholly inside one mapped region
  kLenOverflow,       // addr+len wraps, or one segment is longer than kMaxSegmentLen
  kWriteToReadOnly,   // the device must write a descriptor that is read-only (no F_WRITE, or read-only region)
  kReadFromWriteOnly, // the device must read a descriptor the guest marked device-writable
  kOutAfterIn,        // a device-readable descriptor follows a device-writable one in a chain
  kIndirect,          // VRING_DESC_F_INDIRECT, which is never negotiated
  kCount,             // number of codes, for counter arrays
};

// Stable snake_case name ("avail_idx_jump", "desc_index", "chain_loop",
// "chain_too_long", "addr_outside_region", "len_overflow", "write_to_readonly",
// "read_from_writeonly", "out_after_in", "indirect_desc"; "none" for kNone).
// These names are stats counter keys and log words: never rename one.
// An out-of-range value returns "unknown".
inline const char* ViolationName(Violation v) {
  switch (v) {
    case Violation::kNone: return "none";
    case Violation::kAvailIdxJump: return "avail_idx_jump";
    case Violation::kDescIndex: return "desc_index";
    case Violation::kChainLoop: return "chain_loop";
    case Violation::kChainTooLong: return "chain_too_long";
    case Violation::kAddrOutsideRegion: return "addr_outside_region";
    case Violation::kLenOverflow: return "len_overflow";
    case Violation::kWriteToReadOnly: return "write_to_readonly";
    case Violation::kReadFromWriteOnly: return "read_from_writeonly";
    case Violation::kOutAfterIn: return "out_after_in";
    case Violation::kIndirect: return "indirect_desc";
    case Violation::kCount: break;
  }
  return "unknown";
}

}  // namespace xsw
