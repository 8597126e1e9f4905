#include "vhost/memory.h"

#include "common/hex.h"
#include "vhost/sigbus_guard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace xsw::vhost {

namespace {
bool Wraps(uint64_t a, uint64_t len) { return a + len < a; }

// Whether the fd cannot shrink any more: already sealed so, or sealed now.
// Only a memfd created with MFD_ALLOW_SEALING (QEMU's memory-backend-memfd)
// takes seals; DPDK's --no-huge memfd does not (EPERM), nor a plain file.
bool SealShrink(int fd) {
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals >= 0 && (seals & F_SEAL_SHRINK)) return true;
  return ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0;
}
}  // namespace

bool GuestMemory::Map(const MemRegion* regions, uint32_t n, const int* fds, std::string* why) {
  Unmap();
  lost_.store(false, std::memory_order_release);
  if (n == 0 || n > kMaxRegions) {
    *why = "a memory table of " + std::to_string(n) + " regions (1 to " + std::to_string(kMaxRegions) + " allowed)";
    return false;
  }
  RegionTable check;  // the same rules the switch applies: non-empty, no overlap
  std::vector<Mapped> maps;
  uint32_t sealed = 0;
  auto fail = [&](uint32_t i, const std::string& what) {
    for (Mapped& m : maps) {
      GuardRemove(m.guard);
      ::munmap(m.base, m.map_len);
    }
    *why = "memory region " + std::to_string(i) + " (guest " + Hex(regions[i].guest_phys_addr) + ", " +
           std::to_string(regions[i].memory_size) + " bytes) " + what;
    return false;
  };
  for (uint32_t i = 0; i < n; ++i) {
    const MemRegion& r = regions[i];
    if (r.memory_size == 0) return fail(i, "is empty");
    if (Wraps(r.guest_phys_addr, r.memory_size) || Wraps(r.userspace_addr, r.memory_size) ||
        Wraps(r.mmap_offset, r.memory_size)) {
      return fail(i, "wraps around the address space");
    }
    const uint64_t map_len = r.mmap_offset + r.memory_size;
    struct stat st {};
    if (::fstat(fds[i], &st) != 0) return fail(i, std::string("has an fd fstat refuses (") + std::strerror(errno) + ")");
    if (!S_ISREG(st.st_mode)) return fail(i, "is not backed by a memory file (memfd, hugetlbfs or shm)");
    if (uint64_t(st.st_size) < map_len) {
      return fail(i, "needs " + std::to_string(map_len) + " bytes of its fd, which has only " +
                         std::to_string(st.st_size));
    }
    if (SealShrink(fds[i])) ++sealed;
    void* p = ::mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);
    if (p == MAP_FAILED) return fail(i, std::string("cannot be mapped (") + std::strerror(errno) + ")");
    const int guard = GuardAdd(p, map_len, &lost_);
    if (guard < 0) {
      ::munmap(p, map_len);
      return fail(i, "cannot be guarded: " + std::to_string(kGuardEntries) +
                         " vhost-user regions are mapped already (detach some ports)");
    }
    maps.push_back(Mapped{r, static_cast<uint8_t*>(p), map_len, guard});
    Region reg;
    reg.gva = r.guest_phys_addr;
    reg.len = r.memory_size;
    reg.hva = static_cast<uint8_t*>(p) + r.mmap_offset;
    reg.writable = true;
    reg.map_len = r.memory_size;
    if (!check.Add(reg)) return fail(i, "overlaps another region");
  }
  maps_ = std::move(maps);
  sealed_ = sealed;
  return true;
}

void GuestMemory::Unmap() {
  for (Mapped& m : maps_) {
    GuardRemove(m.guard);
    ::munmap(m.base, m.map_len);
  }
  maps_.clear();
  sealed_ = 0;
}

uint8_t* GuestMemory::FromUser(uint64_t uaddr, uint64_t len) const {
  for (const Mapped& m : maps_) {
    const uint64_t start = m.r.userspace_addr;
    if (uaddr >= start && uaddr - start <= m.r.memory_size && len <= m.r.memory_size - (uaddr - start)) {
      return m.base + m.r.mmap_offset + (uaddr - start);
    }
  }
  return nullptr;
}

std::vector<Region> GuestMemory::Regions() const {
  std::vector<Region> out;
  for (const Mapped& m : maps_) {
    Region reg;
    reg.gva = m.r.guest_phys_addr;
    reg.len = m.r.memory_size;
    reg.hva = m.base + m.r.mmap_offset;
    reg.writable = true;
    reg.map_len = m.r.memory_size;
    out.push_back(reg);
  }
  return out;
}

}  // namespace xsw::vhost
