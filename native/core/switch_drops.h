// The switch's named drop and fault counters.
//
// One table for every reason a frame is dropped or a device is quarantined:
// the vring Violations come first (same numeric order, so a Violation indexes
// this table directly), then the switch's own per-frame reasons. The names
// are stable snake_case keys of the back end's JSON stats: never rename one.
#pragma once

#include <cstdint>

#include "core/violation.h"

namespace xsw {

enum class Drop : uint8_t {
  // 0 .. Violation::kCount-1 mirror Violation (index 0, "none", is never counted).
  kMtuExceeded = static_cast<uint8_t>(Violation::kCount),  // frame longer than mtu + 14 (+4 tagged, from the NIC)
  kRunt,             // frame shorter than an Ethernet header (14 bytes)
  kSpoofedSrcMac,    // a guest sent with a source MAC that is not its own
  kSameDevice,       // vm2vm unicast addressed to the sending device itself
  kDstDown,          // the local destination is quarantined or dead
  kNoNic,            // the frame had to leave through the NIC and there is none
  kNicTxFull,        // the NIC's transmit ring had no free slot
  kNicTxError,       // the NIC refused the frame (TAP write error)
  kRxNoBuffer,       // the receiving guest had no RX buffer posted
  kRxTooBig,         // the receiving guest's RX chain was smaller than the frame
  kUnknownDst,       // from the NIC: no device has this MAC + VLAN
  kGuestRxFailed,    // from the NIC: the matching guest could not take it (its counters say why)
  kCount,
};

constexpr uint32_t kDropCount = static_cast<uint32_t>(Drop::kCount);

inline constexpr uint32_t DropIndex(Drop d) { return static_cast<uint32_t>(d); }
inline constexpr uint32_t DropIndex(Violation v) { return static_cast<uint32_t>(v); }

// Stable snake_case name of counter i (a Violation's ViolationName for the
// first ones); "unknown" when out of range.
const char* DropName(uint32_t i);

}  // namespace xsw
