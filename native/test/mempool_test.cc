// Mempool layout: buffers never straddle a page and never overlap; the
// default size gives one buffer per page (as DPDK did); sizes over a page are
// refused. MbufStack: LIFO, no double free.
#include "check.h"
#include <cstdio>
#include <vector>

#include "shm/mempool.h"

using namespace xsw;

using ::xsw::test::failures;

static void DefaultIsOneBufferPerPage() {
  auto l = MempoolLayout::Make(1000);
  CHECK(l.has_value());
  if (!l) return;
  CHECK(l->buf_size == 2176 && l->bufs_per_page == 1 && l->pages == 1000);
  CHECK(l->BufOffset(0) == 0 && l->BufOffset(999) == 999ull * 4096);
  CHECK(l->Bytes() == 1000ull * 4096);
}

static void SmallBuffersPackWithoutStraddling() {
  struct Case { uint32_t buf_size, stride, per_page; };
  for (Case c : std::vector<Case>{{1024, 1024, 4}, {2000, 2048, 2}, {1500, 1536, 2}, {64, 64, 64},
                                  {100, 128, 32}, {4040, 4096, 1}, {4096, 4096, 1}, {1, 64, 64}}) {
    const uint32_t n = 777;
    auto l = MempoolLayout::Make(n, c.buf_size);
    CHECK(l.has_value());
    if (!l) continue;
    CHECK(l->stride == c.stride && l->bufs_per_page == c.per_page);
    CHECK(l->pages == (n + c.per_page - 1) / c.per_page);
    uint64_t prev_end = 0;
    for (uint32_t i = 0; i < n; ++i) {
      uint64_t off = l->BufOffset(i);
      CHECK(off % kMbufAlign == 0);
      CHECK(off % kPageSize + c.buf_size <= kPageSize);  // never straddles a page
      CHECK(i == 0 || off >= prev_end);                    // never overlaps the previous one
      CHECK(off + c.buf_size <= l->Bytes());
      CHECK(l->BufIndex(off) == int64_t(i));
      CHECK(l->BufIndex(off + c.buf_size - 1) == int64_t(i));
      prev_end = off + c.buf_size;
    }
  }
}

static void BufIndexRejectsGapsAndThePastEnd() {
  auto l = MempoolLayout::Make(3, 1500);  // 2 per page, stride 1536, 2 pages
  CHECK(l.has_value());
  if (!l) return;
  CHECK(l->BufIndex(1500) == -1);          // stride gap
  CHECK(l->BufIndex(2 * 1536) == -1);      // page tail gap
  CHECK(l->BufIndex(4096) == 2);
  CHECK(l->BufIndex(4096 + 1536) == -1);   // slot 4 does not exist (nb_mbuf 3)
  CHECK(l->BufIndex(8192) == -1);          // past the pool
}

static void RefusesImpossibleLayouts() {
  CHECK(!MempoolLayout::Make(0));
  CHECK(!MempoolLayout::Make(10, 0));
  CHECK(!MempoolLayout::Make(10, 4097));
  CHECK(MempoolLayout::Make(kMaxGrefListEntries, 2176).has_value());
  CHECK(!MempoolLayout::Make(kMaxGrefListEntries + 1, 2176));  // more pages than one gref list holds
  CHECK(MempoolLayout::Make(kMaxGrefListEntries * 2, 2048).has_value());
}

static void StackIsLifoAndRefusesDoubleFree() {
  MbufStack s(8);
  uint32_t v = 99;
  CHECK(s.size() == 0 && !s.Pop(&v) && v == 99);
  s.FillAll();
  CHECK(s.size() == 8 && s.capacity() == 8);
  CHECK(s.Pop(&v) && v == 0);
  CHECK(s.Pop(&v) && v == 1);
  CHECK(!s.Push(2));  // 2 is still free: a double free
  CHECK(!s.Push(8));  // out of range
  CHECK(s.Push(0));
  CHECK(!s.Push(0));
  CHECK(s.Pop(&v) && v == 0);
  uint32_t out[16];
  CHECK(s.PopBurst(out, 16) == 6);  // 2..7
  CHECK(out[0] == 2 && out[5] == 7 && s.size() == 0);
  uint32_t back[] = {3, 3, 9, 5, 0};
  CHECK(s.PushBurst(back, 5) == 3);  // 3, 5, 0; the second 3 and 9 rejected
  CHECK(s.size() == 3);
  CHECK(s.Pop(&v) && v == 0);
}

int main() {
  DefaultIsOneBufferPerPage();
  SmallBuffersPackWithoutStraddling();
  BufIndexRejectsGapsAndThePastEnd();
  RefusesImpossibleLayouts();
  StackIsLifoAndRefusesDoubleFree();
  return xsw::test::Finish("mempool_test");
}
