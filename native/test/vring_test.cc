// Vrings: driver and device agree (chains, directions, index wrap, resume),
// two threads move many descriptors with no loss or duplication, and every
// hostile ring is reported as its named violation, never a crash (this runs
// under ASan and UBSan).
#include "check.h"
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "shm/vring.h"

using namespace xsw;

using ::xsw::test::failures;
// Violations compare by name, so a failure says which one came instead.
#define CHECK_V(got, want)                                                              \
  do {                                                                                  \
    Violation g_ = (got), w_ = (want);                                                  \
    if (g_ != w_) {                                                                     \
      std::fprintf(stderr, "%s:%d: got %s, want %s\n", __FILE__, __LINE__, ViolationName(g_), \
                   ViolationName(w_));                                                  \
      ++failures;                                                                       \
    }                                                                                   \
  } while (0)

// Page-aligned memory freed at scope exit.
struct Mem {
  explicit Mem(size_t bytes) : size(AlignUp(bytes, kPageSize)) {
    p = static_cast<uint8_t*>(std::aligned_alloc(kPageSize, size));
    std::memset(p, 0, size);
  }
  ~Mem() { std::free(p); }
  Mem(const Mem&) = delete;
  Mem& operator=(const Mem&) = delete;
  size_t size;
  uint8_t* p;
};

constexpr uint64_t kPoolGva = 0x7f0000000000ull;  // the guest's address of the pool
constexpr uint32_t kPoolPages = 64;

// A ring, a writable pool region and a read-only one right after it.
struct Fixture {
  explicit Fixture(uint32_t num) : num(num), ring(VringSize(num)), pool(kPoolPages * kPageSize), ro(kPageSize) {
    regions.Add({kPoolGva, pool.size, pool.p, true, pool.size});
    regions.Add({RoGva(), ro.size, ro.p, false, ro.size});
  }
  static uint64_t RoGva() { return kPoolGva + kPoolPages * kPageSize; }
  VringView view() { return VringView::At(ring.p, num); }
  // Raw writes, as a hostile guest would do them.
  void Desc(uint32_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    view().desc[i] = VringDesc{addr, len, flags, next};
  }
  void Post(uint16_t head) {
    VringAvail* a = view().avail;
    a->ring[a->idx % num] = head;
    a->idx = uint16_t(a->idx + 1);
  }
  uint32_t num;
  Mem ring, pool, ro;
  RegionTable regions;
};

static void ViolationNamesAreStableAndDistinct() {
  std::vector<std::string> names;
  for (int v = 0; v < int(Violation::kCount); ++v) {
    std::string n = ViolationName(Violation(v));
    CHECK(n != "unknown" && !n.empty());
    for (char c : n) CHECK((c >= 'a' && c <= 'z') || c == '_');
    for (const std::string& o : names) CHECK(o != n);
    names.push_back(n);
  }
  CHECK(std::string(ViolationName(Violation::kAvailIdxJump)) == "avail_idx_jump");
  CHECK(std::string(ViolationName(Violation::kIndirect)) == "indirect_desc");
  CHECK(std::string(ViolationName(Violation::kWriteToReadOnly)) == "write_to_readonly");
  CHECK(std::string(ViolationName(Violation::kCount)) == "unknown");
}

static void ConstructorsRefuseBadRings() {
  Mem m(VringSize(256) + kPageSize);
  RegionTable r;
  for (uint32_t bad : {0u, 3u, 100u, 65536u}) {
    bool threw = false;
    try {
      VringDriver d(m.p, bad);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    CHECK(threw);
  }
  bool threw = false;
  try {
    VringDevice d(m.p + 64, 256, m.size - 64, &r, 16);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
  threw = false;
  try {
    VringDevice d(m.p, 256, m.size, nullptr, 16);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

// Chains of 1..3 out buffers then 0..2 in buffers, through index wrap-around
// (70k chains on an 8-entry ring wrap the 16-bit indexes).
static void DriverAndDeviceAgreeThroughIndexWrap() {
  Fixture f(8);
  VringDriver drv(f.ring.p, 8);
  drv.Init();
  VringDevice dev(f.ring.p, 8, f.ring.size, &f.regions, kMaxChainSegs);
  uint64_t next_cookie = 1, expect_cookie = 1;
  UsedEntry used[8];
  Chain chain;
  for (uint32_t round = 0; round < 70000; ++round) {
    uint32_t n_out = 1 + round % 3, n_in = round % 3;  // 1..3 out, 0..2 in, up to 5 descs
    DriverBuf bufs[6];
    for (uint32_t k = 0; k < n_out + n_in; ++k) bufs[k] = {kPoolGva + k * kPageSize + round % 64, 100 + k};
    int head = drv.Add(bufs, n_out, n_in, next_cookie);
    CHECK(head >= 0);
    if (head < 0) return;
    ++next_cookie;
    drv.Publish();
    uint32_t count = 0;
    CHECK_V(dev.Avail(&count), Violation::kNone);
    CHECK(count == 1);
    CHECK_V(dev.Pop(&chain), Violation::kNone);
    CHECK(chain.head == head && chain.nseg == n_out + n_in);
    uint32_t out_len = 0, in_len = 0;
    for (uint32_t k = 0; k < chain.nseg; ++k) {
      CHECK(chain.seg[k].hva == f.pool.p + k * kPageSize + round % 64);
      CHECK(chain.seg[k].len == 100 + k);
      CHECK(chain.seg[k].device_writable == (k >= n_out));
      (k >= n_out ? in_len : out_len) += 100 + k;
    }
    CHECK(chain.out_len == out_len && chain.in_len == in_len);
    dev.PushUsed(chain.head, in_len ? in_len - 1 : 0);
    dev.PublishUsed();
    CHECK(drv.Harvest(used, 8) == 1);
    CHECK(used[0].cookie == expect_cookie && used[0].len == (in_len ? in_len - 1 : 0));
    ++expect_cookie;
    CHECK(drv.FreeDescs() == 8 && drv.InFlight() == 0);
    if (failures) return;
  }
  CHECK(dev.LastAvail() == uint16_t(70000) && drv.BadUsed() == 0);
}

static void AddNeedsEnoughFreeDescriptorsAndPublishGatesVisibility() {
  Fixture f(4);
  VringDriver drv(f.ring.p, 4);
  drv.Init();
  VringDevice dev(f.ring.p, 4, f.ring.size, &f.regions, kMaxChainSegs);
  DriverBuf b[5];
  for (auto& x : b) x = {kPoolGva, 64};
  CHECK(drv.Add(b, 0, 0, 1) == -1);
  CHECK(drv.Add(b, 5, 0, 1) == -1);
  CHECK(drv.Add(b, 3, 0, 1) == 0);
  CHECK(drv.FreeDescs() == 1);
  CHECK(drv.Add(b, 2, 0, 2) == -1);
  uint32_t count = 99;
  CHECK_V(dev.Avail(&count), Violation::kNone);
  CHECK(count == 0);  // not published yet
  Chain c;
  CHECK_V(dev.Pop(&c), Violation::kNone);
  CHECK(c.nseg == 0);
  drv.Publish();
  CHECK_V(dev.Avail(&count), Violation::kNone);
  CHECK(count == 1);
}

// A producer thread and a consumer thread; each buffer carries its sequence
// number, which the consumer checks in order.
static void TwoThreadsMoveDescriptorsWithoutLossOrDuplication() {
  const uint32_t num = 256, total = 200000;
  Fixture f(num);
  VringDriver drv(f.ring.p, num);
  drv.Init();
  VringDevice dev(f.ring.p, num, f.ring.size, &f.regions, kMaxChainSegs, RingDirection::kDeviceReads);
  std::atomic<bool> stop{false};
  uint64_t consumed = 0, bad = 0;
  std::thread consumer([&] {
    Chain c;
    uint64_t expect = 0;
    while (expect < total && !stop.load(std::memory_order_relaxed)) {
      uint32_t n = 0;
      if (dev.Avail(&n) != Violation::kNone) { ++bad; break; }
      if (n == 0) { std::this_thread::yield(); continue; }
      if (n > kBurst) n = kBurst;
      for (uint32_t i = 0; i < n; ++i) {
        if (dev.Pop(&c) != Violation::kNone || c.nseg != 1) { ++bad; stop = true; return; }
        uint64_t seq;
        std::memcpy(&seq, c.seg[0].hva, 8);
        if (seq != expect) ++bad;
        ++expect;
        dev.PushUsed(c.head, 0);
      }
      dev.PublishUsed();
    }
    consumed = expect;
  });
  uint64_t sent = 0, done = 0;
  UsedEntry used[kBurst];
  while (done < total && !stop.load(std::memory_order_relaxed)) {
    uint32_t added = 0;
    while (sent < total && added < kBurst && drv.FreeDescs() > 0) {
      // The cookie is the pool slot; slot = seq % num is free again once harvested.
      uint32_t slot = uint32_t(sent % num);
      std::memcpy(f.pool.p + slot * 64, &sent, 8);
      DriverBuf b{kPoolGva + slot * 64, 64};
      if (drv.Add(&b, 1, 0, sent) < 0) break;
      ++sent;
      ++added;
    }
    if (added) drv.Publish();
    uint32_t h = drv.Harvest(used, kBurst);
    for (uint32_t i = 0; i < h; ++i) {
      if (used[i].cookie != done) ++bad;
      ++done;
    }
    if (!added && !h) std::this_thread::yield();
  }
  stop = true;
  consumer.join();
  CHECK(bad == 0 && consumed == total && done == total && drv.BadUsed() == 0);
}

// The back end restarts: a new device continues from the shared indexes.
static void ResumeContinuesFromTheSharedIndexes() {
  Fixture f(16);
  VringDriver drv(f.ring.p, 16);
  drv.Init();
  DriverBuf b{kPoolGva, 10};
  for (uint64_t i = 0; i < 10; ++i) {
    b.gva = kPoolGva + i * 64;
    CHECK(drv.Add(&b, 1, 0, i) == int(i));
  }
  drv.Publish();
  Chain c;
  uint32_t n;
  {
    VringDevice dev(f.ring.p, 16, f.ring.size, &f.regions, 4);
    CHECK_V(dev.Avail(&n), Violation::kNone);
    CHECK(n == 10);
    for (int i = 0; i < 3; ++i) {
      CHECK_V(dev.Pop(&c), Violation::kNone);
      dev.PushUsed(c.head, 0);
    }
    dev.PublishUsed();
  }
  VringDevice dev2(f.ring.p, 16, f.ring.size, &f.regions, 4);
  CHECK(dev2.LastAvail() == 3 && dev2.UsedIdx() == 3);
  CHECK(f.view().avail->idx == 10 && f.view().used->idx == 3);  // untouched
  CHECK_V(dev2.Avail(&n), Violation::kNone);
  CHECK(n == 7);
  CHECK_V(dev2.Pop(&c), Violation::kNone);
  CHECK(c.head == 3 && c.seg[0].hva == f.pool.p + 3 * 64);
  dev2.PushUsed(c.head, 0);
  dev2.PublishUsed();
  UsedEntry u[16];
  CHECK(drv.Harvest(u, 16) == 4);
  CHECK(u[0].cookie == 0 && u[3].cookie == 3);
}

// --- Hostile rings, one row each: build the ring, pop, expect the named violation.
struct HostileRow {
  const char* what;
  uint32_t num;
  uint32_t max_chain;
  RingDirection dir;
  void (*build)(Fixture& f);
  Violation want;
};

static const uint64_t G = kPoolGva;
static const HostileRow kHostile[] = {
    {"head index >= ring size", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Post(8); }, Violation::kDescIndex},
    {"next index >= ring size", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Desc(0, G, 64, VRING_DESC_F_NEXT, 0xffff); f.Post(0); }, Violation::kDescIndex},
    {"self loop", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Desc(2, G, 64, VRING_DESC_F_NEXT, 2); f.Post(2); }, Violation::kChainLoop},
    {"two-descriptor loop", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Desc(0, G, 64, VRING_DESC_F_NEXT, 1); f.Desc(1, G, 64, VRING_DESC_F_NEXT, 0); f.Post(0); },
     Violation::kChainLoop},
    {"chain through the whole ring and back (longer than the ring)", 8, 16, RingDirection::kAny,
     [](Fixture& f) { for (uint16_t i = 0; i < 8; ++i) f.Desc(i, G, 64, VRING_DESC_F_NEXT, uint16_t((i + 1) % 8)); f.Post(0); },
     Violation::kChainLoop},
    {"chain longer than the accepted maximum", 32, 4, RingDirection::kAny,
     [](Fixture& f) { for (uint16_t i = 0; i < 5; ++i) f.Desc(i, G, 64, i < 4 ? VRING_DESC_F_NEXT : 0, uint16_t(i + 1)); f.Post(0); },
     Violation::kChainTooLong},
    {"chain longer than kMaxChainSegs", 64, 1000, RingDirection::kAny,
     [](Fixture& f) { for (uint16_t i = 0; i < 17; ++i) f.Desc(i, G, 64, i < 16 ? VRING_DESC_F_NEXT : 0, uint16_t(i + 1)); f.Post(0); },
     Violation::kChainTooLong},
    {"address below every region", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Desc(0, G - 1, 64, 0, 0); f.Post(0); }, Violation::kAddrOutsideRegion},
    {"address in no region", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Desc(0, 0x1000, 64, 0, 0); f.Post(0); }, Violation::kAddrOutsideRegion},
    {"buffer running past the end of the regions", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Desc(0, Fixture::RoGva() + kPageSize - 8, 64, 0, 0); f.Post(0); }, Violation::kAddrOutsideRegion},
    {"second segment outside", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Desc(0, G, 64, VRING_DESC_F_NEXT, 1); f.Desc(1, 8, 64, 0, 0); f.Post(0); }, Violation::kAddrOutsideRegion},
    {"addr + len wraps", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Desc(0, UINT64_MAX - 10, 100, 0, 0); f.Post(0); }, Violation::kLenOverflow},
    {"len too big", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Desc(0, G, kMaxSegmentLen + 1, 0, 0); f.Post(0); }, Violation::kLenOverflow},
    {"len 0xffffffff", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Desc(0, G, 0xffffffffu, 0, 0); f.Post(0); }, Violation::kLenOverflow},
    {"device-writable buffer in a read-only region", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Desc(0, Fixture::RoGva(), 64, VRING_DESC_F_WRITE, 0); f.Post(0); }, Violation::kWriteToReadOnly},
    {"RX ring descriptor without F_WRITE", 8, 16, RingDirection::kDeviceWrites,
     [](Fixture& f) { f.Desc(0, G, 64, 0, 0); f.Post(0); }, Violation::kWriteToReadOnly},
    {"TX ring descriptor with F_WRITE", 8, 16, RingDirection::kDeviceReads,
     [](Fixture& f) { f.Desc(0, G, 64, VRING_DESC_F_WRITE, 0); f.Post(0); }, Violation::kReadFromWriteOnly},
    {"out buffer after an in buffer", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Desc(0, G, 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1); f.Desc(1, G, 64, 0, 0); f.Post(0); },
     Violation::kOutAfterIn},
    {"indirect descriptor", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Desc(0, G, 64, VRING_DESC_F_INDIRECT, 0); f.Post(0); }, Violation::kIndirect},
    {"indirect in the middle of a chain", 8, 16, RingDirection::kAny,
     [](Fixture& f) { f.Desc(0, G, 64, VRING_DESC_F_NEXT, 5); f.Desc(5, G, 16, VRING_DESC_F_INDIRECT, 0); f.Post(0); },
     Violation::kIndirect},
};

static void HostileRingsAreNamedViolations() {
  for (const HostileRow& row : kHostile) {
    Fixture f(row.num);
    VringDevice dev(f.ring.p, row.num, f.ring.size, &f.regions, row.max_chain, row.dir);
    row.build(f);
    uint32_t n = 0;
    Violation v = dev.Avail(&n);
    Chain c;
    if (v == Violation::kNone) v = dev.Pop(&c);
    if (v != row.want) {
      std::fprintf(stderr, "  hostile '%s': got %s, want %s\n", row.what, ViolationName(v), ViolationName(row.want));
      ++failures;
    }
    CHECK(dev.LastAvail() == 0);  // nothing consumed
  }
}

// Loop detection stamps only chains of two or more descriptors: a
// descriptor stamped by an earlier chain, or first met as a one-descriptor
// chain, is no loop later; a loop after one-descriptor chains is still one.
// The chains alternate between the pool and the read-only region, so each
// Pop's region hint starts on the wrong region.
static void LoopsAreFoundAmongOneDescriptorChains() {
  Fixture f(16);
  VringDevice dev(f.ring.p, 16, f.ring.size, &f.regions, 16, RingDirection::kAny);
  const uint64_t R = Fixture::RoGva();
  f.Desc(0, G, 64, 0, 0);                     // one descriptor
  f.Post(0);
  f.Desc(1, R, 64, VRING_DESC_F_NEXT, 2);     // 1 -> 2
  f.Desc(2, G + 64, 64, 0, 0);
  f.Post(1);
  f.Desc(3, R + 64, 64, 0, 0);                // one descriptor
  f.Post(3);
  f.Desc(4, G + 128, 64, VRING_DESC_F_NEXT, 1);  // 4 -> 1 -> 2: 1 and 2 were stamped by an earlier chain
  f.Post(4);
  f.Desc(5, R + 128, 64, VRING_DESC_F_NEXT, 0);  // 5 -> 0: 0 was a one-descriptor chain
  f.Desc(0, G, 64, 0, 0);
  f.Post(5);
  f.Desc(6, G + 192, 64, 0, 0);               // one descriptor, then a loop 7 -> 8 -> 7
  f.Post(6);
  f.Desc(7, R, 64, VRING_DESC_F_NEXT, 8);
  f.Desc(8, G, 64, VRING_DESC_F_NEXT, 7);
  f.Post(7);
  uint32_t n;
  Chain c;
  CHECK_V(dev.Avail(&n), Violation::kNone);
  CHECK(n == 7);
  const uint16_t want_nseg[] = {1, 2, 1, 3, 2, 1};
  const uint8_t* want_first[] = {f.pool.p, f.ro.p, f.ro.p + 64, f.pool.p + 128, f.ro.p + 128, f.pool.p + 192};
  for (int i = 0; i < 6; ++i) {
    CHECK_V(dev.Pop(&c), Violation::kNone);
    CHECK(c.nseg == want_nseg[i] && c.seg[0].hva == want_first[i]);
  }
  CHECK(c.head == 6);
  CHECK_V(dev.Pop(&c), Violation::kChainLoop);
  CHECK(dev.LastAvail() == 6);  // the loop consumed nothing
  // A self loop right after a one-descriptor chain.
  Fixture g(8);
  VringDevice dev2(g.ring.p, 8, g.ring.size, &g.regions, 16, RingDirection::kAny);
  g.Desc(0, G, 64, 0, 0);
  g.Post(0);
  g.Desc(1, G, 64, VRING_DESC_F_NEXT, 1);
  g.Post(1);
  CHECK_V(dev2.Avail(&n), Violation::kNone);
  CHECK_V(dev2.Pop(&c), Violation::kNone);
  CHECK_V(dev2.Pop(&c), Violation::kChainLoop);
}

static void ChainAtTheLimitsIsAccepted() {
  Fixture f(64);
  VringDevice dev(f.ring.p, 64, f.ring.size, &f.regions, 1000, RingDirection::kAny);
  for (uint16_t i = 0; i < 16; ++i) f.Desc(i, G + i * 2048, 2048, i < 15 ? VRING_DESC_F_NEXT : 0, uint16_t(i + 1));
  f.Post(0);
  f.Desc(20, G, kMaxSegmentLen, 0, 0);  // exactly the maximum segment length
  f.Post(20);
  f.Desc(21, Fixture::RoGva(), kPageSize, 0, 0);  // reading a read-only region is fine
  f.Post(21);
  uint32_t n;
  Chain c;
  CHECK_V(dev.Avail(&n), Violation::kNone);
  CHECK(n == 3);
  CHECK_V(dev.Pop(&c), Violation::kNone);
  CHECK(c.nseg == 16 && c.out_len == 16 * 2048);
  CHECK_V(dev.Pop(&c), Violation::kNone);
  CHECK(c.nseg == 1 && c.out_len == kMaxSegmentLen);
  CHECK_V(dev.Pop(&c), Violation::kNone);
  CHECK(c.head == 21 && c.seg[0].hva == f.ro.p);
}

static void AvailIndexJumpIsClamped() {
  Fixture f(16);
  VringDevice dev(f.ring.p, 16, f.ring.size, &f.regions, 16);
  uint32_t n = 99;
  f.view().avail->idx = 16;  // exactly a full ring: fine
  CHECK_V(dev.Avail(&n), Violation::kNone);
  CHECK(n == 16);
  f.view().avail->idx = 17;
  CHECK_V(dev.Avail(&n), Violation::kAvailIdxJump);
  CHECK(n == 0);
  f.view().avail->idx = 0xffff;  // "behind" us is also a jump of 65535
  CHECK_V(dev.Avail(&n), Violation::kAvailIdxJump);
}

// The guest does not trust dom0 either: bad used entries are counted and skipped.
// AddSingles (one-descriptor chains, a burst per call) over the FIFO free
// list: completions in order give every avail slot the same descriptor again;
// out of order, the slots are rewritten and the device still sees the right
// buffers. Chains of several descriptors and a full ring (an empty free list)
// mix with them.
static void SinglesAndChainsSurviveAnyCompletionOrder() {
  const uint32_t num = 8;
  Fixture f(num);
  VringDriver drv(f.ring.p, num);
  drv.Init();
  VringDevice dev(f.ring.p, num, f.ring.size, &f.regions, kMaxChainSegs, RingDirection::kDeviceWrites);
  DriverBuf bufs[num];
  uint32_t cookies[num];
  UsedEntry used[num];
  Chain c[num];
  uint32_t next_cookie = 100;
  // Posts n singles (cookie k's buffer is page k % 64), pops them on the
  // device side into c[], checking each chain against its buffer.
  auto post = [&](uint32_t n) {
    for (uint32_t k = 0; k < n; ++k) {
      cookies[k] = next_cookie++;
      bufs[k] = {kPoolGva + (cookies[k] % kPoolPages) * kPageSize, 200 + k};
    }
    CHECK(drv.AddSingles(bufs, cookies, n, true) == n);
    drv.Publish();
    uint32_t count = 0;
    CHECK_V(dev.Avail(&count), Violation::kNone);
    CHECK(count == n);
    for (uint32_t k = 0; k < n; ++k) {
      CHECK_V(dev.Pop(&c[k]), Violation::kNone);
      CHECK(c[k].nseg == 1 && c[k].seg[0].device_writable && c[k].in_len == 200 + k);
      CHECK(c[k].seg[0].hva == f.pool.p + (cookies[k] % kPoolPages) * kPageSize);
    }
  };
  // In order: the same descriptor per slot, round after round.
  for (uint32_t round = 0; round < 3; ++round) {
    post(num);
    CHECK(drv.FreeDescs() == 0);
    for (uint32_t k = 0; k < num; ++k) {
      CHECK(c[k].head == k);
      dev.PushUsed(c[k].head, 10 + k);
    }
    dev.PublishUsed();
    CHECK(drv.Harvest(used, num) == num);
    for (uint32_t k = 0; k < num; ++k) CHECK(used[k].cookie == cookies[k] && used[k].len == 10 + k);
  }
  // Out of order: reversed completions, then every slot holds another head.
  post(num);
  for (uint32_t k = num; k-- > 0;) dev.PushUsed(c[k].head, 1);
  dev.PublishUsed();
  CHECK(drv.Harvest(used, num) == num);
  for (uint32_t k = 0; k < num; ++k) CHECK(used[k].cookie == cookies[num - 1 - k]);
  post(num);
  for (uint32_t k = 0; k < num; ++k) CHECK(c[k].head == num - 1 - k);
  for (uint32_t k = 0; k < num; ++k) dev.PushUsed(c[k].head, 2);
  dev.PublishUsed();
  CHECK(drv.Harvest(used, num) == num);
  for (uint32_t k = 0; k < num; ++k) CHECK(used[k].cookie == cookies[k] && used[k].len == 2);
  // Chains of two fill the ring, complete out of order, then singles follow.
  DriverBuf two[2] = {{kPoolGva, 64}, {kPoolGva + kPageSize, 64}};
  for (uint32_t k = 0; k < num / 2; ++k) CHECK(drv.Add(two, 0, 2, 1000 + k) >= 0);
  CHECK(drv.FreeDescs() == 0 && drv.AddSingles(bufs, cookies, 1, true) == 0);
  drv.Publish();
  uint32_t count = 0;
  CHECK_V(dev.Avail(&count), Violation::kNone);
  for (uint32_t k = 0; k < num / 2; ++k) CHECK_V(dev.Pop(&c[k]), Violation::kNone);
  const uint32_t order[4] = {2, 0, 3, 1};
  for (uint32_t k : order) dev.PushUsed(c[k].head, 128);
  dev.PublishUsed();
  CHECK(drv.Harvest(used, num) == 4);
  for (uint32_t k = 0; k < 4; ++k) CHECK(used[k].cookie == 1000 + order[k] && used[k].len == 128);
  CHECK(drv.FreeDescs() == num && drv.InFlight() == 0);
  post(num);  // every descriptor, each once
  bool seen[num] = {};
  for (uint32_t k = 0; k < num; ++k) {
    CHECK(c[k].head < num && !seen[c[k].head]);
    if (c[k].head < num) seen[c[k].head] = true;
    dev.PushUsed(c[k].head, 0);
  }
  dev.PublishUsed();
  CHECK(drv.Harvest(used, num) == num);
  for (uint32_t k = 0; k < num; ++k) CHECK(used[k].cookie == cookies[k]);
  CHECK(drv.BadUsed() == 0);
}

static void DriverSkipsBadUsedEntries() {
  Fixture f(8);
  VringDriver drv(f.ring.p, 8);
  drv.Init();
  DriverBuf b[2] = {{G, 64}, {G + 64, 100}};
  CHECK(drv.Add(b, 1, 1, 42) == 0);  // descs 0,1
  CHECK(drv.Add(b, 1, 0, 43) == 2);  // desc 2
  drv.Publish();
  VringUsed* u = f.view().used;
  u->ring[0] = {9, 0};     // id out of range
  u->ring[1] = {1, 0};     // not a head
  u->ring[2] = {0, 5000};  // head 0, claims more than its 100 writable bytes
  u->ring[3] = {0, 0};     // head 0 again: no longer in flight
  u->ring[4] = {2, 77};    // out-only chain: len reported as 0
  u->idx = 5;
  UsedEntry out[8];
  // 5 claimed > 2 in flight: counted and clamped to 2, both of which are bad.
  CHECK(drv.Harvest(out, 8) == 0);
  CHECK(drv.BadUsed() == 3);
  // Still 3 claimed > 2: counted; entry 2 is head 0 with its len clamped
  // (counted), entry 3 repeats head 0, no longer in flight (counted).
  CHECK(drv.Harvest(out, 8) == 1);
  CHECK(out[0].cookie == 42 && out[0].len == 100);
  CHECK(drv.BadUsed() == 6);
  CHECK(drv.Harvest(out, 8) == 1);  // entry 4: out-only chain, len reported as 0
  CHECK(out[0].cookie == 43 && out[0].len == 0);
  CHECK(drv.BadUsed() == 6);
  CHECK(drv.FreeDescs() == 8 && drv.InFlight() == 0);
  CHECK(drv.Harvest(out, 8) == 0);
}

int main() {
  ViolationNamesAreStableAndDistinct();
  ConstructorsRefuseBadRings();
  DriverAndDeviceAgreeThroughIndexWrap();
  AddNeedsEnoughFreeDescriptorsAndPublishGatesVisibility();
  TwoThreadsMoveDescriptorsWithoutLossOrDuplication();
  ResumeContinuesFromTheSharedIndexes();
  HostileRingsAreNamedViolations();
  ChainAtTheLimitsIsAccepted();
  LoopsAreFoundAmongOneDescriptorChains();
  AvailIndexJumpIsClamped();
  DriverSkipsBadUsedEntries();
  SinglesAndChainsSurviveAnyCompletionOrder();
  return xsw::test::Finish("vring_test");
}
