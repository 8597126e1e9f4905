// The platform contract for grant copy and event channels, run against the
// simulated platform always and against /dev/xen when this is a Xen dom0
// (there the "guest" is dom0 itself: gntalloc grants to domain 0 and a port
// offered to domain 0, which Xen allows). Under ASan/UBSan.
#include "check.h"
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "grant/evtchn.h"
#include "grant/provider.h"

using namespace xsw;

static int ErrOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const SysError& e) {
    return e.err();
  }
  return 0;
}

struct Side {
  std::unique_ptr<GrantProvider> grants;
  std::unique_ptr<EventChannels> events;
  domid_t domid;
};

static Side OpenSide(const std::string& platform, const std::string& dir, domid_t domid) {
  GrantOptions o;
  o.platform = platform;
  o.sim_dir = dir;
  o.self_domid = domid;
  return Side{OpenGrantProvider(o), OpenEventChannels(o), domid};
}

static bool Readable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

// `guest` grants and offers; `back` (dom0) copies and binds. `other` is a
// third domain (sim only; nullptr on Xen).
static void GrantCopyRules(Side& guest, Side& back, Side* other) {
  GrantAllocation rw = guest.grants->Allocate(back.domid, 2, true);
  GrantAllocation ro = guest.grants->Allocate(back.domid, 1, false);
  for (uint32_t i = 0; i < kPageSize; ++i) rw.addr[i] = uint8_t(i * 7);
  ro.addr[100] = 0xAB;

  uint8_t in[64] = {}, out[64];
  for (int i = 0; i < 64; ++i) out[i] = uint8_t(0xC0 + i);
  GrantCopySeg s[8];
  // 0: read 64 bytes at 4000 of page 0.  1: write 64 bytes at 10 of page 1.
  s[0] = {false, guest.domid, rw.grefs[0], 4000, 64, in};
  s[1] = {true, guest.domid, rw.grefs[1], 10, 64, out};
  // 2: read-only grants can be read...  3: ...never written.
  uint8_t ro_in = 0;
  s[2] = {false, guest.domid, ro.grefs[0], 100, 1, &ro_in};
  s[3] = {true, guest.domid, ro.grefs[0], 0, 64, out};
  // 4: past the page.  5: a reserved ref.  6: a ref never granted.  7: a missing domain.
  s[4] = {false, guest.domid, rw.grefs[0], 4090, 7, in};
  s[5] = {false, guest.domid, 3, 0, 8, in};
  s[6] = {false, guest.domid, rw.grefs[1] + 1000, 0, 8, in};
  s[7] = {false, domid_t(guest.domid + 3000), rw.grefs[0], 0, 8, in};
  uint8_t before[64];
  std::memcpy(before, rw.addr + kPageSize, 64);
  back.grants->Copy(s, 8);
  CHECK_EQ(s[0].status, GNTST_okay);
  for (int i = 0; i < 64; ++i) CHECK_EQ(in[i], uint8_t((4000 + i) * 7));
  CHECK_EQ(s[1].status, GNTST_okay);
  CHECK(std::memcmp(rw.addr + kPageSize + 10, out, 64) == 0);
  CHECK(std::memcmp(rw.addr + kPageSize, before, 10) == 0);
  CHECK_EQ(s[2].status, GNTST_okay);
  CHECK_EQ(ro_in, 0xAB);
  CHECK_EQ(s[3].status, GNTST_permission_denied);
  CHECK_EQ(ro.addr[0], 0);
  CHECK_EQ(s[4].status, GNTST_bad_copy_arg);
  CHECK_EQ(s[5].status, GNTST_permission_denied);  // a reserved entry grants nothing
  CHECK(s[6].status == GNTST_permission_denied || s[6].status == GNTST_bad_gntref);
  CHECK(s[7].status == GNTST_bad_domain || s[7].status == GNTST_permission_denied);

  if (other) {
    // A third domain cannot use grants made to dom0.
    GrantCopySeg o = {false, guest.domid, rw.grefs[0], 0, 8, in};
    other->grants->Copy(&o, 1);
    CHECK_EQ(o.status, GNTST_permission_denied);
  }
  // A freed grant is gone.
  grant_ref_t freed = ro.grefs[0];
  guest.grants->Free(ro.id);
  GrantCopySeg f = {false, guest.domid, freed, 0, 8, in};
  back.grants->Copy(&f, 1);
  CHECK_EQ(f.status, GNTST_permission_denied);
  guest.grants->Free(rw.id);
}

static void EventChannelRules(Side& guest, Side& back, Side* other) {
  evtchn_port_t gport = guest.events->AllocateUnbound(back.domid);
  CHECK(gport != 0);
  if (other) {
    // Only the domain the port was offered to may bind it.
    CHECK_EQ(ErrOf([&] { other->events->BindInterdomain(guest.domid, gport); }), EINVAL);
  }
  CHECK(ErrOf([&] { back.events->BindInterdomain(guest.domid, gport + 500); }) != 0);
  evtchn_port_t bport = back.events->BindInterdomain(guest.domid, gport);
  CHECK(bport != 0);
  // Bound once: a second bind fails.
  CHECK(ErrOf([&] { back.events->BindInterdomain(guest.domid, gport); }) != 0);

  evtchn_port_t got[8];
  CHECK(!Readable(back.events->fd(), 0));
  // Guest -> back: one wake-up for several notifications while masked.
  CHECK(guest.events->Notify(gport));
  CHECK(guest.events->Notify(gport));
  CHECK(Readable(back.events->fd(), 1000));
  CHECK_EQ(back.events->Pending(got, 8), 1u);
  CHECK_EQ(got[0], bport);
  CHECK(guest.events->Notify(gport));  // arrives while masked: delivered at unmask
  CHECK(!Readable(back.events->fd(), 50));
  back.events->Unmask(bport);
  CHECK(Readable(back.events->fd(), 1000));
  CHECK_EQ(back.events->Pending(got, 8), 1u);
  back.events->Unmask(bport);
  CHECK(!Readable(back.events->fd(), 50));
  // Back -> guest.
  CHECK(back.events->Notify(bport));
  CHECK(Readable(guest.events->fd(), 1000));
  CHECK_EQ(guest.events->Pending(got, 8), 1u);
  CHECK_EQ(got[0], gport);
  guest.events->Unmask(gport);
  // Unbound by the back end: notifying it fails, and the guest's port is unbound again.
  back.events->Unbind(bport);
  CHECK(!back.events->Notify(bport));
  CHECK(!guest.events->Notify(gport));
  evtchn_port_t again = back.events->BindInterdomain(guest.domid, gport);
  CHECK(guest.events->Notify(gport));
  CHECK(Readable(back.events->fd(), 1000));
  back.events->Unbind(again);
  guest.events->Unbind(gport);
  CHECK(!guest.events->Notify(gport));
}

int main() {
  {
    char tmpl[] = "/tmp/xsw-platform-XXXXXX";
    std::string dir = mkdtemp(tmpl);
    Side back = OpenSide("sim", dir, 0);
    Side guest = OpenSide("sim", dir, 5);
    Side other = OpenSide("sim", dir, 6);
    GrantCopyRules(guest, back, &other);
    EventChannelRules(guest, back, &other);
    // A back end that dies bound (no unbind, as SIGKILL leaves it): its port
    // is closed as the kernel would, and a new back end binds the guest's.
    evtchn_port_t gport = guest.events->AllocateUnbound(0);
    pid_t child = fork();
    if (child == 0) {
      Side dying = OpenSide("sim", dir, 0);
      dying.events->BindInterdomain(5, gport);
      _exit(0);  // no destructors: nothing unbinds
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    evtchn_port_t rebound = 0;
    CHECK_EQ(ErrOf([&] { rebound = back.events->BindInterdomain(5, gport); }), 0);
    CHECK(guest.events->Notify(gport));
    CHECK(Readable(back.events->fd(), 1000));
    evtchn_port_t got[4];
    CHECK(back.events->Pending(got, 4) >= 1);
    back.events->Unbind(rebound);
    // The same while the dead back end's registration lock is still held by
    // another process for a while (as the reaper holds it while it reaps,
    // woken by that very death): the bind waits for it instead of taking
    // the port as bound by a live back end.
    gport = guest.events->AllocateUnbound(0);
    child = fork();
    if (child == 0) {
      Side dying = OpenSide("sim", dir, 0);
      dying.events->BindInterdomain(5, gport);
      if (fork() == 0) {  // inherits the registration's open file, so its lock
        usleep(150 * 1000);
        _exit(0);
      }
      _exit(0);
    }
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(ErrOf([&] { rebound = back.events->BindInterdomain(5, gport); }), 0);
    CHECK(guest.events->Notify(gport));
    CHECK(Readable(back.events->fd(), 1000));
    CHECK(back.events->Pending(got, 4) >= 1);
    back.events->Unbind(rebound);
    std::printf("sim platform: checked\n");
    std::string cmd = "rm -rf " + dir;
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir.c_str());
  }
  if (access("/dev/xen/evtchn", F_OK) == 0 && access("/dev/xen/gntalloc", F_OK) == 0) {
    Side back = OpenSide("xen", "", 0);
    Side guest = OpenSide("xen", "", 0);
    GrantCopyRules(guest, back, nullptr);
    EventChannelRules(guest, back, nullptr);
    std::printf("xen platform: checked\n");
  } else {
    std::printf("xen platform: /dev/xen/evtchn or gntalloc missing here, only the sim was checked\n");
  }
  return xsw::test::Finish("grant_platform_test");
}
