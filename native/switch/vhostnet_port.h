// vhost-net port (`-p vhost-net:NAME`): a TAP into dom0's kernel whose frames
// move through virtio rings that the kernel's vhost-net worker serves, instead
// of one read()/write() per frame (DPDK's "virtio_user as exceptional path").
//
// xsw is the virtio *driver* here and the kernel the device: xsw allocates
// the rings and packet buffers once, in one anonymous mapping that it hands
// to vhost-net as the memory table (descriptor addresses are xsw's own
// addresses), posts receive buffers on queue 0 (kernel -> xsw) and frames on
// queue 1 (xsw -> kernel). The TAP carries a virtio_net_hdr before each frame
// (IFF_VNET_HDR): 12 bytes with VIRTIO_F_VERSION_1, else the legacy 10; no
// offloads are negotiated, so the header is always zero. Both rings ask for
// no interrupts while the switch polls; before the data thread sleeps,
// ArmWait lets the kernel signal the receive queue's call eventfd (WaitFd)
// and the next RxBurst turns that off again. Kicks follow the kernel's
// VRING_USED_F_NO_NOTIFY, at most one per queue and burst.
//
// The used entries the kernel writes go through VringDriver::Harvest: an id
// that is not a buffer we posted, a used index that claims more than is in
// flight, or a length longer than the buffer is refused and counted
// (bad_used), never trusted; a receive entry shorter than the header too.
//
// Open and close are control path (SysError with one sentence); the NicPort
// methods are data path: no allocation, lock, logging or throw.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "abi/abi.h"
#include "shm/vring.h"
#include "switch/nic_port.h"

namespace xsw {

class VhostNetPort : public NicPort {
 public:
  static constexpr uint32_t kRingSize = 256;  // entries per queue (and buffers)
  static constexpr uint32_t kRxQueue = 0, kTxQueue = 1;

  // Opens /dev/vhost-net and creates (or attaches to) TAP NAME, sets the
  // rings up and starts the kernel's worker. Throws SysError: ENOENT without
  // /dev/vhost-net (the vhost_net module), EACCES without access to it, and
  // the TAP opener's errors (common/tap.h).
  VhostNetPort(const std::string& name, uint32_t max_frame);
  // The same memory, rings and data path without a kernel device: a test
  // plays the kernel on ring_base(q) (native/test/vhostnet_port_test.cc).
  static std::unique_ptr<VhostNetPort> WithoutKernel(uint32_t max_frame, uint32_t net_hdr_len);
  ~VhostNetPort() override;
  VhostNetPort(const VhostNetPort&) = delete;
  VhostNetPort& operator=(const VhostNetPort&) = delete;

  const char* kind() const override { return "vhost-net"; }
  const std::string& name() const override { return name_; }
  uint32_t RxBurst(NicRxFrame* out, uint32_t max) override;
  void RxRelease() override;
  uint8_t* TxReserve() override;
  uint32_t TxCapacity() const override { return max_frame_; }
  bool TxCommit(uint32_t len) override;
  uint32_t TxFree() override;
  void TxFlush() override;
  int WaitFd() const override { return call_fd_[kRxQueue]; }
  bool ArmWait() override;

  // What the device side sees (tests, diagnostics).
  // The one mapping (both rings, then the buffers) is [ring_base(0), + memory_bytes()).
  uint8_t* ring_base(uint32_t q) const { return mem_ + uint64_t(q) * ring_bytes_; }
  uint64_t memory_bytes() const { return mem_bytes_; }
  int kick_fd(uint32_t q) const { return kick_fd_[q]; }
  int call_fd(uint32_t q) const { return call_fd_[q]; }
  uint32_t net_hdr_len() const { return hdr_len_; }
  uint32_t buffer_len() const { return stride_; }
  // Used entries refused: not a posted buffer, more than in flight, longer
  // than the buffer, or (receive) shorter than the header.
  uint64_t bad_used() const { return rx_->BadUsed() + tx_->BadUsed() + rx_short_; }
  uint64_t kicks() const { return kicks_; }

 private:
  struct NoKernel {};
  VhostNetPort(NoKernel, uint32_t max_frame, uint32_t hdr_len);
  void MapRings(uint32_t hdr_len);  // the memory, both drivers, the eventfds; posts every RX buffer
  void StartKernel();               // the memory table, both vrings, the backend
  void Close();
  uint8_t* Buffer(uint32_t i) const { return mem_ + 2 * ring_bytes_ + uint64_t(i) * stride_; }  // RX: 0..N-1, TX: N..2N-1
  void Kick(uint32_t q);  // publishes nothing: signals the kernel unless it said not to

  std::string name_;
  uint32_t max_frame_;
  uint32_t hdr_len_ = 0;
  uint32_t stride_ = 0;  // bytes per buffer: header + max_frame, rounded to 64
  int vhost_fd_ = -1, tap_fd_ = -1;
  int kick_fd_[2] = {-1, -1}, call_fd_[2] = {-1, -1};
  uint8_t* mem_ = nullptr;
  uint64_t mem_bytes_ = 0, ring_bytes_ = 0;
  std::unique_ptr<VringDriver> rx_, tx_;
  uint32_t rx_held_[kBurst];  // buffers handed out by the last RxBurst
  uint32_t rx_held_n_ = 0;
  bool rx_armed_ = false;  // the kernel may signal the RX call eventfd (ArmWait until the next RxBurst)
  uint32_t tx_free_[kRingSize];  // TX buffers not in flight (a stack)
  uint32_t tx_free_n_ = 0;
  bool tx_reserved_ = false;
  uint32_t tx_pending_ = 0;  // committed since the last flush
  uint64_t rx_short_ = 0;
  uint64_t kicks_ = 0;
};

// Opens the vhost-net control device at `path` for the port vhost-net:NAME
// (named in the sentence). Throws SysError: ENOENT when it is missing (load
// vhost_net, or use tap:NAME), EACCES when this process may not open it.
int OpenVhostNetDevice(const std::string& name, const char* path = "/dev/vhost-net");

}  // namespace xsw
