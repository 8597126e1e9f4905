#include "switch/nic_port.h"

#include <net/if.h>

#include "common/errors.h"
#include "common/tap.h"
#include "switch/afpacket_port.h"
#include "switch/tap_port.h"

namespace xsw {

std::unique_ptr<NicPort> OpenNicPort(const std::string& spec, uint32_t max_frame) {
  const std::string tap_prefix = "tap:";
  bool tap = spec.compare(0, tap_prefix.size(), tap_prefix) == 0;
  std::string name = tap ? spec.substr(tap_prefix.size()) : spec;
  if (!IsInterfaceName(name)) {
    throw SysError(EINVAL, "bad port '" + spec + "': give an interface name (at most " +
                               std::to_string(IFNAMSIZ - 1) + " characters) or tap:NAME");
  }
  if (tap) return std::make_unique<TapPort>(name, max_frame);
  return std::make_unique<AfPacketPort>(name, max_frame);
}

}  // namespace xsw
