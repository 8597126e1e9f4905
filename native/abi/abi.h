// xsw shared-memory ABI: every layout that crosses a domain boundary.
//
// Guest and dom0 (and the simulated hypervisor) agree on these bytes and on
// nothing else. Sizes and offsets are asserted below and checked again from
// TypeScript (test/abi.test.ts) against native/abi.ts.
#pragma once

#include <cstddef>
#include <cstdint>

namespace xsw {

constexpr uint32_t kPageSize = 4096;
constexpr uint32_t kPageShift = 12;

// ---------------------------------------------------------------------------
// Xen grant table, version 1 (xen/include/public/grant_table.h).
using domid_t = uint16_t;
using grant_ref_t = uint32_t;

struct GrantEntryV1 {
  uint16_t flags;   // GTF_*
  domid_t domid;    // the domain allowed to map this frame
  uint32_t frame;   // the granting domain's frame number
};

constexpr uint16_t GTF_invalid = 0;
constexpr uint16_t GTF_permit_access = 1;
constexpr uint16_t GTF_type_mask = 3;
constexpr uint16_t GTF_readonly = 1u << 2;
constexpr uint16_t GTF_reading = 1u << 3;
constexpr uint16_t GTF_writing = 1u << 4;

// Refs 0..7 are reserved for the toolstack (GNTTAB_NR_RESERVED_ENTRIES).
constexpr grant_ref_t kGnttabReservedEntries = 8;
constexpr domid_t kDom0 = 0;
constexpr domid_t kDomidFirstReserved = 0x7FF0;  // DOMID_FIRST_RESERVED

// ---------------------------------------------------------------------------
// Gref-list page: packed (gref, pfn) pairs, 512 per page, ending at the first
// entry whose gref, read as a signed 32-bit value, is <= 0 (0 or -1).
struct GrefListItem {
  uint32_t gref;
  uint32_t pfn;  // informational only; never trusted by the back end
};
constexpr uint32_t kGrefItemsPerPage = kPageSize / sizeof(GrefListItem);
// DPDK's back end accepted at most 64 list pages per key: 64 * 512 data pages.
constexpr uint32_t kMaxGrefListPages = 64;
constexpr uint32_t kMaxGrefListEntries = kMaxGrefListPages * kGrefItemsPerPage;

// ---------------------------------------------------------------------------
// Legacy split virtqueue (virtio 0.9.5 / "legacy" layout), little-endian.
struct VringDesc {
  uint64_t addr;   // guest virtual address (gva) of the buffer
  uint32_t len;
  uint16_t flags;  // VRING_DESC_F_*
  uint16_t next;
};
constexpr uint16_t VRING_DESC_F_NEXT = 1;
constexpr uint16_t VRING_DESC_F_WRITE = 2;
constexpr uint16_t VRING_DESC_F_INDIRECT = 4;
constexpr uint16_t VRING_AVAIL_F_NO_INTERRUPT = 1;  // the driver needs no call after used entries
constexpr uint16_t VRING_USED_F_NO_NOTIFY = 1;      // the device needs no kick after avail entries

struct VringAvail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[];  // [num], then uint16_t used_event
};

struct VringUsedElem {
  uint32_t id;
  uint32_t len;
};

struct VringUsed {
  uint16_t flags;
  uint16_t idx;
  VringUsedElem ring[];  // [num], then uint16_t avail_event
};

constexpr uint32_t kVringAlign = 4096;
constexpr uint32_t kDefaultRingSize = 256;
constexpr uint32_t kMaxRingSize = 32768;  // virtio's limit for a split ring

constexpr uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

constexpr uint64_t VringAvailOffset(uint32_t num) { return uint64_t(num) * sizeof(VringDesc); }
constexpr uint64_t VringUsedOffset(uint32_t num, uint32_t align = kVringAlign) {
  return AlignUp(VringAvailOffset(num) + 2 * sizeof(uint16_t) + uint64_t(num) * sizeof(uint16_t) +
                     sizeof(uint16_t),
                 align);
}
// vring_size() of <linux/virtio_ring.h>.
constexpr uint64_t VringSize(uint32_t num, uint32_t align = kVringAlign) {
  return VringUsedOffset(num, align) + 2 * sizeof(uint16_t) + uint64_t(num) * sizeof(VringUsedElem) +
         sizeof(uint16_t);
}
constexpr uint32_t VringPages(uint32_t num) {
  return uint32_t(AlignUp(VringSize(num), kPageSize) / kPageSize);
}

// ---------------------------------------------------------------------------
// virtio_net_hdr (legacy, no mergeable buffers): 10 bytes before each packet.
struct VirtioNetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
constexpr uint32_t kVirtioNetHdrLen = 10;
// With VIRTIO_F_VERSION_1 (vhost-user peers) the header has a num_buffers
// field too: 12 bytes, num_buffers = 1 without mergeable buffers.
constexpr uint32_t kVirtioNetHdrLenV1 = 12;

// ---------------------------------------------------------------------------
// Vring flag page: byte 0 is 0xA5 while the device lives; the granting
// kernel (unmap-notify, CLEAR_BYTE) sets it to 0 when the guest process dies.
constexpr uint8_t kVringFlagLive = 0xA5;
constexpr uint8_t kVringFlagDead = 0x00;

// ---------------------------------------------------------------------------
// Ethernet.
constexpr uint32_t kEthHdrLen = 14;
constexpr uint32_t kVlanHdrLen = 4;
constexpr uint16_t kEthPVlan = 0x8100;
constexpr uint32_t kMaxFrameLen = 9018;  // jumbo: 9000 MTU + 14 + 4
constexpr uint32_t kBurst = 32;

static_assert(sizeof(GrantEntryV1) == 8, "grant_entry_v1_t is 8 bytes");
static_assert(offsetof(GrantEntryV1, flags) == 0 && offsetof(GrantEntryV1, domid) == 2 &&
                  offsetof(GrantEntryV1, frame) == 4,
              "grant_entry_v1_t layout");
static_assert(sizeof(GrefListItem) == 8 && kGrefItemsPerPage == 512, "gref-list item");
static_assert(sizeof(VringDesc) == 16, "vring_desc is 16 bytes");
static_assert(offsetof(VringDesc, len) == 8 && offsetof(VringDesc, flags) == 12 &&
                  offsetof(VringDesc, next) == 14,
              "vring_desc layout");
static_assert(sizeof(VringAvail) == 4 && offsetof(VringAvail, idx) == 2, "vring_avail header");
static_assert(sizeof(VringUsedElem) == 8, "vring_used_elem is 8 bytes");
static_assert(sizeof(VringUsed) == 4 && offsetof(VringUsed, ring) == 4, "vring_used header");
static_assert(sizeof(VirtioNetHdr) == kVirtioNetHdrLen, "virtio_net_hdr is 10 bytes");
// The numbers DPDK's xenvirt documented for its 256-entry ring.
static_assert(VringAvailOffset(256) == 4096 && VringUsedOffset(256) == 8192, "vring 256 offsets");
static_assert(VringSize(256) == 10246 && VringPages(256) == 3, "vring 256 size");

}  // namespace xsw
