// TAP port: a tap netdev into dom0's own kernel (/dev/net/tun, IFF_TAP |
// IFF_NO_PI, non-blocking). A TAP moves one frame per read()/write(): that
// is its nature, so the burst loop batches the syscalls, nothing more. The
// tun driver writes a VLAN tag into the frame itself, so tags arrive
// in-frame (vlan_valid is always false). The interface is opened by the one
// TAP opener (common/tap.h) and brought up at open.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "abi/abi.h"
#include "switch/nic_port.h"

namespace xsw {

class TapPort : public NicPort {
 public:
  // Creates (or attaches to) tap NAME. Throws SysError: ENOENT without
  // /dev/net/tun, EPERM without CAP_NET_ADMIN, EBUSY when NAME is taken.
  TapPort(const std::string& name, uint32_t max_frame);
  ~TapPort() override;
  TapPort(const TapPort&) = delete;
  TapPort& operator=(const TapPort&) = delete;

  const char* kind() const override { return "tap"; }
  const std::string& name() const override { return name_; }
  uint32_t RxBurst(NicRxFrame* out, uint32_t max) override;
  void RxRelease() override {}
  uint8_t* TxReserve() override { return tx_buf_.get(); }
  uint32_t TxCapacity() const override { return buf_size_; }
  bool TxCommit(uint32_t len) override;
  uint32_t TxFree() override { return kTxUnbounded; }  // each write() is the transmission
  void TxFlush() override {}
  int WaitFd() const override { return fd_; }

 private:
  std::string name_;
  int fd_ = -1;
  uint32_t buf_size_;
  std::unique_ptr<uint8_t[]> rx_bufs_;  // kBurst buffers of buf_size_ + 1
  std::unique_ptr<uint8_t[]> tx_buf_;
};

}  // namespace xsw
