// The vhost-user wire protocol as xsw speaks it (the back-end side of one
// virtio-net queue pair). Written from the protocol's public description
// (QEMU's docs/interop/vhost-user.rst); layouts are little-endian, packed as
// on the wire.
#pragma once

#include <cstdint>

namespace xsw::vhost {

// Requests (front end -> back end) that xsw knows.
enum Request : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSetStatus = 39,
  kGetStatus = 40,
};
const char* RequestName(uint32_t request);  // "SET_MEM_TABLE", or "request N"

// Header flags.
constexpr uint32_t kFlagVersion = 0x1;      // bits 0-1: protocol version 1
constexpr uint32_t kFlagVersionMask = 0x3;
constexpr uint32_t kFlagReply = 0x4;
constexpr uint32_t kFlagNeedReply = 0x8;

struct MsgHeader {
  uint32_t request;
  uint32_t flags;
  uint32_t size;  // payload bytes after the header
};
static_assert(sizeof(MsgHeader) == 12, "vhost-user header is 12 bytes");

constexpr uint32_t kMaxRegions = 8;  // VHOST_MEMORY_BASELINE_NREGIONS
constexpr uint32_t kMaxFds = kMaxRegions;

struct MemRegion {
  uint64_t guest_phys_addr;  // what descriptors hold (virtio_user: its own virtual address)
  uint64_t memory_size;
  uint64_t userspace_addr;   // what SET_VRING_ADDR holds (QEMU's virtual address)
  uint64_t mmap_offset;      // where the region starts in the passed fd
};
static_assert(sizeof(MemRegion) == 32, "vhost-user memory region is 32 bytes");

struct VringState {
  uint32_t index;
  uint32_t num;
};

struct VringAddr {
  uint32_t index;
  uint32_t flags;  // bit 0: logging (never negotiated here)
  uint64_t desc_user_addr;
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40, "vhost_vring_addr is 40 bytes");

// The longest payload any request above may carry: a full memory table.
constexpr uint32_t kMaxPayload = 8 + kMaxRegions * sizeof(MemRegion);

// SET_VRING_KICK/CALL/ERR payload: the queue index in bits 0-7; bit 8 set
// means "no fd" (polling).
constexpr uint64_t kVringIndexMask = 0xFF;
constexpr uint64_t kVringNoFd = 0x100;

// Virtio and vhost feature bits.
constexpr uint64_t kFeatureProtocolFeatures = 1ull << 30;  // VHOST_USER_F_PROTOCOL_FEATURES
constexpr uint64_t kFeatureVersion1 = 1ull << 32;          // VIRTIO_F_VERSION_1
constexpr uint64_t kFeatureInOrder = 1ull << 35;           // VIRTIO_F_IN_ORDER
// What xsw always offers: a modern device (12-byte header), no offloads, no
// mergeable buffers, no event index, no indirect descriptors. Plus
// kFeatureInOrder while the switch uses each ring's buffers in the order they
// were made available (Switch::RingsInOrder; Session::OfferedFeatures). That
// only binds us: the driver's descriptors are still read once and validated.
constexpr uint64_t kOfferedFeatures = kFeatureVersion1 | kFeatureProtocolFeatures;

// Protocol feature bits xsw implements.
constexpr uint64_t kProtocolReplyAck = 1ull << 3;
constexpr uint64_t kProtocolStatus = 1ull << 16;
constexpr uint64_t kOfferedProtocolFeatures = kProtocolReplyAck | kProtocolStatus;

// Queue indexes of a virtio-net queue pair.
constexpr uint32_t kRxQueue = 0;  // the peer's receive queue: we write into it
constexpr uint32_t kTxQueue = 1;  // the peer's transmit queue: we read from it
constexpr uint32_t kQueues = 2;

}  // namespace xsw::vhost
