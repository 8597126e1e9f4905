// The simulated grant provider: Xen's grant-table rules over files in a sim
// directory shared by every process of every simulated domain (see
// sim_layout.h for the files, docs/platform.md for the model).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "grant/provider.h"

namespace xsw {

// Registers this process in the sim dir and starts its reaper thread (which
// undoes what dead processes left, as the kernel and hypervisor would).
std::unique_ptr<GrantProvider> OpenSimGrantProvider(const std::string& sim_dir, domid_t self_domid);

// Creates the sim dir; gntalloc_limit 0 keeps the configured (or default) limit.
void SimInit(const std::string& dir, uint32_t gntalloc_limit);

// Like the hypervisor destroying a domain (call after killing its processes):
// its grants end (still readable where mapped, until unmapped), its
// unmap-notify bytes are cleared, dead processes' mappings are released, and
// its state is removed once nothing references it.
void SimDestroyDomain(const std::string& dir, domid_t domid);

}  // namespace xsw
