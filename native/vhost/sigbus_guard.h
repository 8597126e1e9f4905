// The guard against a vhost-user peer that shrinks the memory file it passed
// (ftruncate after SET_MEM_TABLE): touching a mapped page past the file's new
// end raises SIGBUS, which would kill the whole back end. Peers whose memfds
// are not sealable (DPDK virtio_user's --no-huge memory) can do that.
//
// Every mapped vhost-user region is entered in a fixed-size, lock-free table.
// One process-wide SIGBUS handler (installed on the first Add) looks the fault
// address up there; on a hit it maps anonymous zero pages over the whole
// region (MAP_FIXED), so the faulting access and every later one read zeros,
// and raises the region's `lost` flag; the switch's data thread quarantines
// the device owning that flag (memory_truncated) and the control thread
// detaches it and unmaps. A fault outside every region goes to the handler
// installed before (ASan's, Node's, or the default action). The handler does
// only async-signal-safe work: atomic loads and stores, mmap.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace xsw::vhost {

constexpr uint32_t kGuardEntries = 512;  // 64 ports of 8 regions

// Enters [base, base + len) (an mmap of a peer's memory file); a fault there
// raises *lost. Returns the entry's index, or -1 if the table is full.
// Control thread; installs the handler on first use (throws SysError if
// sigaction fails).
int GuardAdd(void* base, size_t len, std::atomic<bool>* lost);
// Forgets an entry (before the region is unmapped).
void GuardRemove(int entry);

}  // namespace xsw::vhost
