#include "switch/nic_port.h"

#include <net/if.h>

#include "common/errors.h"
#include "common/tap.h"
#include "switch/afpacket_port.h"
#include "switch/tap_port.h"
#include "switch/vhostnet_port.h"

namespace xsw {

std::unique_ptr<NicPort> OpenNicPort(const std::string& spec, uint32_t max_frame) {
  const std::string tap_prefix = "tap:", vhost_prefix = "vhost-net:";
  bool tap = spec.compare(0, tap_prefix.size(), tap_prefix) == 0;
  bool vhost = spec.compare(0, vhost_prefix.size(), vhost_prefix) == 0;
  std::string name = tap ? spec.substr(tap_prefix.size()) : vhost ? spec.substr(vhost_prefix.size()) : spec;
  if (!IsInterfaceName(name)) {
    throw SysError(EINVAL, "bad port '" + spec + "': give an interface name (at most " +
                               std::to_string(IFNAMSIZ - 1) + " characters), tap:NAME or vhost-net:NAME");
  }
  if (tap) return std::make_unique<TapPort>(name, max_frame);
  if (vhost) return std::make_unique<VhostNetPort>(name, max_frame);
  return std::make_unique<AfPacketPort>(name, max_frame);
}

}  // namespace xsw
