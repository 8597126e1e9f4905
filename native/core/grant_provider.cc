// Picks the grant provider: real Xen when its devices exist, else the sim.
#include <unistd.h>

#include "core/grant.h"
#include "core/grant_sim.h"
#include "core/grant_xen.h"

namespace xsw {

std::string DetectPlatform() {
  return access(kGntallocPath, F_OK) == 0 || access(kGntdevPath, F_OK) == 0 ? "xen" : "sim";
}

std::unique_ptr<GrantProvider> OpenGrantProvider(const GrantOptions& options) {
  std::string platform = options.platform.empty() || options.platform == "auto" ? DetectPlatform() : options.platform;
  if (platform == "xen") return OpenXenGrantProvider();
  if (platform == "sim") return OpenSimGrantProvider(options.sim_dir, options.self_domid);
  throw SysError(EINVAL, "unknown platform '" + options.platform + "': use auto, xen or sim");
}

}  // namespace xsw
