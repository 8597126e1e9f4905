// What a hostile or broken peer did to a shared ring, as one named code.
//
// The data plane never throws or logs per packet: the first violation on a
// device is returned to the caller, which counts it under ViolationName() and
// quarantines that device (docs/security.md).
#pragma once

#include <cstdint>

namespace xsw {

// The one table of violations: code, then its stable snake_case name. The
// names are stats counter keys and log words: never rename one. The
// TypeScript side's list (native/vring.ts VIOLATION_NAMES) is checked against
// this table by test/native-names.test.ts.
#define XSW_VIOLATIONS(X)                                                                                    \
  X(kNone, "none")                                                                                           \
  X(kAvailIdxJump, "avail_idx_jump")        /* avail->idx moved more than the ring size past what we consumed */ \
  X(kDescIndex, "desc_index")               /* a head or a next index >= ring size */                        \
  X(kChainLoop, "chain_loop")               /* a chain revisits one of its own descriptors */                \
  X(kChainTooLong, "chain_too_long")        /* more descriptors in one chain than the accepted maximum */    \
  X(kAddrOutsideRegion, "addr_outside_region") /* [addr, addr+len) is not wholly inside one mapped region */ \
  X(kLenOverflow, "len_overflow")           /* addr+len wraps, or one segment is longer than kMaxSegmentLen */ \
  X(kWriteToReadOnly, "write_to_readonly")  /* the device must write a read-only descriptor (no F_WRITE, or a read-only region) */ \
  X(kReadFromWriteOnly, "read_from_writeonly") /* the device must read a descriptor the guest marked device-writable */ \
  X(kOutAfterIn, "out_after_in")            /* a device-readable descriptor follows a device-writable one */ \
  X(kIndirect, "indirect_desc")             /* VRING_DESC_F_INDIRECT, which is never negotiated */ \
  X(kMemoryTruncated, "memory_truncated")   /* a vhost-user peer shrank the memory file under its mapping (SIGBUS guard) */

enum class Violation : uint8_t {
#define XSW_VIOLATION_CODE(code, name) code,
  XSW_VIOLATIONS(XSW_VIOLATION_CODE)
#undef XSW_VIOLATION_CODE
  kCount,  // number of codes, for counter arrays
};

constexpr uint32_t kViolationCount = static_cast<uint32_t>(Violation::kCount);

// The name of a violation ("none" for kNone); "unknown" out of range.
inline const char* ViolationName(Violation v) {
  static constexpr const char* kNames[] = {
#define XSW_VIOLATION_NAME(code, name) name,
      XSW_VIOLATIONS(XSW_VIOLATION_NAME)
#undef XSW_VIOLATION_NAME
  };
  static_assert(sizeof kNames / sizeof kNames[0] == kViolationCount, "one name per violation");
  const uint32_t i = static_cast<uint32_t>(v);
  return i < kViolationCount ? kNames[i] : "unknown";
}

}  // namespace xsw
