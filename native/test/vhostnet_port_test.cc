// The vhost-net port's driver side against a fake kernel: the test plays
// vhost-net on the port's own rings (VhostNetPort::WithoutKernel, the same
// memory and data path the real port uses), through xsw's device-side vring
// code. Frames cross both ways intact behind a zero virtio_net_hdr, kicks
// follow the kernel's NO_NOTIFY flag (one per burst at most), and used
// entries that lie (an id we never posted, one twice, a length past the
// buffer or short of the header, an index jump) are refused and counted while
// good frames keep flowing. Also the error sentences: no /dev/vhost-net, and
// one this process may not open.
#include "check.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "shm/regions.h"
#include "shm/vring.h"
#include "switch/nic_port.h"
#include "switch/switch.h"
#include "switch/vhostnet_port.h"

using namespace xsw;

namespace {

constexpr uint32_t kMaxFrame = 1518;
constexpr uint32_t N = VhostNetPort::kRingSize;

// The kernel's view: descriptor addresses are the port's own addresses.
struct FakeKernel {
  explicit FakeKernel(VhostNetPort& p)
      : port(p),
        regions(Table(p)),
        rx(VringView::At(p.ring_base(VhostNetPort::kRxQueue), N), &regions, 1, RingDirection::kDeviceWrites),
        tx(VringView::At(p.ring_base(VhostNetPort::kTxQueue), N), &regions, 1, RingDirection::kDeviceReads) {}
  static RegionTable Table(VhostNetPort& p) {
    RegionTable t;
    uint64_t a = reinterpret_cast<uintptr_t>(p.ring_base(0));
    CHECK(t.Add({a, p.memory_bytes(), p.ring_base(0), true, p.memory_bytes()}));
    return t;
  }
  VringUsed* used(uint32_t q) { return VringView::At(port.ring_base(q), N).used; }
  uint16_t avail_flags(uint32_t q) { return __atomic_load_n(&VringView::At(port.ring_base(q), N).avail->flags, __ATOMIC_ACQUIRE); }
  // After publishing used entries, as vhost_notify does without an event
  // index: fence, then signal the call eventfd unless the driver said
  // VRING_AVAIL_F_NO_INTERRUPT.
  void Call(uint32_t q) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (avail_flags(q) & VRING_AVAIL_F_NO_INTERRUPT) return;
    const uint64_t one = 1;
    CHECK(write(port.call_fd(q), &one, sizeof one) == ssize_t(sizeof one));
    ++calls;
  }
  uint32_t RxAvail() {
    uint32_t avail = 0;
    CHECK(rx.Avail(&avail) == Violation::kNone);
    return avail;
  }
  uint32_t calls = 0;
  // Writes one received frame into the next posted RX buffer.
  bool Receive(const std::vector<uint8_t>& frame, uint32_t hdr_len) {
    uint32_t avail = 0;
    CHECK(rx.Avail(&avail) == Violation::kNone);
    Chain c;
    if (avail == 0 || rx.Pop(&c) != Violation::kNone || c.nseg != 1) return false;
    CHECK(c.in_len >= hdr_len + frame.size());
    std::memset(c.seg[0].hva, 0, hdr_len);
    std::memcpy(c.seg[0].hva + hdr_len, frame.data(), frame.size());
    rx.PushUsed(c.head, uint32_t(hdr_len + frame.size()));
    rx.PublishUsed();
    return true;
  }
  // Takes every frame xsw queued; checks the header is zero.
  std::vector<std::vector<uint8_t>> Transmit(uint32_t hdr_len) {
    std::vector<std::vector<uint8_t>> out;
    uint32_t avail = 0;
    CHECK(tx.Avail(&avail) == Violation::kNone);
    for (uint32_t i = 0; i < avail; ++i) {
      Chain c;
      if (tx.Pop(&c) != Violation::kNone || c.nseg != 1) {
        CHECK(false);
        break;
      }
      std::vector<uint8_t> hdr(c.seg[0].hva, c.seg[0].hva + hdr_len);
      CHECK(hdr == std::vector<uint8_t>(hdr_len, 0));
      out.emplace_back(c.seg[0].hva + hdr_len, c.seg[0].hva + c.out_len);
      tx.PushUsed(c.head, 0);
    }
    tx.PublishUsed();
    return out;
  }
  VhostNetPort& port;
  RegionTable regions;
  VringDevice rx, tx;
};

std::vector<uint8_t> Frame(uint32_t len, uint8_t seed) {
  std::vector<uint8_t> f(len);
  for (uint32_t i = 0; i < len; ++i) f[i] = uint8_t(seed + i * 7);
  f[0] = 0x02;  // a unicast destination
  return f;
}

uint64_t ReadKicks(int fd) {
  uint64_t v = 0;
  return read(fd, &v, sizeof v) == ssize_t(sizeof v) ? v : 0;
}

void TestTransmitBatchesKicks(uint32_t hdr_len) {
  auto port = VhostNetPort::WithoutKernel(kMaxFrame, hdr_len);
  FakeKernel k(*port);
  CHECK_EQ(port->TxFree(), N);
  CHECK_EQ(port->TxCapacity(), kMaxFrame);
  std::vector<std::vector<uint8_t>> sent;
  for (uint32_t i = 0; i < 40; ++i) {
    uint8_t* b = port->TxReserve();
    CHECK(b != nullptr);
    if (!b) return;
    sent.push_back(Frame(60 + i * 37, uint8_t(i)));
    std::memcpy(b, sent.back().data(), sent.back().size());
    CHECK(port->TxCommit(uint32_t(sent.back().size())));
  }
  CHECK_EQ(port->TxFree(), N - 40);
  CHECK(k.Transmit(hdr_len).empty());  // nothing is visible before the flush
  port->TxFlush();
  CHECK_EQ(port->kicks(), 1u);  // one kick for the whole burst
  CHECK_EQ(ReadKicks(port->kick_fd(VhostNetPort::kTxQueue)), 1u);
  CHECK(k.Transmit(hdr_len) == sent);
  CHECK_EQ(port->TxFree(), N);  // every buffer back once the kernel used them
  // A kernel that is busy (NO_NOTIFY) is not kicked.
  __atomic_store_n(&k.used(VhostNetPort::kTxQueue)->flags, uint16_t(1), __ATOMIC_RELEASE);
  std::memcpy(port->TxReserve(), sent[0].data(), sent[0].size());
  CHECK(port->TxCommit(uint32_t(sent[0].size())));
  port->TxFlush();
  CHECK_EQ(port->kicks(), 1u);
  CHECK_EQ(k.Transmit(hdr_len).size(), 1u);
  // A full ring: TxReserve says so instead of overwriting a frame in flight.
  for (uint32_t i = 0; i < N; ++i) {
    CHECK(port->TxReserve() != nullptr);
    CHECK(port->TxCommit(64));
  }
  CHECK_EQ(port->TxFree(), 0u);
  CHECK(port->TxReserve() == nullptr);
  CHECK(!port->TxCommit(64));
  port->TxFlush();
  CHECK_EQ(k.Transmit(hdr_len).size(), N);
  CHECK_EQ(port->TxFree(), N);
  CHECK(port->TxReserve() != nullptr);
  CHECK(!port->TxCommit(kMaxFrame + 1));  // longer than a frame may be
  CHECK_EQ(port->bad_used(), 0u);
}

void TestReceive(uint32_t hdr_len) {
  auto port = VhostNetPort::WithoutKernel(kMaxFrame, hdr_len);
  FakeKernel k(*port);
  CHECK_EQ(port->net_hdr_len(), hdr_len);
  NicRxFrame f[kBurst];
  CHECK_EQ(port->RxBurst(f, kBurst), 0u);
  port->RxRelease();
  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < 40; ++i) {
    frames.push_back(Frame(60 + i * 30, uint8_t(100 + i)));
    CHECK(k.Receive(frames.back(), hdr_len));
  }
  // Bursts of at most 32, each frame valid until RxRelease.
  uint32_t n = port->RxBurst(f, kBurst);
  CHECK_EQ(n, kBurst);
  for (uint32_t i = 0; i < n; ++i) {
    CHECK_EQ(f[i].len, frames[i].size());
    CHECK_EQ(f[i].wire_len, f[i].len);
    CHECK(!f[i].vlan_valid);
    CHECK(std::memcmp(f[i].data, frames[i].data(), f[i].len) == 0);
  }
  port->RxRelease();
  n = port->RxBurst(f, kBurst);
  CHECK_EQ(n, 8u);
  for (uint32_t i = 0; i < n; ++i) CHECK(std::memcmp(f[i].data, frames[32 + i].data(), f[i].len) == 0);
  port->RxRelease();
  // Every buffer is posted again: the kernel sees all N available.
  uint32_t avail = 0;
  CHECK(k.rx.Avail(&avail) == Violation::kNone);
  CHECK_EQ(avail, N - 40 + 40);
  // The kernel said it needs no kick: none of those reposts kicked it; once
  // it waits for buffers (flag clear), a repost does, once per burst.
  __atomic_store_n(&k.used(VhostNetPort::kRxQueue)->flags, uint16_t(1), __ATOMIC_RELEASE);
  CHECK(k.Receive(frames[0], hdr_len));
  CHECK(k.Receive(frames[1], hdr_len));
  const uint64_t before = port->kicks();
  CHECK_EQ(port->RxBurst(f, kBurst), 2u);
  port->RxRelease();
  CHECK_EQ(port->kicks(), before);
  __atomic_store_n(&k.used(VhostNetPort::kRxQueue)->flags, uint16_t(0), __ATOMIC_RELEASE);
  CHECK(k.Receive(frames[2], hdr_len));
  CHECK(k.Receive(frames[3], hdr_len));
  CHECK_EQ(port->RxBurst(f, kBurst), 2u);
  port->RxRelease();
  CHECK_EQ(port->kicks(), before + 1);
  CHECK_EQ(port->bad_used(), 0u);
}

// Used entries that do not fit what xsw posted are counted and skipped.
void TestLyingUsedEntries() {
  const uint32_t hl = kVirtioNetHdrLenV1;
  auto port = VhostNetPort::WithoutKernel(kMaxFrame, hl);
  FakeKernel k(*port);
  NicRxFrame f[kBurst];
  std::vector<uint8_t> good = Frame(100, 1);
  uint32_t avail = 0;
  CHECK(k.rx.Avail(&avail) == Violation::kNone);
  Chain c;
  CHECK(k.rx.Pop(&c) == Violation::kNone);
  std::memcpy(c.seg[0].hva + hl, good.data(), good.size());
  k.rx.PushUsed(uint16_t(N + 44), 100);            // an id outside the ring
  k.rx.PushUsed(c.head, uint32_t(hl + good.size()));  // a good one
  k.rx.PushUsed(c.head, 64);                       // the same buffer again: not in flight any more
  Chain big, tiny;
  CHECK(k.rx.Pop(&big) == Violation::kNone);
  CHECK(k.rx.Pop(&tiny) == Violation::kNone);
  k.rx.PushUsed(big.head, port->buffer_len() + 1000);  // longer than the buffer
  k.rx.PushUsed(tiny.head, hl - 1);                    // shorter than the header
  k.rx.PublishUsed();
  uint32_t n = port->RxBurst(f, kBurst);
  // The good frame, and the long one cut to its buffer (the switch sees a
  // frame no longer than what it posted); the rest refused.
  CHECK_EQ(n, 2u);
  CHECK_EQ(f[0].len, good.size());
  CHECK(std::memcmp(f[0].data, good.data(), good.size()) == 0);
  CHECK_EQ(f[1].len, port->buffer_len() - hl);
  CHECK_EQ(port->bad_used(), 4u);
  port->RxRelease();
  // TX: the kernel completes a frame under another id: refused, and the
  // frame's buffer stays in flight (nothing else is freed).
  uint8_t* b = port->TxReserve();
  CHECK(b != nullptr);
  CHECK(port->TxCommit(64));
  port->TxFlush();
  uint32_t tx_avail = 0;
  CHECK(k.tx.Avail(&tx_avail) == Violation::kNone);
  Chain sent;
  CHECK(k.tx.Pop(&sent) == Violation::kNone);
  k.tx.PushUsed(uint16_t(sent.head + 1), 0);
  k.tx.PublishUsed();
  CHECK_EQ(port->TxFree(), N - 1);
  CHECK_EQ(port->bad_used(), 5u);
  // A used index far past what is in flight is counted; no more than was in
  // flight comes back.
  VringUsed* u = k.used(VhostNetPort::kTxQueue);
  __atomic_store_n(&u->idx, uint16_t(u->idx + 3 * N), __ATOMIC_RELEASE);
  CHECK(port->TxFree() <= N);
  CHECK(port->bad_used() >= 6u);
}

void TestErrors() {
  try {
    OpenVhostNetDevice("xsw0", "/nonexistent/vhost-net");
    CHECK(false);
  } catch (const SysError& e) {
    CHECK_EQ(e.err(), ENOENT);
    CHECK(std::string(e.what()) ==
          "-p vhost-net:xsw0 needs /nonexistent/vhost-net, which this host lacks: load the vhost_net module "
          "(modprobe vhost_net) or use -p tap:xsw0");
  }
  if (access("/dev/vhost-net", F_OK) != 0) {  // this host has none: the port says so
    try {
      OpenNicPort("vhost-net:xswvn0", kMaxFrame);
      CHECK(false);
    } catch (const SysError& e) {
      CHECK_EQ(e.err(), ENOENT);
      CHECK(std::string(e.what()).find("needs /dev/vhost-net, which this host lacks") != std::string::npos);
    }
  }
  try {
    OpenNicPort("vhost-net:", kMaxFrame);
    CHECK(false);
  } catch (const SysError& e) {
    CHECK_EQ(e.err(), EINVAL);
  }
  // A device this process may not open (root ignores file modes: an
  // unprivileged child tries).
  char path[] = "/tmp/xsw-vhostnet-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  chmod(path, 0600);
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
    try {
      OpenVhostNetDevice("xsw0", path);
      _exit(1);
    } catch (const SysError& e) {
      std::string want = std::string("-p vhost-net:xsw0 cannot open ") + path +
                         " (permission denied): run xsw-backend as root or give its user read-write access to " + path;
      _exit(e.err() == EACCES && want == e.what() ? 0 : 2);
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  unlink(path);
}

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

bool WaitFor(const std::function<bool()>& done) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);  // a bound for failure only
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

// Before a sleep the port lets the kernel call (the receive queue's call
// eventfd is its WaitFd) and re-checks; the next RxBurst turns calls off.
void TestArmWait(uint32_t hdr_len) {
  auto port = VhostNetPort::WithoutKernel(kMaxFrame, hdr_len);
  FakeKernel k(*port);
  CHECK_EQ(port->WaitFd(), port->call_fd(VhostNetPort::kRxQueue));
  CHECK(k.avail_flags(VhostNetPort::kRxQueue) & VRING_AVAIL_F_NO_INTERRUPT);  // polling: no calls
  CHECK(k.Receive(Frame(60, 1), hdr_len));
  k.Call(VhostNetPort::kRxQueue);
  CHECK_EQ(k.calls, 0u);
  CHECK(port->ArmWait());  // a frame is already there: do not sleep
  NicRxFrame f[kBurst];
  CHECK_EQ(port->RxBurst(f, kBurst), 1u);
  port->RxRelease();
  CHECK(!port->ArmWait());  // nothing waits: sleep
  CHECK_EQ(k.avail_flags(VhostNetPort::kRxQueue) & VRING_AVAIL_F_NO_INTERRUPT, 0);
  CHECK(!Readable(port->WaitFd()));
  CHECK(k.Receive(Frame(61, 2), hdr_len));
  k.Call(VhostNetPort::kRxQueue);
  CHECK_EQ(k.calls, 1u);
  CHECK(Readable(port->WaitFd()));  // the sleep ends
  CHECK_EQ(port->RxBurst(f, kBurst), 1u);
  port->RxRelease();
  CHECK(k.avail_flags(VhostNetPort::kRxQueue) & VRING_AVAIL_F_NO_INTERRUPT);  // polling again
  CHECK(k.Receive(Frame(62, 3), hdr_len));
  k.Call(VhostNetPort::kRxQueue);
  CHECK_EQ(k.calls, 1u);
  CHECK(port->ArmWait());  // drains the old call, sees the frame
  CHECK(!Readable(port->WaitFd()));
  CHECK_EQ(port->RxBurst(f, kBurst), 1u);
  port->RxRelease();
}

// A switch in interrupt mode whose NIC is vhost-net sleeps without a timer
// (it used to wake every 10..500 µs): a frame the kernel did not signal stays
// where it is, and the call wakes the switch, which takes it.
void TestIdleSwitchSleepsOnTheCall() {
  auto owned = VhostNetPort::WithoutKernel(kMaxFrame, kVirtioNetHdrLenV1);
  VhostNetPort* port = owned.get();
  FakeKernel k(*port);
  SwitchConfig cfg;
  cfg.interrupt = true;
  Switch sw(cfg, std::move(owned));
  sw.Start();
  CHECK(WaitFor([&] { return sw.Sleeps() > 0 && (k.avail_flags(VhostNetPort::kRxQueue) & VRING_AVAIL_F_NO_INTERRUPT) == 0; }));
  const uint64_t asleep = sw.Sleeps();
  CHECK(k.Receive(Frame(60, 7), kVirtioNetHdrLenV1));  // published, not signalled
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK_EQ(sw.Sleeps(), asleep);   // no timed wake-up in 100 ms
  CHECK_EQ(k.RxAvail(), N - 1);    // the frame was not taken
  k.Call(VhostNetPort::kRxQueue);  // interrupts are on: this signals
  CHECK_EQ(k.calls, 1u);
  CHECK(WaitFor([&] { return k.RxAvail() == N && sw.Sleeps() > asleep; }));  // taken, buffer reposted, asleep again
  sw.Stop();
}

}  // namespace

int main() {
  TestTransmitBatchesKicks(kVirtioNetHdrLenV1);
  TestTransmitBatchesKicks(kVirtioNetHdrLen);
  TestReceive(kVirtioNetHdrLenV1);
  TestReceive(kVirtioNetHdrLen);
  TestLyingUsedEntries();
  TestErrors();
  TestArmWait(kVirtioNetHdrLenV1);
  TestArmWait(kVirtioNetHdrLen);
  TestIdleSwitchSleepsOnTheCall();  // last: it starts a thread, TestErrors forks
  return xsw::test::Finish("vhostnet_port_test");
}
