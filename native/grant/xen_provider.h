// The real-Xen grant provider: the Linux gntalloc/gntdev uapi.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "grant/provider.h"

namespace xsw {

constexpr const char* kGntallocPath = "/dev/xen/gntalloc";
constexpr const char* kGntdevPath = "/dev/xen/gntdev";

// Opens nothing yet: each device is opened on first use (a guest has only
// gntalloc; dom0 may have both).
std::unique_ptr<GrantProvider> OpenXenGrantProvider();

// The uapi header's ioctl numbers, flags and struct sizes as this build saw
// them, so a test can recompute them independently.
std::vector<std::pair<const char*, uint64_t>> XenUapiConstants();

}  // namespace xsw
