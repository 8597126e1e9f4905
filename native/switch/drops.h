// The switch's named drop and fault counters.
//
// One table for every reason a frame is dropped or a device is quarantined:
// the vring Violations come first (same numeric order, so a Violation indexes
// this table directly), then the switch's own per-frame reasons. The names
// are stable snake_case keys of the back end's JSON stats: never rename one.
#pragma once

#include <cstdint>

#include "shm/violation.h"

namespace xsw {

// The switch's own reasons: code, then name. The TypeScript side's list
// (native/switch.ts SWITCH_DROP_NAMES) is checked against the addon's
// dropNames by test/native-names.test.ts.
#define XSW_SWITCH_DROPS(X)                                                                                 \
  X(kMtuExceeded, "mtu_exceeded")       /* frame longer than mtu + 14 (+4 tagged, from the NIC) */          \
  X(kRunt, "runt")                      /* frame shorter than an Ethernet header (14 bytes) */              \
  X(kSpoofedSrcMac, "spoofed_src_mac")  /* a guest sent with a source MAC that is not its own */            \
  X(kSameDevice, "same_device")         /* vm2vm unicast addressed to the sending device itself */          \
  X(kDstDown, "dst_down")               /* the local destination is quarantined or dead */                  \
  X(kNoNic, "no_nic")                   /* the frame had to leave through the NIC and there is none */      \
  X(kNicTxFull, "nic_tx_full")          /* the NIC's transmit ring had no free slot */                      \
  X(kNicTxError, "nic_tx_error")        /* the NIC refused the frame (TAP write error) */                   \
  X(kRxNoBuffer, "rx_no_buffer")        /* the receiving guest had no RX buffer posted */                   \
  X(kRxTooBig, "rx_too_big")            /* the receiving guest's RX chain was smaller than the frame */     \
  X(kUnknownDst, "unknown_dst")         /* from the NIC: no device has this MAC + VLAN */                   \
  X(kGuestRxFailed, "guest_rx_failed")  /* from the NIC: the matching guest could not take it (its counters say why) */ \
  X(kGuestVlanTag, "guest_vlan_tag")    /* a guest frame carried its own 802.1Q/802.1ad/0x9100 tag */        \
  X(kNicTxShare, "nic_tx_share")        /* the guest had used its share of the NIC's free transmit slots (per loop) */ \
  X(kHandoffFull, "handoff_full")       /* --cores: the ring to the destination's data thread was full */

enum class Drop : uint8_t {
  // 0 .. kLastViolation mirror Violation (index 0, "none", is never counted).
  kLastViolation = kViolationCount - 1,
#define XSW_DROP_CODE(code, name) code,
  XSW_SWITCH_DROPS(XSW_DROP_CODE)
#undef XSW_DROP_CODE
  kCount,
};

constexpr uint32_t kDropCount = static_cast<uint32_t>(Drop::kCount);

inline constexpr uint32_t DropIndex(Drop d) { return static_cast<uint32_t>(d); }
inline constexpr uint32_t DropIndex(Violation v) { return static_cast<uint32_t>(v); }

// Stable snake_case name of counter i (a Violation's ViolationName for the
// first ones); "unknown" when out of range.
const char* DropName(uint32_t i);

}  // namespace xsw
