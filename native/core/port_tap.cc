#include "core/port_tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/status.h"

namespace xsw {

namespace {

[[noreturn]] void Fail(int err, const std::string& name, const std::string& what) {
  if (err == EPERM || err == EACCES) {
    throw SysError(EPERM, "cannot open TAP " + name + ": needs CAP_NET_ADMIN: run as root");
  }
  if (err == ENOENT || err == ENODEV || err == ENXIO) {
    throw SysError(ENOENT, "cannot open TAP " + name + ": /dev/net/tun is missing (load the tun module: modprobe tun)");
  }
  if (err == EBUSY) throw SysError(EBUSY, "cannot open TAP " + name + ": the name is in use by another interface or process");
  throw SysError(err, "cannot open TAP " + name + ": " + what + " failed: " + std::strerror(err));
}

// Brings the interface up (and sets its MTU to fit max_frame); the kernel
// side then sends and accepts frames. A failure is not fatal for setting the
// MTU, but is for bringing it up.
void BringUp(const std::string& name, uint32_t max_frame) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) Fail(errno, name, "socket for ioctl");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_mtu = int(max_frame - kEthHdrLen - kVlanHdrLen);
  (void)ioctl(s, SIOCSIFMTU, &ifr);
  int err = 0;
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
    err = errno;
  } else {
    ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) err = errno;
  }
  close(s);
  if (err) Fail(err, name, "bringing the interface up");
}

}  // namespace

TapPort::TapPort(const std::string& name, uint32_t max_frame) : name_(name), buf_size_(max_frame) {
  fd_ = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) Fail(errno, name, "open /dev/net/tun");
  try {
    ifreq ifr{};
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
    if (ioctl(fd_, TUNSETIFF, &ifr) < 0) Fail(errno, name, "TUNSETIFF");
    BringUp(name, max_frame);
  } catch (...) {
    close(fd_);
    throw;
  }
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
