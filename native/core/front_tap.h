// The TAP interface of xsw-front's tap mode: the guest kernel's own stack
// (ping, iperf3) sends and receives through the device. Control path only.
#pragma once

#include <cstdint>
#include <string>

namespace xsw {

// Creates (or attaches to) the TAP interface `name` through /dev/net/tun with
// IFF_TAP | IFF_NO_PI, sets its hardware address to mac (so the kernel's ARP
// and ICMP use the device's MAC) and returns a non-blocking fd. Bringing the
// link up and addressing it is the user's job. Throws SysError with a
// sentence naming the interface and the fix.
int OpenTap(const std::string& name, const uint8_t mac[6]);

}  // namespace xsw
