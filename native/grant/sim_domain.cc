#include "grant/sim_domain.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/errors.h"
#include "grant/sim_dir.h"

namespace xsw::sim {
namespace {

uint16_t LoadFlags(const GrantEntryV1& e) { return __atomic_load_n(&e.flags, __ATOMIC_ACQUIRE); }
void StoreFlags(GrantEntryV1& e, uint16_t v) { __atomic_store_n(&e.flags, v, __ATOMIC_RELEASE); }

// Reads a whole entry at once, as the hypervisor would before checking it.
GrantEntryV1 CopyEntry(const GrantEntryV1& src) {
  uint64_t raw = __atomic_load_n(reinterpret_cast<const uint64_t*>(&src), __ATOMIC_ACQUIRE);
  GrantEntryV1 e;
  std::memcpy(&e, &raw, sizeof(e));
  return e;
}

int OpenFile(const std::string& path, bool create) {
  return open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
}

std::string Ref(grant_ref_t ref, domid_t domid) {
  return "grant " + std::to_string(ref) + " of domain " + std::to_string(domid);
}

}  // namespace

std::unique_ptr<SimDomain> SimDomain::Open(const std::string& sim_dir, domid_t domid, bool create) {
  std::string dir = DomainDir(sim_dir, domid);
  auto missing = [&]() {
    return SysError(ENOENT, "domain " + std::to_string(domid) + " has no grant table in the sim at " + sim_dir +
                                ": start that domain first, or check XSW_SIM_DIR");
  };
  // A concurrent simDestroyDomain may remove the files under us: retry then.
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::unique_ptr<SimDomain> d(new SimDomain());
    d->dir_ = dir;
    d->domid_ = domid;
    if (create && mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      int err = errno;
      throw SysError(err, "cannot create " + dir + " (" + ErrnoText(err) + "): check the sim directory's permissions");
    }
    d->lock_fd_ = OpenFile(dir + "/lock", create);
    if (d->lock_fd_ < 0) {
      if (errno == ENOENT && !create) throw missing();
      if (errno == ENOENT) continue;
      int err = errno;
      throw SysError(err, "cannot open " + dir + "/lock (" + ErrnoText(err) + ")");
    }
    if (!d->Lock()) continue;
    struct Unlocker {
      SimDomain* d;
      ~Unlocker() { d->Unlock(); }
    } unlocker{d.get()};
    d->table_fd_ = OpenFile(dir + "/table", create);
    d->shadow_fd_ = OpenFile(dir + "/shadow", create);
    d->frames_fd_ = OpenFile(dir + "/frames", create);
    if (d->table_fd_ < 0 || d->shadow_fd_ < 0 || d->frames_fd_ < 0) {
      if (!create) throw missing();
      int err = errno;
      throw SysError(err, "cannot open the grant table files in " + dir + " (" + ErrnoText(err) + ")");
    }
    struct stat st;
    for (auto [fd, size] : {std::pair<int, size_t>{d->table_fd_, kTableSize}, {d->shadow_fd_, kShadowSize}}) {
      if (fstat(fd, &st) != 0) throw SysError(errno, "cannot stat a grant table file in " + dir);
      if (size_t(st.st_size) == size) continue;
      if (!create) throw missing();
      if (ftruncate(fd, off_t(size)) != 0) {
        int err = errno;
        throw SysError(err, "cannot size the grant table files in " + dir + " (" + ErrnoText(err) + ")");
      }
    }
    void* t = mmap(nullptr, kTableSize, PROT_READ | PROT_WRITE, MAP_SHARED, d->table_fd_, 0);
    void* s = mmap(nullptr, kShadowSize, PROT_READ | PROT_WRITE, MAP_SHARED, d->shadow_fd_, 0);
    if (t == MAP_FAILED || s == MAP_FAILED) {
      int err = errno;
      if (t != MAP_FAILED) munmap(t, kTableSize);
      if (s != MAP_FAILED) munmap(s, kShadowSize);
      throw SysError(err, "cannot map the grant table of domain " + std::to_string(domid) + " (" + ErrnoText(err) + ")");
    }
    d->table_ = static_cast<GrantEntryV1*>(t);
    d->shadow_ = static_cast<uint8_t*>(s);
    d->hdr_ = reinterpret_cast<SimHeader*>(d->shadow_);
    if (d->hdr_->magic == 0) {
      if (!create) throw missing();
      d->hdr_->version = kShadowVersion;
      d->hdr_->next_ref = kGnttabReservedEntries;
      __atomic_store_n(&d->hdr_->magic, kShadowMagic, __ATOMIC_RELEASE);
    } else if (d->hdr_->magic != kShadowMagic || d->hdr_->version != kShadowVersion) {
      throw SysError(EINVAL, "the sim state in " + dir + " is from another xsw version or corrupt: remove " + sim_dir +
                                 " and start the sim again");
    }
    if (d->hdr_->dirty) d->Rebuild();
    return d;
  }
  throw SysError(EAGAIN, "domain " + std::to_string(domid) + " of the sim keeps being removed while opening it: retry");
}

SimDomain::~SimDomain() {
  if (table_) munmap(table_, kTableSize);
  if (shadow_) munmap(shadow_, kShadowSize);
  for (int fd : {lock_fd_, table_fd_, shadow_fd_, frames_fd_})
    if (fd >= 0) close(fd);
}

bool SimDomain::Lock() {
  LockFile(lock_fd_, "a sim domain's lock");
  struct stat st;
  if (fstat(lock_fd_, &st) != 0 || st.st_nlink == 0) {
    UnlockFile(lock_fd_);
    removed_ = true;
    return false;
  }
  // The previous holder died in the middle of a change: make the derived state whole.
  if (hdr_ && hdr_->dirty) Rebuild();
  return true;
}

void SimDomain::Unlock() { UnlockFile(lock_fd_); }

SimEntry& SimDomain::Entry(grant_ref_t ref) const {
  return reinterpret_cast<SimEntry*>(shadow_ + kShadowEntriesOffset)[ref];
}

bool SimDomain::FrameUsed(uint32_t frame) const {
  return (shadow_[kShadowBitmapOffset + frame / 8] >> (frame % 8)) & 1;
}

void SimDomain::SetFrameUsed(uint32_t frame, bool used) {
  uint8_t& byte = shadow_[kShadowBitmapOffset + frame / 8];
  uint8_t bit = uint8_t(1u << (frame % 8));
  byte = used ? uint8_t(byte | bit) : uint8_t(byte & ~bit);
}

uint32_t SimDomain::MapCount(grant_ref_t ref) const {
  uint32_t n = 0;
  for (const SimMapperSlot& s : Entry(ref).slots) n += s.maps;
  return n;
}

uint32_t SimDomain::used_pages() const { return hdr_->used_pages; }

GrantEntryV1 SimDomain::ReadEntry(grant_ref_t ref) const {
  return ref < kSimTableEntries ? CopyEntry(table_[ref]) : GrantEntryV1{};
}

void SimDomain::Rebuild() {
  struct stat st;
  if (fstat(frames_fd_, &st) == 0) hdr_->frame_count = uint32_t(std::min<off_t>(st.st_size / kPageSize, kSimMaxFrames));
  std::memset(shadow_ + kShadowBitmapOffset, 0, kSimMaxFrames / 8);
  uint32_t used = 0;
  for (grant_ref_t ref = kGnttabReservedEntries; ref < kSimTableEntries; ++ref) {
    SimEntry& e = Entry(ref);
    bool permitted = (LoadFlags(table_[ref]) & GTF_type_mask) == GTF_permit_access;
    // A grant whose writer died before publishing it, or an ended grant whose
    // release was cut short, is released now.
    bool unfinished = (e.state == kEntryGranted && !permitted) || (e.state == kEntryEnding && MapCount(ref) == 0) ||
                      e.state > kEntryEnding || e.frame >= kSimMaxFrames;
    if (e.state != kEntryFree && unfinished) {
      StoreFlags(table_[ref], 0);
      std::memset(&e, 0, sizeof(e));
    }
    if (e.state == kEntryFree) {
      if (LoadFlags(table_[ref]) != 0) StoreFlags(table_[ref], 0);
      continue;
    }
    ++used;
    SetFrameUsed(e.frame, true);
    RefreshFlags(ref);
  }
  hdr_->used_pages = used;
  hdr_->dirty = 0;
}

void SimDomain::GrowFrames(uint32_t frames) {
  if (frames <= hdr_->frame_count) return;
  uint32_t grown = std::max(frames, std::min(kSimMaxFrames, std::max(256u, hdr_->frame_count * 2)));
  if (ftruncate(frames_fd_, off_t(grown) * kPageSize) != 0) {
    int err = errno;
    throw SysError(err, "cannot grow the memory of domain " + std::to_string(domid_) + " (" + ErrnoText(err) + ")");
  }
  hdr_->frame_count = grown;
}

int32_t SimDomain::FindFrameRun(uint32_t count) const {
  uint32_t run = 0;
  for (uint32_t f = 0; f < kSimMaxFrames; ++f) {
    run = FrameUsed(f) ? 0 : run + 1;
    if (run == count) return int32_t(f + 1 - count);
  }
  return -1;
}

SimDomain::Granted SimDomain::Grant(uint32_t owner, domid_t to, uint32_t count, bool writable, uint32_t limit) {
  if (hdr_->destroyed)
    throw SysError(ESRCH, "domain " + std::to_string(domid_) + " is being destroyed: it cannot grant pages any more");
  if (uint64_t(hdr_->used_pages) + count > limit)
    throw SysError(ENOSPC, "gntalloc limit of " + std::to_string(limit) + " pages reached for domain " +
                               std::to_string(domid_) +
                               ": raise it (sim: xsw-sim up --gntalloc-limit; Xen: modprobe xen-gntalloc limit=N)");
  Granted g;
  uint32_t span = kSimTableEntries - kGnttabReservedEntries;
  uint32_t start = std::clamp(hdr_->next_ref, kGnttabReservedEntries, kSimTableEntries - 1);
  for (uint32_t i = 0; i < span && g.refs.size() < count; ++i) {
    grant_ref_t ref = kGnttabReservedEntries + (start - kGnttabReservedEntries + i) % span;
    if (Entry(ref).state == kEntryFree) g.refs.push_back(ref);
  }
  if (g.refs.size() < count)
    throw SysError(ENOSPC, "the grant table of domain " + std::to_string(domid_) + " is full (" +
                               std::to_string(kSimTableEntries) + " entries): free some grants first");
  // Prefer one contiguous run of frames; otherwise take the lowest free ones.
  int32_t run = FindFrameRun(count);
  for (uint32_t f = 0; g.frames.size() < count && f < kSimMaxFrames; ++f) {
    if (run >= 0) g.frames.push_back(uint32_t(run) + f);
    else if (!FrameUsed(f)) g.frames.push_back(f);
  }
  GrowFrames(*std::max_element(g.frames.begin(), g.frames.end()) + 1);

  hdr_->dirty = 1;
  uint16_t flags = GTF_permit_access | (writable ? 0 : GTF_readonly);
  for (uint32_t i = 0; i < count; ++i) {
    grant_ref_t ref = g.refs[i];
    SimEntry& e = Entry(ref);
    std::memset(&e, 0, sizeof(e));
    e.owner = owner;
    e.frame = g.frames[i];
    e.state = kEntryGranted;
    SetFrameUsed(e.frame, true);
    // Like a guest kernel: domid and frame first, flags last (release order).
    table_[ref].domid = to;
    table_[ref].frame = e.frame;
    StoreFlags(table_[ref], flags);
  }
  hdr_->used_pages += count;
  hdr_->next_ref = g.refs.back() + 1 >= kSimTableEntries ? kGnttabReservedEntries : g.refs.back() + 1;
  hdr_->dirty = 0;
  return g;
}

void SimDomain::Release(grant_ref_t ref) {
  SimEntry& e = Entry(ref);
  StoreFlags(table_[ref], 0);
  table_[ref].domid = 0;
  table_[ref].frame = 0;
  SetFrameUsed(e.frame, false);
  // Give the memory back; the page reads as zeros from now on.
  fallocate(frames_fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(e.frame) * kPageSize, kPageSize);
  std::memset(&e, 0, sizeof(e));
  if (hdr_->used_pages) --hdr_->used_pages;
}

void SimDomain::EndOne(grant_ref_t ref) {
  SimEntry& e = Entry(ref);
  if (e.notify) {  // UNMAP_NOTIFY_CLEAR_BYTE
    uint8_t zero = 0;
    if (pwrite(frames_fd_, &zero, 1, off_t(e.frame) * kPageSize + e.notify_offset) != 1) {
      // Nothing sensible to do: the frame store is the domain's memory.
    }
    e.notify = 0;
  }
  if (MapCount(ref) == 0) {
    Release(ref);
  } else {  // Xen refuses to end a mapped grant: Linux retries at the last unmap
    e.state = kEntryEnding;
    e.owner = 0;
  }
}

void SimDomain::RefreshFlags(grant_ref_t ref) {
  const SimEntry& e = Entry(ref);
  if (e.state == kEntryFree) return;
  bool reading = false, writing = false;
  for (const SimMapperSlot& s : e.slots) {
    reading = reading || s.maps > 0;
    writing = writing || s.writable_maps > 0;
  }
  uint16_t flags = LoadFlags(table_[ref]) & uint16_t(~(GTF_reading | GTF_writing));
  flags = uint16_t(flags | (reading ? GTF_reading : 0) | (writing ? GTF_writing : 0));
  StoreFlags(table_[ref], flags);
}

void SimDomain::EndGrants(uint32_t owner, const std::vector<grant_ref_t>& refs) {
  hdr_->dirty = 1;
  for (grant_ref_t ref : refs) {
    if (ref < kGnttabReservedEntries || ref >= kSimTableEntries) continue;
    const SimEntry& e = Entry(ref);
    if (e.state == kEntryGranted && e.owner == owner) EndOne(ref);
  }
  hdr_->dirty = 0;
}

void SimDomain::SetUnmapNotify(uint32_t owner, grant_ref_t ref, uint16_t offset_in_page) {
  SimEntry& e = Entry(ref);
  if (ref < kGnttabReservedEntries || ref >= kSimTableEntries || e.state != kEntryGranted || e.owner != owner)
    throw SysError(EINVAL, Ref(ref, domid_) + " is not one of this process's grants: set unmap-notify on a live allocation");
  e.notify_offset = offset_in_page;
  e.notify = 1;
}

std::vector<uint32_t> SimDomain::MapGrants(domid_t mapper_domid, uint32_t mapper, const grant_ref_t* refs,
                                           uint32_t count, bool writable) {
  if (hdr_->destroyed)
    throw SysError(ESRCH, "domain " + std::to_string(domid_) + " is being destroyed: its grants cannot be mapped");
  std::vector<uint32_t> frames(count);
  // Check every ref before recording anything: all or none.
  for (uint32_t i = 0; i < count; ++i) {
    grant_ref_t ref = refs[i];
    if (ref < kGnttabReservedEntries || ref >= kSimTableEntries)
      throw SysError(EINVAL, "grant ref " + std::to_string(ref) + " of domain " + std::to_string(domid_) +
                                 " is reserved or out of range: valid refs are " +
                                 std::to_string(kGnttabReservedEntries) + " to " + std::to_string(kSimTableEntries - 1));
    GrantEntryV1 g = CopyEntry(table_[ref]);
    const SimEntry& e = Entry(ref);
    if ((g.flags & GTF_type_mask) != GTF_permit_access || g.domid != mapper_domid || e.state == kEntryFree)
      throw SysError(EACCES, Ref(ref, domid_) + " is not granted to domain " + std::to_string(mapper_domid));
    if (writable && (g.flags & GTF_readonly))
      throw SysError(EACCES, Ref(ref, domid_) + " is read-only: map it read-only");
    if (g.frame >= hdr_->frame_count || g.frame >= kSimMaxFrames)
      throw SysError(EINVAL, Ref(ref, domid_) + " names frame " + std::to_string(g.frame) +
                                 ", outside the domain's memory");
    bool slot = false;
    for (const SimMapperSlot& s : e.slots) slot = slot || s.token == mapper || s.token == 0;
    for (const SimMapperSlot& s : e.slots)
      if (s.token == mapper && s.maps >= 0xFFF0) slot = false;
    if (!slot)
      throw SysError(EBUSY, Ref(ref, domid_) + " is already mapped by " + std::to_string(kMapperSlots) +
                                " processes (the sim's limit): unmap it elsewhere first");
    frames[i] = g.frame;
  }
  hdr_->dirty = 1;
  for (uint32_t i = 0; i < count; ++i) {
    SimEntry& e = Entry(refs[i]);
    SimMapperSlot* slot = nullptr;
    for (SimMapperSlot& s : e.slots)
      if (s.token == mapper) slot = &s;
    for (SimMapperSlot& s : e.slots)
      if (!slot && s.token == 0) slot = &s;
    slot->token = mapper;
    ++slot->maps;
    if (writable) ++slot->writable_maps;
    RefreshFlags(refs[i]);
  }
  hdr_->dirty = 0;
  return frames;
}

int16_t SimDomain::CheckCopy(domid_t copier, grant_ref_t ref, uint16_t offset, uint16_t len, bool write,
                             off_t* at) const {
  constexpr int16_t kOkay = 0, kBadDomain = -2, kBadGntref = -3, kPermissionDenied = -8, kBadCopyArg = -10;
  if (hdr_->destroyed) return kBadDomain;
  if (ref >= kSimTableEntries) return kBadGntref;
  if (uint32_t(offset) + len > kPageSize) return kBadCopyArg;
  GrantEntryV1 g = CopyEntry(table_[ref]);
  if ((g.flags & GTF_type_mask) != GTF_permit_access || g.domid != copier || Entry(ref).state == kEntryFree)
    return kPermissionDenied;
  if (write && (g.flags & GTF_readonly)) return kPermissionDenied;
  if (g.frame >= hdr_->frame_count || g.frame >= kSimMaxFrames) return kBadGntref;
  *at = off_t(g.frame) * kPageSize + offset;
  return kOkay;
}

void SimDomain::UnmapGrants(uint32_t mapper, const std::vector<grant_ref_t>& refs, bool writable) {
  hdr_->dirty = 1;
  for (grant_ref_t ref : refs) {
    if (ref < kGnttabReservedEntries || ref >= kSimTableEntries) continue;
    SimEntry& e = Entry(ref);
    for (SimMapperSlot& s : e.slots) {
      if (s.token != mapper || s.maps == 0) continue;
      --s.maps;
      if (writable && s.writable_maps) --s.writable_maps;
      if (s.maps == 0) s = SimMapperSlot{};
      break;
    }
    RefreshFlags(ref);
    if (e.state == kEntryEnding && MapCount(ref) == 0) Release(ref);
  }
  hdr_->dirty = 0;
}

void SimDomain::Reap(uint32_t token) {
  hdr_->dirty = 1;
  for (grant_ref_t ref = kGnttabReservedEntries; ref < kSimTableEntries; ++ref) {
    SimEntry& e = Entry(ref);
    if (e.state == kEntryFree) continue;
    bool touched = false;
    for (SimMapperSlot& s : e.slots) {
      if (s.token != token) continue;
      s = SimMapperSlot{};
      touched = true;
    }
    if (touched) RefreshFlags(ref);
    if (e.state == kEntryGranted && e.owner == token) EndOne(ref);
    else if (e.state == kEntryEnding && MapCount(ref) == 0) Release(ref);
  }
  hdr_->dirty = 0;
}

void SimDomain::Destroy() {
  hdr_->destroyed = 1;
  hdr_->dirty = 1;
  for (grant_ref_t ref = kGnttabReservedEntries; ref < kSimTableEntries; ++ref)
    if (Entry(ref).state == kEntryGranted) EndOne(ref);
  hdr_->dirty = 0;
}

void SimDomain::RemoveIfUnused() {
  if (!hdr_->destroyed || hdr_->used_pages != 0) return;
  for (const char* f : {"/table", "/shadow", "/frames", "/lock"}) unlink((dir_ + f).c_str());
  rmdir(dir_.c_str());
  removed_ = true;
}

}  // namespace xsw::sim
