// The one TAP opener: xsw-front's tap mode (the guest kernel's own stack
// sends and receives through the device) and the switch's TAP port (a link
// into dom0's kernel) both create or attach to their interface here.
// Control path only.
#pragma once

#include <cstdint>
#include <string>

namespace xsw {

struct TapSetup {
  const uint8_t* mac = nullptr;  // set the interface's hardware address (6 bytes), so ARP and ICMP use it
  uint32_t mtu = 0;              // set the interface's MTU (best effort); 0 leaves it
  bool up = false;               // bring the link up
  uint32_t vnet_hdr = 0;         // > 0: IFF_VNET_HDR, each frame led by a virtio_net_hdr of this many bytes (TUNSETVNETHDRSZ)
};

// A Linux interface name: 1 to IFNAMSIZ-1 characters, none of '/', ':' or
// white space.
bool IsInterfaceName(const std::string& name);

// Creates (or attaches to) the TAP interface `name` through /dev/net/tun with
// IFF_TAP | IFF_NO_PI and returns a non-blocking, close-on-exec fd, after
// applying `setup`. Throws SysError with one sentence naming the interface
// and the fix: EINVAL for a bad name, EPERM without CAP_NET_ADMIN, ENOENT
// without /dev/net/tun, EBUSY when the name is taken by another interface.
int OpenTap(const std::string& name, const TapSetup& setup = {});

}  // namespace xsw
