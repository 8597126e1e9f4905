// gntalloc (guest side) and gntdev (dom0 side) through their ioctls.
//
// One ALLOC_GREF + one mmap per allocation, one MAP_GRANT_REF + one mmap per
// mapping; teardown is always munmap first, then the ioctl that releases the
// grants (the uapi's "munmap() and either close() or ioctl()").
#include "grant/xen_provider.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>

// The uapi headers use these two Xen types without defining them.
typedef uint32_t grant_ref_t;
typedef uint16_t domid_t;
#include <xen/evtchn.h>
#include <xen/gntalloc.h>
#include <xen/gntdev.h>

namespace xsw {
namespace {

// GNTCOPY_source_gref and GNTCOPY_dest_gref of Xen's public/grant_table.h
// (bits 0 and 1); gntdev passes them through to GNTTABOP_copy. Without them
// gntdev reads that side as a local address.
constexpr uint16_t kGntcopySourceGref = 1u << 0;
constexpr uint16_t kGntcopyDestGref = 1u << 1;

class XenGrantProvider : public GrantProvider {
 public:
  ~XenGrantProvider() override {
    for (auto& [id, m] : mappings_) ReleaseMapping(m);
    for (auto& [id, a] : allocations_) ReleaseAllocation(a);
    if (gntalloc_fd_ >= 0) close(gntalloc_fd_);
    if (gntdev_fd_ >= 0) close(gntdev_fd_);
  }

  const char* kind() const override { return "xen"; }

  GrantAllocation Allocate(domid_t to, uint32_t pages, bool writable) override {
    CheckAllocateArgs(to, pages);
    int fd = Device(gntalloc_fd_, kGntallocPath, "xen-gntalloc");
    std::vector<uint8_t> buf(offsetof(ioctl_gntalloc_alloc_gref, gref_ids) + sizeof(uint32_t) * pages +
                             sizeof(ioctl_gntalloc_alloc_gref));
    auto* req = reinterpret_cast<ioctl_gntalloc_alloc_gref*>(buf.data());
    req->domid = to;
    req->flags = writable ? GNTALLOC_FLAG_WRITABLE : 0;
    req->count = pages;
    if (ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, req) < 0) {
      int err = errno;
      if (err == ENOSPC)
        throw SysError(ENOSPC, "gntalloc limit reached while allocating " + std::to_string(pages) +
                                   " pages for domain " + std::to_string(to) +
                                   ": raise it (Xen: modprobe xen-gntalloc limit=N)");
      throw SysError(err, "IOCTL_GNTALLOC_ALLOC_GREF of " + std::to_string(pages) + " pages failed (" + ErrnoText(err) + ")");
    }
    size_t len = size_t(pages) * kPageSize;
    void* addr = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(req->index));
    if (addr == MAP_FAILED) {
      int err = errno;
      ioctl_gntalloc_dealloc_gref dealloc{};
      dealloc.index = req->index;
      dealloc.count = pages;
      ioctl(fd, IOCTL_GNTALLOC_DEALLOC_GREF, &dealloc);
      throw SysError(err, "mmap of " + std::to_string(pages) + " gntalloc pages failed (" + ErrnoText(err) + ")");
    }
    Alloc a;
    a.info.id = next_id_++;
    a.info.addr = static_cast<uint8_t*>(addr);
    a.info.pages = pages;
    a.info.granted_to = to;
    a.info.writable = writable;
    a.info.grefs.assign(req->gref_ids, req->gref_ids + pages);
    a.info.pfns = Pfns(a.info.addr, pages);
    a.index = req->index;
    allocations_[a.info.id] = a;
    return a.info;
  }

  void Free(uint64_t allocation_id) override {
    auto it = allocations_.find(allocation_id);
    if (it == allocations_.end()) throw UnknownHandle("allocation", allocation_id);
    ReleaseAllocation(it->second);
    allocations_.erase(it);
  }

  void SetUnmapNotify(uint64_t allocation_id, uint64_t offset) override {
    auto it = allocations_.find(allocation_id);
    if (it == allocations_.end()) throw UnknownHandle("allocation", allocation_id);
    if (offset >= uint64_t(it->second.info.pages) * kPageSize)
      throw SysError(EINVAL, "unmap-notify offset " + std::to_string(offset) + " is outside the allocation of " +
                                 std::to_string(it->second.info.pages) + " pages");
    ioctl_gntalloc_unmap_notify req{};
    req.index = it->second.index + offset;
    req.action = UNMAP_NOTIFY_CLEAR_BYTE;
    if (ioctl(gntalloc_fd_, IOCTL_GNTALLOC_SET_UNMAP_NOTIFY, &req) < 0) {
      int err = errno;
      throw SysError(err, "IOCTL_GNTALLOC_SET_UNMAP_NOTIFY failed (" + ErrnoText(err) + ")");
    }
  }

  GrantMapping Map(domid_t from, const grant_ref_t* refs, uint32_t count, bool writable) override {
    CheckMapArgs(from, count);
    int fd = Device(gntdev_fd_, kGntdevPath, "xen-gntdev");
    std::vector<uint8_t> buf(offsetof(ioctl_gntdev_map_grant_ref, refs) + sizeof(ioctl_gntdev_grant_ref) * count +
                             sizeof(ioctl_gntdev_map_grant_ref));
    auto* req = reinterpret_cast<ioctl_gntdev_map_grant_ref*>(buf.data());
    req->count = count;
    for (uint32_t i = 0; i < count; ++i) {
      req->refs[i].domid = from;
      req->refs[i].ref = refs[i];
    }
    if (ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, req) < 0) {
      int err = errno;
      throw SysError(err, "IOCTL_GNTDEV_MAP_GRANT_REF of " + std::to_string(count) + " grants of domain " +
                              std::to_string(from) + " failed (" + ErrnoText(err) + ")");
    }
    size_t len = size_t(count) * kPageSize;
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    void* addr = mmap(nullptr, len, prot, MAP_SHARED, fd, off_t(req->index));
    if (addr == MAP_FAILED) {
      int err = errno;
      ioctl_gntdev_unmap_grant_ref unmap{};
      unmap.index = req->index;
      unmap.count = count;
      ioctl(fd, IOCTL_GNTDEV_UNMAP_GRANT_REF, &unmap);
      throw SysError(err, "mapping " + std::to_string(count) + " grants of domain " + std::to_string(from) +
                              " failed (" + ErrnoText(err) + "): check that the grants exist and are granted to this domain");
    }
    MapEntry m;
    m.info.id = next_id_++;
    m.info.addr = static_cast<uint8_t*>(addr);
    m.info.pages = count;
    m.info.from = from;
    m.info.writable = writable;
    m.index = req->index;
    mappings_[m.info.id] = m;
    return m.info;
  }

  void Unmap(uint64_t mapping_id) override {
    auto it = mappings_.find(mapping_id);
    if (it == mappings_.end()) throw UnknownHandle("mapping", mapping_id);
    ReleaseMapping(it->second);
    mappings_.erase(it);
  }

  // IOCTL_GNTDEV_GRANT_COPY over the segments PrecheckCopy left (gntdev
  // refuses a whole batch for one segment past its page). The scratch array
  // grows to the largest batch once, then the data path allocates nothing.
  void Copy(GrantCopySeg* segs, uint32_t count) override {
    if (!PrecheckCopy(segs, count)) return;
    int fd = gntdev_fd_;
    if (fd < 0) {
      try {
        fd = Device(gntdev_fd_, kGntdevPath, "xen-gntdev");
      } catch (const SysError&) {
        return;  // every segment stays general_error
      }
    }
    if (copy_scratch_.size() < count) copy_scratch_.resize(count);
    uint32_t n = 0;
    for (uint32_t i = 0; i < count; ++i) {
      const GrantCopySeg& s = segs[i];
      if (s.status != GNTST_general_error) continue;
      gntdev_grant_copy_segment& g = copy_scratch_[n++];
      std::memset(&g, 0, sizeof(g));
      g.len = s.len;
      if (s.to_foreign) {
        g.source.virt = s.local;
        g.dest.foreign.ref = s.ref;
        g.dest.foreign.offset = s.offset;
        g.dest.foreign.domid = s.domid;
        g.flags = kGntcopyDestGref;
      } else {
        g.source.foreign.ref = s.ref;
        g.source.foreign.offset = s.offset;
        g.source.foreign.domid = s.domid;
        g.dest.virt = s.local;
        g.flags = kGntcopySourceGref;
      }
    }
    ioctl_gntdev_grant_copy req{};
    req.count = n;
    req.segments = copy_scratch_.data();
    if (ioctl(fd, IOCTL_GNTDEV_GRANT_COPY, &req) < 0) return;  // every segment stays general_error
    n = 0;
    for (uint32_t i = 0; i < count; ++i)
      if (segs[i].status == GNTST_general_error) segs[i].status = copy_scratch_[n++].status;
  }

 private:

  struct Alloc {
    GrantAllocation info;
    uint64_t index = 0;
  };
  struct MapEntry {
    GrantMapping info;
    uint64_t index = 0;
  };

  static SysError UnknownHandle(const char* what, uint64_t id) {
    return SysError(EINVAL, std::string("no grant ") + what + " with id " + std::to_string(id) +
                                ": it was already released or belongs to another Grants object");
  }

  static int Device(int& fd, const char* path, const char* module) {
    if (fd >= 0) return fd;
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0) return fd;
    int err = errno;
    if (err == ENOENT)
      throw SysError(ENOENT, std::string(path) + " is missing: load the " + module + " module (modprobe " + module +
                                 ") in this Xen domain");
    if (err == EACCES || err == EPERM)
      throw SysError(err, std::string("cannot open ") + path + ": permission denied; run as root or give this user access to the device");
    throw SysError(err, std::string("cannot open ") + path + " (" + ErrnoText(err) + ")");
  }

  // Frame numbers from /proc/self/pagemap (bits 0-54 when present). Without
  // CAP_SYS_ADMIN the kernel reports 0; pfns are informational, so 0 stays.
  static std::vector<uint32_t> Pfns(const uint8_t* addr, uint32_t pages) {
    std::vector<uint32_t> pfns(pages, 0);
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pfns;
    for (uint32_t i = 0; i < pages; ++i) {
      (void)*static_cast<const volatile uint8_t*>(addr + size_t(i) * kPageSize);  // fault the page in
      uint64_t entry = 0;
      off_t off = off_t((reinterpret_cast<uintptr_t>(addr) / kPageSize + i) * sizeof(entry));
      if (pread(fd, &entry, sizeof(entry), off) == ssize_t(sizeof(entry)) && (entry >> 63) & 1)
        pfns[i] = uint32_t(entry & ((uint64_t(1) << 55) - 1));
    }
    close(fd);
    return pfns;
  }

  void ReleaseAllocation(const Alloc& a) {
    munmap(a.info.addr, size_t(a.info.pages) * kPageSize);
    ioctl_gntalloc_dealloc_gref req{};
    req.index = a.index;
    req.count = a.info.pages;
    ioctl(gntalloc_fd_, IOCTL_GNTALLOC_DEALLOC_GREF, &req);
  }

  void ReleaseMapping(const MapEntry& m) {
    munmap(m.info.addr, size_t(m.info.pages) * kPageSize);
    ioctl_gntdev_unmap_grant_ref req{};
    req.index = m.index;
    req.count = m.info.pages;
    ioctl(gntdev_fd_, IOCTL_GNTDEV_UNMAP_GRANT_REF, &req);
  }

  int gntalloc_fd_ = -1;
  int gntdev_fd_ = -1;
  std::vector<gntdev_grant_copy_segment> copy_scratch_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Alloc> allocations_;
  std::map<uint64_t, MapEntry> mappings_;
};

}  // namespace

std::unique_ptr<GrantProvider> OpenXenGrantProvider() { return std::make_unique<XenGrantProvider>(); }

std::vector<std::pair<const char*, uint64_t>> XenUapiConstants() {
  return {
      {"IOCTL_GNTALLOC_ALLOC_GREF", IOCTL_GNTALLOC_ALLOC_GREF},
      {"IOCTL_GNTALLOC_DEALLOC_GREF", IOCTL_GNTALLOC_DEALLOC_GREF},
      {"IOCTL_GNTALLOC_SET_UNMAP_NOTIFY", IOCTL_GNTALLOC_SET_UNMAP_NOTIFY},
      {"IOCTL_GNTDEV_MAP_GRANT_REF", IOCTL_GNTDEV_MAP_GRANT_REF},
      {"IOCTL_GNTDEV_UNMAP_GRANT_REF", IOCTL_GNTDEV_UNMAP_GRANT_REF},
      {"IOCTL_GNTDEV_SET_UNMAP_NOTIFY", IOCTL_GNTDEV_SET_UNMAP_NOTIFY},
      {"IOCTL_GNTDEV_GRANT_COPY", IOCTL_GNTDEV_GRANT_COPY},
      {"sizeof_gntdev_grant_copy_segment", sizeof(gntdev_grant_copy_segment)},
      {"offsetof_gntdev_grant_copy_segment_len", offsetof(gntdev_grant_copy_segment, len)},
      {"offsetof_gntdev_grant_copy_segment_status", offsetof(gntdev_grant_copy_segment, status)},
      {"sizeof_ioctl_gntdev_grant_copy", sizeof(ioctl_gntdev_grant_copy)},
      {"GNTCOPY_source_gref", kGntcopySourceGref},
      {"GNTCOPY_dest_gref", kGntcopyDestGref},
      {"IOCTL_EVTCHN_BIND_INTERDOMAIN", IOCTL_EVTCHN_BIND_INTERDOMAIN},
      {"IOCTL_EVTCHN_BIND_UNBOUND_PORT", IOCTL_EVTCHN_BIND_UNBOUND_PORT},
      {"IOCTL_EVTCHN_UNBIND", IOCTL_EVTCHN_UNBIND},
      {"IOCTL_EVTCHN_NOTIFY", IOCTL_EVTCHN_NOTIFY},
      {"GNTALLOC_FLAG_WRITABLE", GNTALLOC_FLAG_WRITABLE},
      {"UNMAP_NOTIFY_CLEAR_BYTE", UNMAP_NOTIFY_CLEAR_BYTE},
      {"sizeof_ioctl_gntalloc_alloc_gref", sizeof(ioctl_gntalloc_alloc_gref)},
      {"offsetof_ioctl_gntalloc_alloc_gref_index", offsetof(ioctl_gntalloc_alloc_gref, index)},
      {"offsetof_ioctl_gntalloc_alloc_gref_gref_ids", offsetof(ioctl_gntalloc_alloc_gref, gref_ids)},
      {"sizeof_ioctl_gntalloc_dealloc_gref", sizeof(ioctl_gntalloc_dealloc_gref)},
      {"sizeof_ioctl_gntalloc_unmap_notify", sizeof(ioctl_gntalloc_unmap_notify)},
      {"sizeof_ioctl_gntdev_grant_ref", sizeof(ioctl_gntdev_grant_ref)},
      {"sizeof_ioctl_gntdev_map_grant_ref", sizeof(ioctl_gntdev_map_grant_ref)},
      {"offsetof_ioctl_gntdev_map_grant_ref_index", offsetof(ioctl_gntdev_map_grant_ref, index)},
      {"offsetof_ioctl_gntdev_map_grant_ref_refs", offsetof(ioctl_gntdev_map_grant_ref, refs)},
      {"sizeof_ioctl_gntdev_unmap_grant_ref", sizeof(ioctl_gntdev_unmap_grant_ref)},
      {"sizeof_ioctl_gntdev_unmap_notify", sizeof(ioctl_gntdev_unmap_notify)},
  };
}

}  // namespace xsw
