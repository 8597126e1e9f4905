// The switch's NIC: one port to the outside world, either an AF_PACKET
// socket on a Linux netdev (afpacket_port.h) or a TAP into dom0's kernel
// (tap_port.h). The switch talks to both through this interface, and tests
// plug in an in-memory one.
//
// Open and close are control path (they throw SysError with one sentence).
// RxBurst/RxRelease/TxReserve/TxCommit/TxFlush are data path: called by the
// switch's one data thread, no allocation, no lock, no logging, no throw.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace xsw {

struct NicRxFrame {
  const uint8_t* data;   // the frame from its destination MAC on; valid until RxRelease
  uint32_t len;          // bytes at data
  uint32_t wire_len;     // bytes on the wire; > len when the port had to truncate
  uint16_t vlan_tci;     // the tag the kernel stripped, when vlan_valid
  bool vlan_valid;       // false: the frame may still carry an in-frame 802.1Q tag
};

class NicPort {
 public:
  virtual ~NicPort() = default;
  virtual const char* kind() const = 0;  // "af_packet", "tap", "vhost-net", or a test's own
  virtual const std::string& name() const = 0;

  // Up to max received frames into out; they stay valid until RxRelease.
  virtual uint32_t RxBurst(NicRxFrame* out, uint32_t max) = 0;
  // Gives the frames of the last RxBurst back to the port.
  virtual void RxRelease() = 0;

  // A buffer of TxCapacity() bytes for the next outgoing frame, or nullptr
  // when the transmit queue is full. Must be followed by TxCommit before the
  // next TxReserve.
  virtual uint8_t* TxReserve() = 0;
  virtual uint32_t TxCapacity() const = 0;
  // Queues the reserved buffer's first len bytes. False: the port lost it.
  virtual bool TxCommit(uint32_t len) = 0;
  // How many TxReserve calls would succeed now, before the next TxFlush: the
  // free slots of the transmit ring (never more than there are; kTxUnbounded
  // for a port without one). The switch shares them out between guests.
  virtual uint32_t TxFree() = 0;
  static constexpr uint32_t kTxUnbounded = UINT32_MAX;
  // Hands everything committed since the last flush to the kernel.
  virtual void TxFlush() = 0;
  // A fd that polls readable (POLLIN) when frames may be waiting, for the
  // data thread's sleep; -1: none (the switch then sleeps only briefly).
  virtual int WaitFd() const { return -1; }
  // Called right before the data thread sleeps on WaitFd: a port that must
  // ask to be signalled (vhost-net's call eventfd) does so here and re-checks.
  // True when frames already wait: the thread must not sleep. A port whose
  // fd is simply readable while frames wait needs nothing.
  virtual bool ArmWait() { return false; }
};

// Opens a port from its command-line spelling: "IFNAME" (AF_PACKET),
// "tap:NAME" or "vhost-net:NAME" (vhostnet_port.h). max_frame is the longest frame to carry, tag included.
// Throws SysError (ENODEV, EPERM, EINVAL, ...) with one clear sentence.
std::unique_ptr<NicPort> OpenNicPort(const std::string& spec, uint32_t max_frame);

}  // namespace xsw
