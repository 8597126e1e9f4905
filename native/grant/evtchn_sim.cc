// Simulated event channels: Xen's rules over files in the sim directory.
//
//   <sim dir>/evtchn/dom<D>      D's port table: SimPort[kSimPorts], mapped
//                                MAP_SHARED by every process; flock'd while a
//                                port is allocated, bound or closed
//   <sim dir>/evtchn/p<token>    a FIFO per process that owns ports: a
//                                notification writes the port number there
//
// Binding checks what Xen checks: the remote port is unbound and was offered
// to the binding domain. Notify is lock-free: it marks the peer's port
// pending and, unless a wake-up is already queued for it, writes the port
// number into its owner's FIFO (4 bytes: atomic under PIPE_BUF).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <vector>

#include "grant/evtchn.h"
#include "grant/sim_dir.h"

namespace xsw {
namespace {

constexpr uint32_t kSimPorts = 1024;
// How long a bind waits for a dead port owner's registration lock held by a
// reaper (OwnerDead); only a bind that meets a live owner waits it all.
constexpr int kOwnerLockWaitMs = 1000;
enum PortState : uint32_t { kPortFree = 0, kPortUnbound = 1, kPortInterdomain = 2 };

struct SimPort {
  uint32_t state;
  uint32_t remote_dom;   // unbound: who may bind; interdomain: the peer
  uint32_t remote_port;  // interdomain: the peer's port
  uint32_t owner;        // token of the owning process (its FIFO)
  uint32_t pending;      // an event came and was not read yet
  uint32_t queued;       // a wake-up is in the owner's FIFO or the port is masked
  uint32_t pad[2];
};
static_assert(sizeof(SimPort) == 32, "sim port");
constexpr size_t kTableBytes = sizeof(SimPort) * kSimPorts;

uint32_t Load(const uint32_t& v) { return __atomic_load_n(&v, __ATOMIC_ACQUIRE); }
void Store(uint32_t& v, uint32_t x) { __atomic_store_n(&v, x, __ATOMIC_RELEASE); }
uint32_t Exchange(uint32_t& v, uint32_t x) { return __atomic_exchange_n(&v, x, __ATOMIC_ACQ_REL); }

// One domain's port table, mapped.
struct PortTable {
  int fd = -1;
  SimPort* ports = nullptr;
  ~PortTable() {
    if (ports) munmap(ports, kTableBytes);
    if (fd >= 0) close(fd);
  }
};

std::unique_ptr<PortTable> OpenTable(const std::string& dir, domid_t domid, bool create) {
  std::string path = dir + "/evtchn/dom" + std::to_string(domid);
  auto t = std::make_unique<PortTable>();
  t->fd = open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
  if (t->fd < 0) {
    int err = errno;
    if (err == ENOENT)
      throw SysError(ESRCH, "domain " + std::to_string(domid) + " has no event channels in the sim: start it first");
    throw SysError(err, "cannot open " + path + " (" + ErrnoText(err) + ")");
  }
  struct stat st;
  if (fstat(t->fd, &st) != 0 || (size_t(st.st_size) != kTableBytes && ftruncate(t->fd, off_t(kTableBytes)) != 0)) {
    int err = errno;
    throw SysError(err, "cannot size " + path + " (" + ErrnoText(err) + ")");
  }
  void* p = mmap(nullptr, kTableBytes, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    throw SysError(err, "cannot map " + path + " (" + ErrnoText(err) + ")");
  }
  t->ports = static_cast<SimPort*>(p);
  return t;
}

class SimEventChannels : public EventChannels {
 public:
  SimEventChannels(const std::string& dir, domid_t self) : dir_(dir), self_(self), reg_(dir, self) {
    std::string ev = dir_ + "/evtchn";
    if (mkdir(ev.c_str(), 0700) != 0 && errno != EEXIST) {
      int err = errno;
      throw SysError(err, "cannot create " + ev + " (" + ErrnoText(err) + ")");
    }
    own_ = OpenTable(dir_, self_, true);
    fifo_path_ = FifoPath(reg_.token());
    unlink(fifo_path_.c_str());
    if (mkfifo(fifo_path_.c_str(), 0600) != 0) {
      int err = errno;
      throw SysError(err, "cannot create " + fifo_path_ + " (" + ErrnoText(err) + ")");
    }
    fifo_ = open(fifo_path_.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fifo_ < 0) {
      int err = errno;
      unlink(fifo_path_.c_str());
      throw SysError(err, "cannot open " + fifo_path_ + " (" + ErrnoText(err) + ")");
    }
    peers_.resize(kDomidFirstReserved);
    peer_fifo_.assign(kSimPorts, PeerFifo{});
  }

  ~SimEventChannels() override {
    for (evtchn_port_t p = 1; p < kSimPorts; ++p) {
      SimPort& e = own_->ports[p];
      if (Load(e.state) != kPortFree && Load(e.owner) == reg_.token()) {
        try {
          Unbind(p);
        } catch (const SysError&) {
        }
      }
    }
    for (PeerFifo& f : peer_fifo_)
      if (f.fd >= 0) close(f.fd);
    close(fifo_);
    unlink(fifo_path_.c_str());
  }

  const char* kind() const override { return "sim"; }

  evtchn_port_t AllocateUnbound(domid_t remote) override {
    if (remote >= kDomidFirstReserved)
      throw SysError(EINVAL, "cannot offer an event channel to domain " + std::to_string(remote) +
                                 ": it is not a real domain id");
    Locked lock(own_->fd);
    evtchn_port_t p = FreePort(*own_);
    SimPort& e = own_->ports[p];
    e.remote_dom = remote;
    e.remote_port = 0;
    e.owner = reg_.token();
    e.pending = 0;
    e.queued = 0;
    Store(e.state, kPortUnbound);
    return p;
  }

  evtchn_port_t BindInterdomain(domid_t remote, evtchn_port_t remote_port) override {
    if (remote >= kDomidFirstReserved)
      throw SysError(EINVAL, "cannot bind an event channel of domain " + std::to_string(remote) +
                                 ": it is not a real domain id");
    PortTable& peer = Peer(remote);
    // Both tables locked, lower domid first (one lock when binding to ourselves).
    Locked first(remote < self_ ? peer.fd : own_->fd);
    Locked second(remote == self_ ? -1 : remote < self_ ? own_->fd : peer.fd);
    if (remote_port != 0 && remote_port < kSimPorts) ReleaseIfOwnerDead(remote, remote_port, peer.ports[remote_port]);
    if (remote_port == 0 || remote_port >= kSimPorts || Load(peer.ports[remote_port].state) != kPortUnbound ||
        peer.ports[remote_port].remote_dom != self_)
      throw SysError(EINVAL, "event channel " + std::to_string(remote_port) + " of domain " + std::to_string(remote) +
                                 " is not an unbound port offered to domain " + std::to_string(self_) +
                                 ": check the port the guest published");
    evtchn_port_t p = FreePort(*own_);
    SimPort& e = own_->ports[p];
    e.remote_dom = remote;
    e.remote_port = remote_port;
    e.owner = reg_.token();
    e.pending = 0;
    e.queued = 0;
    SimPort& r = peer.ports[remote_port];
    r.remote_port = p;
    Store(r.state, kPortInterdomain);
    Store(e.state, kPortInterdomain);
    return p;
  }

  // Like EVTCHNOP_close: our port is freed and the peer's becomes unbound
  // again (offered to us), as Xen leaves it.
  void Unbind(evtchn_port_t port) override {
    if (port == 0 || port >= kSimPorts) return;
    SimPort& e = own_->ports[port];
    uint32_t remote = Load(e.remote_dom);
    if (Load(e.state) == kPortInterdomain && remote < kDomidFirstReserved) {
      PortTable* peer = nullptr;
      try {
        peer = &Peer(domid_t(remote));
      } catch (const SysError&) {
      }
      Locked first(peer && remote < self_ ? peer->fd : own_->fd);
      Locked second(!peer || remote == self_ ? -1 : remote < self_ ? own_->fd : peer->fd);
      if (peer) {
        SimPort& r = peer->ports[e.remote_port];
        if (Load(r.state) == kPortInterdomain && r.remote_dom == self_ && r.remote_port == port) {
          r.remote_port = 0;
          Store(r.state, kPortUnbound);
        }
      }
      Store(e.state, kPortFree);
    } else {
      Locked lock(own_->fd);
      Store(e.state, kPortFree);
    }
  }

  bool Notify(evtchn_port_t port) override {
    if (port == 0 || port >= kSimPorts) return false;
    const SimPort& e = own_->ports[port];
    if (Load(e.state) != kPortInterdomain) return false;
    uint32_t remote = e.remote_dom, rport = e.remote_port;
    if (remote >= kDomidFirstReserved || rport == 0 || rport >= kSimPorts) return false;
    PortTable* peer = peers_[remote].get();
    if (!peer) {  // first notification to a peer that bound to us: map its table once
      try {
        peer = &Peer(domid_t(remote));
      } catch (const SysError&) {
        return false;
      }
    }
    SimPort& r = peer->ports[rport];
    if (Load(r.state) != kPortInterdomain || r.remote_dom != self_ || r.remote_port != port) return false;
    Store(r.pending, 1);
    if (Exchange(r.queued, 1) == 0) Wake(port, Load(r.owner), rport);
    return true;
  }

  int fd() const override { return fifo_; }

  uint32_t Pending(evtchn_port_t* ports, uint32_t max) override {
    ssize_t n = read(fifo_, ports, size_t(max) * sizeof(evtchn_port_t));
    if (n <= 0) return 0;
    uint32_t count = uint32_t(size_t(n) / sizeof(evtchn_port_t));
    for (uint32_t i = 0; i < count; ++i)
      if (ports[i] < kSimPorts) Store(own_->ports[ports[i]].pending, 0);
    return count;
  }

  void Unmask(evtchn_port_t port) override {
    if (port == 0 || port >= kSimPorts) return;
    SimPort& e = own_->ports[port];
    Store(e.queued, 0);
    if (Load(e.pending) && Exchange(e.queued, 1) == 0) {
      if (write(fifo_, &port, sizeof(port)) != ssize_t(sizeof(port))) Store(e.queued, 0);
    }
  }

 private:
  struct PeerFifo {
    uint32_t token = 0;
    int fd = -1;
  };

  // flock for as long as it lives; fd -1 takes nothing.
  struct Locked {
    int fd;
    explicit Locked(int f) : fd(f) {
      if (fd >= 0) sim::LockFile(fd, "a sim event-channel table");
    }
    ~Locked() {
      if (fd >= 0) sim::UnlockFile(fd);
    }
  };

  std::string FifoPath(uint32_t token) const { return dir_ + "/evtchn/p" + std::to_string(token); }

  // Like the kernel closing a dead process's /dev/xen/evtchn: when the port
  // `r` is bound to one of ours whose owner died, ours is freed and `r`
  // becomes unbound (offered to us) again. Both tables are locked.
  void ReleaseIfOwnerDead(domid_t remote, evtchn_port_t rport, SimPort& r) {
    if (Load(r.state) != kPortInterdomain || r.remote_dom != self_ || r.remote_port == 0 || r.remote_port >= kSimPorts)
      return;
    SimPort& ours = own_->ports[r.remote_port];
    bool points_back = Load(ours.state) == kPortInterdomain && ours.remote_dom == remote && ours.remote_port == rport;
    if (points_back) {
      uint32_t owner = Load(ours.owner);
      if (owner == reg_.token() || !OwnerDead(owner)) return;  // bound by a live process
      Store(ours.state, kPortFree);
    }
    r.remote_port = 0;
    Store(r.state, kPortUnbound);
  }

  // A process holds its procs/<token> file locked while it lives. A reaper
  // that found it dead holds the lock too, while it undoes what the process
  // left, and then removes the file (sim_provider.cc); it wakes at the death,
  // so right when a new back end binds again. A lock that lasts longer than
  // kOwnerLockWaitMs is taken as the owner's.
  bool OwnerDead(uint32_t token) const {
    std::string path = dir_ + "/procs/" + std::to_string(token);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT;
    bool dead = false;
    for (int waited_ms = 0;; ++waited_ms) {
      if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        flock(fd, LOCK_UN);
        dead = true;
        break;
      }
      if (waited_ms >= kOwnerLockWaitMs) break;
      usleep(1000);
    }
    close(fd);
    return dead;
  }

  static evtchn_port_t FreePort(PortTable& t) {
    for (evtchn_port_t p = 1; p < kSimPorts; ++p)
      if (Load(t.ports[p].state) == kPortFree) return p;
    throw SysError(ENOSPC, "all " + std::to_string(kSimPorts) + " event channels of this domain are in use: unbind some");
  }

  PortTable& Peer(domid_t remote) {
    if (remote == self_) return *own_;
    if (!peers_[remote]) peers_[remote] = OpenTable(dir_, remote, false);
    return *peers_[remote];
  }

  // Writes the peer's port number into its owner's FIFO (opened once per
  // owner and local port; a dead owner's FIFO is gone, and so is the event).
  void Wake(evtchn_port_t local, uint32_t owner, evtchn_port_t rport) {
    PeerFifo& f = peer_fifo_[local];
    if (f.token != owner || f.fd < 0) {
      if (f.fd >= 0) close(f.fd);
      f.token = owner;
      f.fd = open(FifoPath(owner).c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    }
    if (f.fd >= 0 && write(f.fd, &rport, sizeof(rport)) != ssize_t(sizeof(rport))) {
      // Full FIFO: the reader has thousands of wake-ups queued already.
    }
  }

  std::string dir_;
  domid_t self_;
  sim::ProcRegistration reg_;
  std::unique_ptr<PortTable> own_;
  std::string fifo_path_;
  int fifo_ = -1;
  std::vector<std::unique_ptr<PortTable>> peers_;
  std::vector<PeerFifo> peer_fifo_;
};

}  // namespace

std::unique_ptr<EventChannels> OpenSimEventChannels(const std::string& sim_dir, domid_t self_domid) {
  if (self_domid >= kDomidFirstReserved)
    throw SysError(EINVAL, "sim domain id " + std::to_string(self_domid) + " is not a real domain id");
  std::string dir = sim::ResolveSimDir(sim_dir);
  sim::EnsureSimDir(dir);
  return std::make_unique<SimEventChannels>(dir, self_domid);
}

}  // namespace xsw
