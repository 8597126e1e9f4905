// The simulated hypervisor's grant rules, under ASan/UBSan: a table of map
// attempts with the errno each must give, a process killed mid-life, and the
// recovery of derived state after a writer died in the middle of an update.
#include "check.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "grant/provider.h"
#include "grant/sim_domain.h"
#include "grant/sim_layout.h"
#include "grant/sim_provider.h"

using namespace xsw;

using ::xsw::test::failures;

// The errno fn throws as SysError, 0 when it does not throw.
static int ErrOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const SysError& e) {
    return e.err();
  }
  return 0;
}

static std::unique_ptr<GrantProvider> Open(const std::string& dir, domid_t domid) {
  GrantOptions o;
  o.platform = "sim";
  o.sim_dir = dir;
  o.self_domid = domid;
  return OpenGrantProvider(o);
}

static std::string TempDir() {
  char tmpl[] = "/tmp/xsw-gnt-native-XXXXXX";
  return mkdtemp(tmpl);
}

// Rows of (who maps, which ref, writable) -> errno, like ocaml-xenstore's tables.
static void MapRulesTable(const std::string& dir) {
  auto guest = Open(dir, 1);
  auto dom0 = Open(dir, 0);
  auto dom2 = Open(dir, 2);
  GrantAllocation rw = guest->Allocate(0, 1, true);
  GrantAllocation ro = guest->Allocate(0, 1, false);
  struct Row {
    const char* name;
    GrantProvider* mapper;
    grant_ref_t ref;
    bool writable;
    int err;
  } rows[] = {
      {"named domain, writable", dom0.get(), rw.grefs[0], true, 0},
      {"named domain, read-only map of rw", dom0.get(), rw.grefs[0], false, 0},
      {"other domain", dom2.get(), rw.grefs[0], false, EACCES},
      {"read-only grant, read-only map", dom0.get(), ro.grefs[0], false, 0},
      {"read-only grant, writable map", dom0.get(), ro.grefs[0], true, EACCES},
      {"reserved ref 0", dom0.get(), 0, false, EINVAL},
      {"reserved ref 7", dom0.get(), 7, false, EINVAL},
      {"ref past the table", dom0.get(), sim::kSimTableEntries, false, EINVAL},
      {"never granted", dom0.get(), ro.grefs[0] + 50, false, EACCES},
  };
  for (const Row& r : rows) {
    uint64_t id = 0;
    int err = ErrOf([&] { id = r.mapper->Map(1, &r.ref, 1, r.writable).id; });
    if (err != r.err) {
      std::fprintf(stderr, "map rule '%s': got %s, want %s\n", r.name, ErrnoName(err), ErrnoName(r.err));
      ++failures;
    }
    if (err == 0) r.mapper->Unmap(id);
  }
  CHECK(ErrOf([&] { dom0->Map(1, rw.grefs.data(), 0, false); }) == EINVAL);
  CHECK(ErrOf([&] { dom0->Map(42, rw.grefs.data(), 1, false); }) == ENOENT);
  CHECK(ErrOf([&] { guest->Allocate(0, 0, true); }) == EINVAL);
  CHECK(ErrOf([&] { guest->Allocate(kDomidFirstReserved, 1, true); }) == EINVAL);
  CHECK(ErrOf([&] { guest->SetUnmapNotify(rw.id, kPageSize); }) == EINVAL);
  CHECK(ErrOf([&] { guest->Free(999); }) == EINVAL);
}

// Each mapping slot of an entry holds one process; the fifth is refused.
static void MapperSlots(const std::string& dir) {
  auto guest = Open(dir, 1);
  GrantAllocation a = guest->Allocate(0, 1, true);
  std::unique_ptr<GrantProvider> mappers[sim::kMapperSlots + 1];
  for (auto& m : mappers) m = Open(dir, 0);
  for (int i = 0; i < sim::kMapperSlots; ++i) CHECK(ErrOf([&] { mappers[i]->Map(1, a.grefs.data(), 1, false); }) == 0);
  CHECK(ErrOf([&] { mappers[sim::kMapperSlots]->Map(1, a.grefs.data(), 1, false); }) == EBUSY);
  mappers[0].reset();  // closing releases its slot
  CHECK(ErrOf([&] { mappers[sim::kMapperSlots]->Map(1, a.grefs.data(), 1, false); }) == 0);
}

// A writer that died with `dirty` set leaves counters and flags to rebuild;
// a grant it never published is released.
static void RebuildAfterCrash(const std::string& dir) {
  auto guest = Open(dir, 1);
  guest->Allocate(0, 3, true);
  int fd = open((dir + "/dom1/shadow").c_str(), O_RDWR);
  CHECK(fd >= 0);
  void* p = mmap(nullptr, sim::kShadowSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  CHECK(p != MAP_FAILED);
  auto* hdr = static_cast<sim::SimHeader*>(p);
  auto* entries = reinterpret_cast<sim::SimEntry*>(static_cast<uint8_t*>(p) + sim::kShadowEntriesOffset);
  // A half-done Grant: shadow says granted, the table entry was never published.
  entries[500].state = sim::kEntryGranted;
  entries[500].owner = 12345;
  entries[500].frame = 77;
  hdr->used_pages = 999;
  hdr->dirty = 1;
  auto d = sim::SimDomain::Open(dir, 1, false);
  CHECK(d->Lock());
  CHECK(d->used_pages() == 3);
  CHECK(hdr->dirty == 0);
  CHECK(entries[500].state == sim::kEntryFree);
  d->Unlock();
  munmap(p, sim::kShadowSize);
  close(fd);
  // The allocator still works on the rebuilt state: 1021 more fit, not 1022.
  CHECK(ErrOf([&] { guest->Allocate(0, 1022, true); }) == ENOSPC);
  CHECK(ErrOf([&] { guest->Allocate(0, 1021, true); }) == 0);
}

// A child that allocated and set unmap-notify is SIGKILLed; our reaper
// clears its byte and, after our unmap, its grant is gone.
static void KilledAllocator(const std::string& dir) {
  int to_parent[2], to_child[2];
  CHECK(pipe(to_parent) == 0 && pipe(to_child) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    auto g = Open(dir, 5);
    GrantAllocation a = g->Allocate(0, 1, true);
    g->SetUnmapNotify(a.id, 100);
    a.addr[100] = kVringFlagLive;
    (void)!write(to_parent[1], &a.grefs[0], sizeof(grant_ref_t));
    char c;
    (void)!read(to_child[0], &c, 1);  // wait to be killed
    _exit(0);
  }
  grant_ref_t ref = 0;
  CHECK(read(to_parent[0], &ref, sizeof(ref)) == sizeof(ref));
  auto dom0 = Open(dir, 0);
  GrantMapping m = dom0->Map(5, &ref, 1, false);
  CHECK(m.addr[100] == kVringFlagLive);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (__atomic_load_n(&m.addr[100], __ATOMIC_ACQUIRE) != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(m.addr[100] == 0);
  dom0->Unmap(m.id);
  auto d = sim::SimDomain::Open(dir, 5, false);
  CHECK(d->Lock());
  CHECK(d->ReadEntry(ref).flags == 0);
  CHECK(d->used_pages() == 0);
  d->Unlock();
}

int main() {
  CHECK(std::string(ErrnoName(ENOSPC)) == "ENOSPC");
  CHECK(std::string(ErrnoName(EACCES)) == "EACCES");
  std::string dirs[4] = {TempDir(), TempDir(), TempDir(), TempDir()};
  KilledAllocator(dirs[0]);  // first: fork while this process has no threads
  MapRulesTable(dirs[1]);
  MapperSlots(dirs[2]);
  RebuildAfterCrash(dirs[3]);
  for (const std::string& d : dirs) (void)!system(("rm -rf " + d).c_str());
  return xsw::test::Finish("grant_sim_test");
}
