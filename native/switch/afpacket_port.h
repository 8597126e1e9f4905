// AF_PACKET port on any Linux netdev (veth, physical NIC, bridge port), with
// TPACKET_V2 receive and transmit rings mmap'd once at open.
//
// RX: the kernel fills ring frames and hands them over by setting
// TP_STATUS_USER; the kernel usually strips an 802.1Q tag into tp_vlan_tci
// (TP_STATUS_VLAN_VALID), which we report as vlan_valid. Our own outgoing
// frames and other sockets' outgoing ones (PACKET_OUTGOING) are skipped.
// TX: frames are written straight into ring slots (TP_STATUS_AVAILABLE ->
// TP_STATUS_SEND_REQUEST) and one sendto() per burst kicks the kernel.
// The interface is put in promiscuous mode (the software VMDQ receives
// frames for every guest MAC).
#pragma once

#include <cstdint>
#include <string>

#include "switch/nic_port.h"

namespace xsw {

class AfPacketPort : public NicPort {
 public:
  // Throws SysError: ENODEV for a missing interface, EPERM without
  // CAP_NET_RAW, or the errno of a failed socket option / mmap.
  AfPacketPort(const std::string& ifname, uint32_t max_frame);
  ~AfPacketPort() override;
  AfPacketPort(const AfPacketPort&) = delete;
  AfPacketPort& operator=(const AfPacketPort&) = delete;

  const char* kind() const override { return "af_packet"; }
  const std::string& name() const override { return name_; }
  uint32_t RxBurst(NicRxFrame* out, uint32_t max) override;
  void RxRelease() override;
  uint8_t* TxReserve() override;
  uint32_t TxCapacity() const override { return tx_capacity_; }
  bool TxCommit(uint32_t len) override;
  uint32_t TxFree() override;
  int WaitFd() const override { return fd_; }
  void TxFlush() override;

 private:
  uint8_t* RxFrame(uint32_t i) const { return ring_ + uint64_t(i) * frame_size_; }
  uint8_t* TxFrame(uint32_t i) const { return ring_ + rx_bytes_ + uint64_t(i) * frame_size_; }
  void ReclaimTx();  // moves tx_tail_ past the slots the kernel has handed back

  std::string name_;
  int fd_ = -1;
  uint8_t* ring_ = nullptr;  // RX ring, then TX ring
  uint64_t ring_bytes_ = 0, rx_bytes_ = 0;
  uint32_t frame_size_ = 0, frame_nr_ = 0;
  uint32_t tx_capacity_ = 0;
  uint32_t rx_head_ = 0;      // next RX frame to look at
  uint32_t rx_taken_ = 0;     // frames handed out by the last RxBurst (incl. skipped ones)
  uint32_t tx_head_ = 0;      // next TX slot
  uint32_t tx_tail_ = 0;      // oldest slot committed and not yet seen back from the kernel
  uint32_t tx_in_flight_ = 0; // slots from tx_tail_ up to tx_head_
  bool tx_reserved_ = false;
  uint32_t tx_pending_ = 0;   // committed since the last flush
};

}  // namespace xsw
