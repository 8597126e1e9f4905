// vhost-user ports (native/vhost/) driven by a hand-written front end in the
// same process: a memfd as the peer's memory, the peer's rings laid out in it
// with VringDriver, every message sent by hand. Covers the setup a
// virtio_user peer does, MAC learning, memory-table changes, GET_VRING_BASE,
// the 12-byte header, and each hostile case: one log line, the device
// detached, the connection dropped, never a crash (ASan/UBSan), and two
// other vhost-user devices switching meanwhile lose nothing.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "check.h"
#include "common/ethernet.h"
#include "shm/vring.h"
#include "switch/switch.h"
#include "vhost/memory.h"
#include "vhost/message.h"
#include "vhost/port.h"

using namespace xsw;
using namespace xsw::vhost;

namespace {

constexpr uint32_t kNum = 64;
constexpr size_t kMem = 1 << 20;
constexpr uint64_t kRingOff[2] = {0, 16384};  // rx, tx
constexpr uint64_t kBufOff = 65536;
constexpr uint32_t kBuf = 2048;

std::string SockPath(const char* name) { return "/tmp/xsw-vhost-test-" + std::to_string(getpid()) + "-" + name; }

// The front end: a memfd, two rings in it, a socket to the port.
struct Peer {
  int fd = -1;
  int memfd = -1;
  uint8_t* mem = nullptr;
  std::unique_ptr<VringDriver> ring[2];
  uint32_t next_tx = 0;

  explicit Peer(const std::string& path) {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
    memfd = memfd_create("peer", MFD_CLOEXEC);
    if (ftruncate(memfd, kMem) != 0) std::abort();
    mem = static_cast<uint8_t*>(mmap(nullptr, kMem, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0));
    for (int q = 0; q < 2; ++q) {
      ring[q] = std::make_unique<VringDriver>(mem + kRingOff[q], kNum);
      ring[q]->Init();
    }
  }
  ~Peer() {
    Close();
    if (mem) munmap(mem, kMem);
    if (memfd >= 0) close(memfd);
  }
  void Close() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
  uint64_t Addr(uint64_t off) const { return reinterpret_cast<uint64_t>(mem) + off; }

  bool Send(uint32_t req, const void* payload, uint32_t size, const int* fds = nullptr, uint32_t nfds = 0,
            uint32_t flags = kFlagVersion) {
    std::string why;
    return SendMessage(fd, req, flags, payload, size, fds, nfds, &why);
  }
  bool SendU64(uint32_t req, uint64_t v, int kfd = -1) { return Send(req, &v, 8, kfd >= 0 ? &kfd : nullptr, kfd >= 0 ? 1 : 0); }
  bool SendState(uint32_t req, uint32_t index, uint32_t num) {
    VringState s{index, num};
    return Send(req, &s, sizeof s);
  }
  // One reply (the port has already written it): its u64 payload, or ~0.
  uint64_t ReplyU64() {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 1000) != 1) return ~0ull;
    uint8_t buf[12 + 8];
    if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) != ssize_t(sizeof buf)) return ~0ull;
    uint64_t v;
    std::memcpy(&v, buf + 12, 8);
    return v;
  }
  void SendTable(uint64_t size = kMem) {
    uint8_t t[8 + sizeof(MemRegion)] = {};
    uint32_t n = 1;
    std::memcpy(t, &n, 4);
    MemRegion r{Addr(0), size, Addr(0), 0};
    std::memcpy(t + 8, &r, sizeof r);
    Send(kSetMemTable, t, sizeof t, &memfd, 1);
  }
  void SendRing(uint32_t q, uint64_t desc_off_shift = 0) {
    SendState(kSetVringNum, q, kNum);
    SendState(kSetVringBase, q, 0);
    const uint64_t base = Addr(kRingOff[q]) + desc_off_shift;
    VringAddr a{q, 0, base, base + VringUsedOffset(kNum), base + VringAvailOffset(kNum), 0};
    Send(kSetVringAddr, &a, sizeof a);
    SendU64(kSetVringKick, q | kVringNoFd);
  }
  // RX buffers: one 2 KiB buffer per descriptor.
  void FillRx() {
    for (uint32_t i = 0; i < kNum; ++i) {
      DriverBuf b{Addr(kBufOff + uint64_t(kNum + i) * kBuf), kBuf};
      ring[kRxQueue]->Add(&b, 0, 1, i);
    }
    ring[kRxQueue]->Publish();
  }
  void SendFrame(const std::vector<uint8_t>& f, uint64_t addr_override = 0) {
    uint8_t* buf = mem + kBufOff + uint64_t(next_tx % kNum) * kBuf;
    std::memset(buf, 0, kVirtioNetHdrLenV1);
    std::memcpy(buf + kVirtioNetHdrLenV1, f.data(), f.size());
    DriverBuf b{addr_override ? addr_override : Addr(kBufOff + uint64_t(next_tx % kNum) * kBuf),
                uint32_t(kVirtioNetHdrLenV1 + f.size())};
    ++next_tx;
    UsedEntry done[kNum];
    ring[kTxQueue]->Harvest(done, kNum);
    ring[kTxQueue]->Add(&b, 1, 0, 0);
    ring[kTxQueue]->Publish();
  }
  // Frames the switch delivered since the last call; checks each header says num_buffers = 1.
  uint32_t Received(bool* headers_ok) {
    UsedEntry e[kNum];
    uint32_t n = ring[kRxQueue]->Harvest(e, kNum);
    for (uint32_t i = 0; i < n; ++i) {
      const uint8_t* b = mem + kBufOff + uint64_t(kNum + e[i].cookie) * kBuf;
      if (b[10] != 1 || b[11] != 0 || b[0] != 0) *headers_ok = false;
      DriverBuf again{Addr(kBufOff + uint64_t(kNum + e[i].cookie) * kBuf), kBuf};
      ring[kRxQueue]->Add(&again, 0, 1, e[i].cookie);
    }
    ring[kRxQueue]->Publish();
    return n;
  }
};

std::vector<uint8_t> Frame(uint64_t dst, uint64_t src, uint32_t len) {
  std::vector<uint8_t> f(len, 0x5A);
  PutMac(f.data(), dst);
  PutMac(f.data() + 6, src);
  PutBe16(f.data() + 12, 0x0800);
  return f;
}

// Everything the port logged, as one string.
std::string Logs(Port& p) {
  std::string s;
  for (const LogLine& l : p.DrainLog()) s += l.text + "\n";
  return s;
}

// The setup virtio_user does, with the port handling each message as it comes.
void Setup(Peer& peer, Port& port, bool enable = true) {
  peer.Send(kSetOwner, nullptr, 0);
  peer.Send(kGetFeatures, nullptr, 0);
  port.OnReadable();
  CHECK_EQ(peer.ReplyU64(), kOfferedFeatures | kFeatureInOrder);  // one data thread: rings in order
  peer.Send(kGetProtocolFeatures, nullptr, 0);
  port.OnReadable();
  CHECK_EQ(peer.ReplyU64(), kOfferedProtocolFeatures);
  peer.SendU64(kSetProtocolFeatures, kProtocolStatus);
  peer.SendU64(kSetFeatures, kFeatureVersion1 | kFeatureProtocolFeatures);
  peer.SendTable();
  peer.SendRing(kRxQueue);
  peer.SendRing(kTxQueue);
  if (enable) {
    peer.SendState(kSetVringEnable, kRxQueue, 1);
    peer.SendState(kSetVringEnable, kTxQueue, 1);
  }
  port.OnReadable();
  port.TakeRetiredFds();
}

constexpr uint64_t kMacA = 0x020000000a01, kMacB = 0x020000000b01, kMacC = 0x020000000c01;

// A and B, two good devices; n frames A -> B through the switch.
struct Pair {
  Switch sw{SwitchConfig{}, nullptr};
  Port pa{&sw, PortConfig{SockPath("a"), false, 0, 0x8000}};
  Port pb{&sw, PortConfig{SockPath("b"), false, kMacB, 0x8001}};
  Peer a{SockPath("a")}, b{SockPath("b")};
  Pair() {
    pa.OnReadable();
    pb.OnReadable();
    Setup(a, pa);
    Setup(b, pb);
    b.FillRx();
  }
  // Sends n frames A -> B; returns how many B got, all with good headers.
  uint32_t Exchange(uint32_t n) {
    uint32_t got = 0;
    bool headers_ok = true;
    for (uint32_t i = 0; i < n; ++i) {
      a.SendFrame(Frame(kMacB, kMacA, 60 + i % 1400));
      pa.Tick();  // learns A's MAC from its first frame
      sw.PollOnce();
      got += b.Received(&headers_ok);
    }
    CHECK(headers_ok);
    return got;
  }
};

void TestLearnAndSwitch() {
  Pair p;
  CHECK_EQ(p.pb.slot(), 0);  // B has its MAC from the command line
  CHECK_EQ(p.pa.slot(), -1);  // A waits for its first frame
  CHECK_EQ(p.Exchange(100), 100u);
  CHECK_EQ(p.pa.slot(), 1);
  std::string log = Logs(p.pa);
  CHECK(log.find("(1) MAC_ADDRESS 02:00:00:00:0a:01 and VLAN_TAG 1001 registered") != std::string::npos);
  auto stats = p.sw.Stats();
  CHECK_EQ(stats.size(), 2u);
  for (auto& s : stats) {
    if (s.mac == kMacA) CHECK_EQ(s.tx_total, 100u);
    if (s.mac == kMacB) CHECK_EQ(s.rx_total - s.rx_dropped, 100u);
    CHECK_EQ(s.vlan, 1000 + s.slot);
  }
}

// With two data threads a handed-over chain comes back after later ones, so
// the port must not promise VIRTIO_F_IN_ORDER (Switch::RingsInOrder).
void TestNoInOrderWithTwoThreads() {
  SwitchConfig cfg;
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof set, &set);
  for (int c = 0; c < CPU_SETSIZE && cfg.cores.size() < 2; ++c)
    if (CPU_ISSET(c, &set)) cfg.cores.push_back(c);
  if (cfg.cores.size() < 2) {
    std::fprintf(stderr, "vhost_test: IN_ORDER with two threads not checked: this process may use one CPU only\n");
    return;
  }
  Switch sw{cfg, nullptr};  // never started: its threads are not needed to ask for features
  CHECK(!sw.RingsInOrder());
  Port port{&sw, PortConfig{SockPath("t"), false, 0, 0x8000}};
  Peer peer{SockPath("t")};
  port.OnReadable();
  peer.Send(kSetOwner, nullptr, 0);
  peer.Send(kGetFeatures, nullptr, 0);
  port.OnReadable();
  CHECK_EQ(peer.ReplyU64(), kOfferedFeatures);
}

void TestMemTableChangeAndStop() {
  Pair p;
  CHECK_EQ(p.Exchange(10), 10u);
  // ENABLE 0 -> SET_MEM_TABLE -> ENABLE 1, as virtio_user does when its memory grows.
  p.b.SendState(kSetVringEnable, kRxQueue, 0);
  p.pb.OnReadable();
  CHECK_EQ(p.pb.slot(), -1);
  p.b.SendTable();
  p.b.SendState(kSetVringEnable, kRxQueue, 1);
  p.pb.OnReadable();
  CHECK_EQ(p.pb.slot(), 0);
  CHECK_EQ(p.Exchange(10), 10u);
  // Stop: ENABLE 0 and GET_VRING_BASE, which says where the switch got to.
  p.a.SendState(kSetVringEnable, kTxQueue, 0);
  p.a.SendState(kGetVringBase, kTxQueue, 0);
  p.pa.OnReadable();
  CHECK_EQ(p.pa.slot(), -1);
  uint64_t base = p.a.ReplyU64();
  CHECK_EQ(uint32_t(base >> 32), 20u);  // VringState {index, num}: num is the high half
  // The peer goes away: detached, memory unmapped, the port listens again.
  p.b.Close();
  p.pb.OnReadable();
  CHECK_EQ(p.pb.slot(), -1);
  CHECK(!p.pb.connected());
  CHECK(Logs(p.pb).find("the peer closed the connection; device detached and its memory unmapped") != std::string::npos);
}

// One hostile peer on port C per case, while A and B keep switching.
template <typename F>
void Hostile(const char* name, const char* expect, F attack) {
  Pair p;
  Port pc{&p.sw, PortConfig{SockPath("c"), false, kMacC, 0x8002}};
  Logs(pc);
  {
    Peer c{SockPath("c")};
    pc.OnReadable();  // accept
    attack(c, pc, p.sw);
  }
  pc.OnReadable();
  pc.Tick();
  const std::string log = Logs(pc);
  if (log.find(expect) == std::string::npos) {
    std::fprintf(stderr, "%s: expected a log line with '%s', got:\n%s", name, expect, log.c_str());
    ++xsw::test::failures;
  }
  size_t lines = 0;
  for (size_t at = log.find("device detached"); at != std::string::npos; at = log.find("device detached", at + 1)) ++lines;
  if (lines != 1) {
    std::fprintf(stderr, "%s: expected one detach line, got %zu:\n%s", name, lines, log.c_str());
    ++xsw::test::failures;
  }
  CHECK_EQ(pc.slot(), -1);
  CHECK(!pc.connected());
  for (auto& s : p.sw.Stats()) CHECK(s.mac != kMacC || s.state == DeviceState::kRemoved);
  CHECK_EQ(p.Exchange(50), 50u);  // the others lose nothing
}

void TestHostile() {
  Hostile("oversized", "more than any request has", [](Peer& c, Port& pc, Switch&) {
    MsgHeader h{kSetOwner, kFlagVersion, 100000};
    (void)!write(c.fd, &h, sizeof h);
    pc.OnReadable();
  });
  Hostile("bad size", "SET_VRING_NUM with a 4-byte payload", [](Peer& c, Port& pc, Switch&) {
    c.Send(kSetOwner, nullptr, 0);
    uint32_t x = 256;
    c.Send(kSetVringNum, &x, 4);
    pc.OnReadable();
  });
  Hostile("out of order: table first", "SET_MEM_TABLE before SET_FEATURES (out of order)", [](Peer& c, Port& pc, Switch&) {
    c.Send(kSetOwner, nullptr, 0);
    c.SendTable();
    pc.OnReadable();
  });
  Hostile("out of order: address first", "SET_VRING_ADDR for queue 1 before its SET_VRING_NUM (out of order)",
          [](Peer& c, Port& pc, Switch&) {
            c.Send(kSetOwner, nullptr, 0);
            c.SendU64(kSetFeatures, kFeatureVersion1);
            VringAddr a{1, 0, c.Addr(0), c.Addr(8192), c.Addr(4096), 0};
            c.Send(kSetVringAddr, &a, sizeof a);
            pc.OnReadable();
          });
  Hostile("out of order: owner twice", "a second SET_OWNER (out of order)", [](Peer& c, Port& pc, Switch&) {
    c.Send(kSetOwner, nullptr, 0);
    c.Send(kSetOwner, nullptr, 0);
    pc.OnReadable();
  });
  Hostile("unknown request", "request 99", [](Peer& c, Port& pc, Switch&) {
    c.Send(99, nullptr, 0);
    pc.OnReadable();
  });
  Hostile("fd where none belongs", "SET_OWNER carrying 1 file descriptors", [](Peer& c, Port& pc, Switch&) {
    c.Send(kSetOwner, nullptr, 0, &c.memfd, 1);
    pc.OnReadable();
  });
  Hostile("features not offered", "asks for features xsw did not offer", [](Peer& c, Port& pc, Switch&) {
    c.Send(kSetOwner, nullptr, 0);
    c.SendU64(kSetFeatures, kFeatureVersion1 | 1);
    pc.OnReadable();
  });
  Hostile("9 fds", "more than 8 file descriptors", [](Peer& c, Port& pc, Switch&) {
    c.Send(kSetOwner, nullptr, 0);
    uint8_t t[8 + 9 * sizeof(MemRegion)] = {};
    uint32_t n = 9;
    std::memcpy(t, &n, 4);
    int fds[9];
    for (int& f : fds) f = c.memfd;
    c.Send(kSetMemTable, t, 8 + 8 * sizeof(MemRegion), fds, 9);
    pc.OnReadable();
  });
  Hostile("9 regions", "SET_MEM_TABLE with 9 regions", [](Peer& c, Port& pc, Switch&) {
    c.Send(kSetOwner, nullptr, 0);
    c.SendU64(kSetFeatures, kFeatureVersion1);
    uint8_t t[8 + 8 * sizeof(MemRegion)] = {};
    uint32_t n = 9;
    std::memcpy(t, &n, 4);
    int fds[8];
    for (int& f : fds) f = c.memfd;
    c.Send(kSetMemTable, t, sizeof t, fds, 8);
    pc.OnReadable();
  });
  Hostile("short fd", "which has only 4096", [](Peer& c, Port& pc, Switch&) {
    int small = memfd_create("small", MFD_CLOEXEC);
    (void)!ftruncate(small, 4096);
    c.Send(kSetOwner, nullptr, 0);
    c.SendU64(kSetFeatures, kFeatureVersion1);
    uint8_t t[8 + sizeof(MemRegion)] = {};
    uint32_t n = 1;
    std::memcpy(t, &n, 4);
    MemRegion r{0x100000, kMem, 0x100000, 0};
    std::memcpy(t + 8, &r, sizeof r);
    c.Send(kSetMemTable, t, sizeof t, &small, 1);
    close(small);
    pc.OnReadable();
  });
  Hostile("fd count", "with 0 file descriptors (one per region expected)", [](Peer& c, Port& pc, Switch&) {
    c.Send(kSetOwner, nullptr, 0);
    c.SendU64(kSetFeatures, kFeatureVersion1);
    uint8_t t[8 + sizeof(MemRegion)] = {};
    uint32_t n = 1;
    std::memcpy(t, &n, 4);
    c.Send(kSetMemTable, t, sizeof t);
    pc.OnReadable();
  });
  Hostile("ring outside", "is not inside the memory table", [](Peer& c, Port& pc, Switch&) {
    c.Send(kSetOwner, nullptr, 0);
    c.SendU64(kSetFeatures, kFeatureVersion1);
    c.SendTable();
    c.SendRing(kRxQueue);
    c.SendRing(kTxQueue, 64ull << 20);  // 64 MiB past the table
    pc.OnReadable();
  });
  Hostile("descriptor outside", "quarantined by the switch: addr_outside_region", [](Peer& c, Port& pc, Switch& sw) {
    Setup(c, pc);
    CHECK(pc.slot() >= 0);
    c.SendFrame(Frame(kMacB, kMacC, 100), 0xdead00000000ull);
    sw.PollOnce();
    pc.Tick();
  });
  Hostile("vanished mid-message", "vanished in the middle of a message", [](Peer& c, Port& pc, Switch&) {
    c.Send(kSetOwner, nullptr, 0);
    MsgHeader h{kSetVringAddr, kFlagVersion, sizeof(VringAddr)};
    uint8_t part[sizeof h + 10] = {};
    std::memcpy(part, &h, sizeof h);
    (void)!write(c.fd, part, sizeof part);
    pc.OnReadable();
    c.Close();
  });
  // The peer shrinks its (unsealable) memfd under the live device: the
  // switch's next access faults, the SIGBUS guard maps zeros over the region
  // and the switch quarantines the device. The peer must not touch its own
  // mapping after that (it would fault in this same process).
  Hostile("shrunk memfd", "memory_truncated", [](Peer& c, Port& pc, Switch& sw) {
    Setup(c, pc);
    c.SendFrame(Frame(0x020000000dd1, kMacC, 100));  // to no one: the others' counts stay exact
    sw.PollOnce();
    CHECK(pc.slot() >= 0);
    CHECK(Logs(pc).find("memory not sealable, SIGBUS-guarded") != std::string::npos);
    CHECK_EQ(ftruncate(c.memfd, 0), 0);
    sw.PollOnce();  // faults on the TX ring, reads zeros
    sw.PollOnce();  // quarantines
    bool quarantined = false;
    for (auto& s : sw.Stats()) {
      if (s.mac == kMacC) quarantined = s.state == DeviceState::kQuarantined && s.drops[DropIndex(Violation::kMemoryTruncated)] == 1;
    }
    CHECK(quarantined);
    pc.Tick();
  });
  Hostile("vanished with a live device", "the peer closed the connection", [](Peer& c, Port& pc, Switch& sw) {
    Setup(c, pc);
    CHECK(pc.slot() >= 0);
    c.Close();
  });
}

// GuestMemory alone: a sealable memfd is sealed against shrinking; an
// unsealable one that shrinks reads zeros past its new end and raises lost.
void TestShrinkGuard() {
  for (bool sealable : {true, false}) {
    int fd = memfd_create("guarded", MFD_CLOEXEC | (sealable ? MFD_ALLOW_SEALING : 0));
    CHECK_EQ(ftruncate(fd, kMem), 0);
    auto* peer = static_cast<uint8_t*>(mmap(nullptr, kMem, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    peer[kMem - 1] = 0x77;
    munmap(peer, kMem);
    GuestMemory mem;
    MemRegion r{0x10000000, kMem, 0x7f0000000000, 0};
    std::string why;
    CHECK(mem.Map(&r, 1, &fd, &why));
    CHECK_EQ(mem.sealed(), sealable ? 1u : 0u);
    volatile uint8_t* last = mem.Regions()[0].hva + kMem - 1;
    CHECK_EQ(*last, 0x77);
    if (sealable) {
      CHECK(ftruncate(fd, 4096) != 0);  // EPERM: the seal holds
      CHECK_EQ(*last, 0x77);
      CHECK(!mem.truncated());
    } else {
      CHECK_EQ(ftruncate(fd, 4096), 0);
      CHECK_EQ(*last, 0);  // faulted: the guard mapped zeros over the region
      CHECK(mem.truncated());
      *last = 1;  // and it is writable (private memory now)
      CHECK_EQ(*last, 1);
    }
    mem.Unmap();
    close(fd);
  }
}

}  // namespace

int main() {
  TestShrinkGuard();
  TestLearnAndSwitch();
  TestNoInOrderWithTwoThreads();
  TestMemTableChangeAndStop();
  TestHostile();
  return xsw::test::Finish("vhost_test");
}
