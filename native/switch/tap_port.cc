#include "switch/tap_port.h"

#include <unistd.h>

#include "common/tap.h"

namespace xsw {

TapPort::TapPort(const std::string& name, uint32_t max_frame) : name_(name), buf_size_(max_frame) {
  TapSetup setup;
  setup.mtu = max_frame - kEthHdrLen - kVlanHdrLen;
  setup.up = true;
  fd_ = OpenTap(name, setup);
  rx_bufs_ = std::make_unique<uint8_t[]>(uint64_t(kBurst) * (buf_size_ + 1));
  tx_buf_ = std::make_unique<uint8_t[]>(buf_size_);
}

TapPort::~TapPort() {
  if (fd_ >= 0) close(fd_);
}

uint32_t TapPort::RxBurst(NicRxFrame* out, uint32_t max) {
  if (max > kBurst) max = kBurst;
  uint32_t n = 0;
  while (n < max) {
    uint8_t* buf = rx_bufs_.get() + uint64_t(n) * (buf_size_ + 1);
    // One byte more than a frame may be, so an oversized frame is seen as such.
    ssize_t r = read(fd_, buf, buf_size_ + 1);
    if (r < 0) break;  // EAGAIN: nothing more now (other errors: retried next poll)
    NicRxFrame& f = out[n++];
    f.data = buf;
    f.len = uint32_t(r);
    f.wire_len = uint32_t(r);
    f.vlan_valid = false;
    f.vlan_tci = 0;
  }
  return n;
}

bool TapPort::TxCommit(uint32_t len) {
  if (len > buf_size_) return false;
  return write(fd_, tx_buf_.get(), len) == ssize_t(len);
}

}  // namespace xsw
