// Gref-list pages: round trips at the sizes that matter (one entry, a page
// minus one, exactly a page with no terminator, a page plus one, the
// 64-page maximum) and hostile lists rejected with a reason.
#include "check.h"
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "shm/gref_list.h"

using namespace xsw;

using ::xsw::test::failures;

// Page-aligned enough (8 bytes) list pages.
struct Pages {
  explicit Pages(uint32_t n) : n_pages(n), words(size_t(n) * kPageSize / 8, 0) {}
  uint8_t* data() { return reinterpret_cast<uint8_t*>(words.data()); }
  GrefListItem* items() { return reinterpret_cast<GrefListItem*>(words.data()); }
  uint32_t n_pages;
  std::vector<uint64_t> words;
};

static void PagesForEntries() {
  CHECK(GrefListPages(0) == 1);
  CHECK(GrefListPages(1) == 1);
  CHECK(GrefListPages(511) == 1);
  CHECK(GrefListPages(512) == 1);
  CHECK(GrefListPages(513) == 2);
  CHECK(GrefListPages(32768) == 64);
}

static void RoundTrip(uint32_t n) {
  std::vector<grant_ref_t> grefs(n);
  std::vector<uint32_t> pfns(n);
  for (uint32_t i = 0; i < n; ++i) {
    grefs[i] = 8 + i * 3;  // distinct, never reserved
    pfns[i] = 0x10000 + i;
  }
  Pages p(GrefListPages(n));
  std::memset(p.data(), 0x5a, size_t(p.n_pages) * kPageSize);  // encode must not rely on zeroed pages
  CHECK(EncodeGrefList(grefs.data(), pfns.data(), n, p.data(), p.n_pages));
  CHECK(p.items()[n - 1].pfn == pfns[n - 1]);
  if (n % kGrefItemsPerPage != 0) CHECK(p.items()[n].gref == 0);  // terminator when there is room
  std::vector<grant_ref_t> out;
  GrefListStatus st = DecodeGrefList(p.data(), p.n_pages, n, &out);
  CHECK(st.ok);
  CHECK(out == grefs);
  if (!st.ok) std::fprintf(stderr, "  round trip %u: %s\n", n, st.reason.c_str());
}

static void EncodeRefusesTooManyEntries() {
  std::vector<grant_ref_t> grefs(513, 100);
  Pages p(1);
  CHECK(!EncodeGrefList(grefs.data(), nullptr, 513, p.data(), 1));
  CHECK(p.items()[0].gref == 0);  // nothing written
  CHECK(EncodeGrefList(grefs.data(), nullptr, 512, p.data(), 1));
  CHECK(p.items()[511].gref == 100 && p.items()[511].pfn == 0);
}

static void StopsAtFirstNonPositiveGref() {
  for (uint32_t term : {0u, 0xffffffffu, 0x80000000u}) {
    Pages p(1);
    for (uint32_t i = 0; i < 10; ++i) p.items()[i] = {uint32_t(100 + i), 0};
    p.items()[4].gref = term;
    std::vector<grant_ref_t> out;
    CHECK(DecodeGrefList(p.data(), 1, 512, &out).ok);
    CHECK(out.size() == 4 && out[3] == 103);
  }
}

static void EmptyListDecodesToNothing() {
  Pages p(1);
  std::vector<grant_ref_t> out{1, 2, 3};
  CHECK(DecodeGrefList(p.data(), 1, 512, &out).ok);
  CHECK(out.empty());
}

static void MoreEntriesThanTheBoundIsRejected() {
  // Two full pages without a terminator, but the caller expects at most 600.
  Pages p(2);
  for (uint32_t i = 0; i < 1024; ++i) p.items()[i] = {uint32_t(8 + i), 0};
  std::vector<grant_ref_t> out;
  GrefListStatus st = DecodeGrefList(p.data(), 2, 600, &out);
  CHECK(!st.ok);
  CHECK(st.reason.find("more than 600 entries") != std::string::npos);
  CHECK(out.size() == 600);
  // Exactly at the bound with the pages full: accepted (no terminator needed).
  CHECK(DecodeGrefList(p.data(), 2, 1024, &out).ok && out.size() == 1024);
}

static void ReservedGrefIsRejectedNamingTheEntry() {
  for (uint32_t bad = 1; bad < kGnttabReservedEntries; ++bad) {
    Pages p(1);
    for (uint32_t i = 0; i < 9; ++i) p.items()[i] = {uint32_t(50 + i), 0};
    p.items()[5].gref = bad;
    std::vector<grant_ref_t> out;
    GrefListStatus st = DecodeGrefList(p.data(), 1, 512, &out);
    CHECK(!st.ok);
    CHECK(st.reason.find("entry 5 ") != std::string::npos);
    CHECK(st.reason.find("reserved") != std::string::npos);
    CHECK(out.size() == 5);
  }
}

static void PageCountIsBounded() {
  Pages p(kMaxGrefListPages + 1);
  std::vector<grant_ref_t> out;
  CHECK(!DecodeGrefList(p.data(), 0, 512, &out).ok);
  GrefListStatus st = DecodeGrefList(p.data(), kMaxGrefListPages + 1, 1u << 30, &out);
  CHECK(!st.ok && st.reason.find("65 pages") != std::string::npos);
  CHECK(DecodeGrefList(p.data(), kMaxGrefListPages, 1u << 30, &out).ok);
}

int main() {
  PagesForEntries();
  for (uint32_t n : {1u, 511u, 512u, 513u, 1024u, 32768u}) RoundTrip(n);
  EncodeRefusesTooManyEntries();
  StopsAtFirstNonPositiveGref();
  EmptyListDecodesToNothing();
  MoreEntriesThanTheBoundIsRejected();
  ReservedGrefIsRejectedNamingTheEntry();
  PageCountIsBounded();
  return xsw::test::Finish("gref_list_test");
}
