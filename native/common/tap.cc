#include "common/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_arp.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/errors.h"

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

ifreq Request(const std::string& name) {
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), name.size());  // IsInterfaceName: fits with its NUL
  return ifr;
}

// The address, MTU and link state, through an ordinary socket's ioctls.
void Configure(const std::string& name, const TapSetup& setup) {
  if (!setup.mac && setup.mtu == 0 && !setup.up) return;
  const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) Fail(errno, name, "a socket for its ioctls");
  int err = 0;
  const char* what = "";
  if (setup.mac) {
    ifreq hw = Request(name);
    hw.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    std::memcpy(hw.ifr_hwaddr.sa_data, setup.mac, 6);
    if (ioctl(s, SIOCSIFHWADDR, &hw) < 0) {
      err = errno;
      what = "setting its MAC address (bring it down first)";
    }
  }
  if (!err && setup.mtu != 0) {
    ifreq mtu = Request(name);
    mtu.ifr_mtu = int(setup.mtu);
    (void)ioctl(s, SIOCSIFMTU, &mtu);  // best effort: a smaller MTU only limits what the kernel sends
  }
  if (!err && setup.up) {
    ifreq flags = Request(name);
    if (ioctl(s, SIOCGIFFLAGS, &flags) < 0) {
      err = errno;
    } else {
      flags.ifr_flags = short(flags.ifr_flags | IFF_UP);
      if (ioctl(s, SIOCSIFFLAGS, &flags) < 0) err = errno;
    }
    if (err) what = "bringing the interface up";
  }
  close(s);
  if (err) Fail(err, name, what);
}

}  // namespace

bool IsInterfaceName(const std::string& name) {
  return !name.empty() && name.size() < IFNAMSIZ && name.find_first_of("/: \t\n") == std::string::npos;
}

int OpenTap(const std::string& name, const TapSetup& setup) {
  if (!IsInterfaceName(name)) {
    throw SysError(EINVAL, "TAP name '" + name + "' is not an interface name: give 1 to " +
                               std::to_string(IFNAMSIZ - 1) + " characters without '/', ':' or spaces, like xsw0");
  }
  const int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) Fail(errno, name, "opening /dev/net/tun");
  try {
    ifreq ifr = Request(name);
    ifr.ifr_flags = short(IFF_TAP | IFF_NO_PI | (setup.vnet_hdr ? IFF_VNET_HDR : 0));
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) Fail(errno, name, "TUNSETIFF");
    int hdr = int(setup.vnet_hdr);
    if (hdr && ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) Fail(errno, name, "TUNSETVNETHDRSZ");
    Configure(name, setup);
  } catch (...) {
    close(fd);
    throw;
  }
  return fd;
}

}  // namespace xsw
