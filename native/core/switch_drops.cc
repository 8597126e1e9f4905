#include "core/switch_drops.h"

namespace xsw {

const char* DropName(uint32_t i) {
  if (i < static_cast<uint32_t>(Violation::kCount)) return ViolationName(static_cast<Violation>(i));
  switch (static_cast<Drop>(i)) {
    case Drop::kMtuExceeded: return "mtu_exceeded";
    case Drop::kRunt: return "runt";
    case Drop::kSpoofedSrcMac: return "spoofed_src_mac";
    case Drop::kSameDevice: return "same_device";
    case Drop::kDstDown: return "dst_down";
    case Drop::kNoNic: return "no_nic";
    case Drop::kNicTxFull: return "nic_tx_full";
    case Drop::kNicTxError: return "nic_tx_error";
    case Drop::kRxNoBuffer: return "rx_no_buffer";
    case Drop::kRxTooBig: return "rx_too_big";
    case Drop::kUnknownDst: return "unknown_dst";
    case Drop::kGuestRxFailed: return "guest_rx_failed";
    case Drop::kCount: break;
  }
  return "unknown";
}

}  // namespace xsw
