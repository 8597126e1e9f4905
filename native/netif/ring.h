// Xen's netif protocol as it sits in shared memory (public/io/netif.h and
// public/io/ring.h of Xen 4.17, an MIT-licensed contract; written here from
// the documented layouts, checked by static_asserts and native/test/).
//
// Each ring is one granted page: a 64-byte header, then a power-of-two array
// of slots sized to fill the rest. A request and its response share a slot.
#pragma once

#include <cstddef>
#include <cstdint>

#include "abi/abi.h"

namespace xsw::netif {

struct SringHeader {
  uint32_t req_prod, req_event;  // written by the front end
  uint32_t rsp_prod, rsp_event;  // rsp_prod by the back end, rsp_event by the front end
  uint8_t pvt[4];
  uint8_t pad[44];
};
static_assert(sizeof(SringHeader) == 64, "ring.h's shared ring header is 64 bytes");

struct TxRequest {
  uint32_t gref;
  uint16_t offset;
  uint16_t flags;  // NETTXF_*
  uint16_t id;
  uint16_t size;  // first slot of a frame: the whole frame; others: this slot
};
struct TxResponse {
  uint16_t id;
  int16_t status;  // NETIF_RSP_*
};
struct RxRequest {
  uint16_t id;
  uint16_t pad;
  uint32_t gref;
};
struct RxResponse {
  uint16_t id;
  uint16_t offset;
  uint16_t flags;  // NETRXF_*
  int16_t status;  // > 0: bytes; < 0: NETIF_RSP_*
};
static_assert(sizeof(TxRequest) == 12 && sizeof(TxResponse) == 4, "netif tx slots");
static_assert(sizeof(RxRequest) == 8 && sizeof(RxResponse) == 8, "netif rx slots");

constexpr uint16_t NETTXF_csum_blank = 1u << 0;
constexpr uint16_t NETTXF_data_validated = 1u << 1;
constexpr uint16_t NETTXF_more_data = 1u << 2;
constexpr uint16_t NETTXF_extra_info = 1u << 3;

constexpr uint16_t NETRXF_data_validated = 1u << 0;
constexpr uint16_t NETRXF_csum_blank = 1u << 1;
constexpr uint16_t NETRXF_more_data = 1u << 2;

constexpr int16_t NETIF_RSP_DROPPED = -2;
constexpr int16_t NETIF_RSP_ERROR = -1;
constexpr int16_t NETIF_RSP_OKAY = 0;
constexpr int16_t NETIF_RSP_NULL = 1;

// XEN_NETIF_NR_SLOTS_MIN: the most slots a back end must accept for one frame.
constexpr uint32_t kMaxTxSlots = 18;

// __RD32-style: the largest power of two of slots that fits after the header.
constexpr uint32_t RingSlots(size_t slot_bytes) {
  uint32_t n = uint32_t((kPageSize - sizeof(SringHeader)) / slot_bytes);
  uint32_t p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}
constexpr uint32_t kTxRingSize = RingSlots(sizeof(TxRequest));  // union of request and response
constexpr uint32_t kRxRingSize = RingSlots(sizeof(RxRequest));
static_assert(kTxRingSize == 256 && kRxRingSize == 256, "one-page netif rings hold 256 slots");

}  // namespace xsw::netif
