// Picks the grant provider: real Xen when its devices exist, else the sim.
#include <unistd.h>

#include "grant/provider.h"
#include "grant/sim_provider.h"
#include "grant/xen_provider.h"

namespace xsw {

void CheckAllocateArgs(domid_t to, uint32_t pages) {
  if (pages == 0 || pages > kMaxGrantPagesPerCall)
    throw SysError(EINVAL, "cannot allocate " + std::to_string(pages) + " grant pages: ask for 1 to " +
                               std::to_string(kMaxGrantPagesPerCall) + " pages per allocation");
  if (to >= kDomidFirstReserved)
    throw SysError(EINVAL, "cannot grant pages to domain " + std::to_string(to) + ": it is not a real domain id");
}

void CheckMapArgs(domid_t from, uint32_t count) {
  if (count == 0 || count > kMaxGrantPagesPerCall)
    throw SysError(EINVAL, "cannot map " + std::to_string(count) + " grants: map 1 to " +
                               std::to_string(kMaxGrantPagesPerCall) + " grants per call");
  if (from >= kDomidFirstReserved)
    throw SysError(EINVAL, "cannot map grants of domain " + std::to_string(from) + ": it is not a real domain id");
}

const char* GntstName(int16_t status) {
  switch (status) {
    case GNTST_okay: return "okay";
    case GNTST_general_error: return "general_error";
    case GNTST_bad_domain: return "bad_domain";
    case GNTST_bad_gntref: return "bad_gntref";
    case GNTST_permission_denied: return "permission_denied";
    case GNTST_bad_copy_arg: return "bad_copy_arg";
    default: return "unknown";
  }
}

bool PrecheckCopy(GrantCopySeg* segs, uint32_t count) {
  bool any = false;
  for (uint32_t i = 0; i < count; ++i) {
    GrantCopySeg& s = segs[i];
    if (uint32_t(s.offset) + s.len > kPageSize || s.local == nullptr) {
      s.status = GNTST_bad_copy_arg;
    } else {
      s.status = GNTST_general_error;
      any = true;
    }
  }
  return any;
}

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
