#include "core/front_tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_arp.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/status.h"

namespace xsw {

int OpenTap(const std::string& name, const uint8_t mac[6]) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    throw SysError(EINVAL, "TAP name '" + name + "' must have 1 to " + std::to_string(IFNAMSIZ - 1) +
                               " characters: pick a short name like xsw0");
  }
  const int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw SysError(err, std::string("cannot open /dev/net/tun (") + std::strerror(err) +
                            "): load the tun module and run xsw-front as root (or with CAP_NET_ADMIN)");
  }
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    const int err = errno;
    close(fd);
    throw SysError(err, "cannot create TAP interface " + name + " (" + std::strerror(err) +
                            "): run as root, and make sure no other interface has that name");
  }
  const int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq hw{};
  std::memcpy(hw.ifr_name, name.data(), name.size());
  hw.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  std::memcpy(hw.ifr_hwaddr.sa_data, mac, 6);
  if (sock < 0 || ioctl(sock, SIOCSIFHWADDR, &hw) < 0) {
    const int err = errno;
    if (sock >= 0) close(sock);
    close(fd);
    throw SysError(err, "cannot set the MAC address of TAP interface " + name + " (" + std::strerror(err) +
                            "): run as root, with the interface down");
  }
  close(sock);
  return fd;
}

}  // namespace xsw
