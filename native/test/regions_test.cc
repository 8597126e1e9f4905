// RegionTable: a range translates only when it lies wholly inside one region,
// with overflow-safe arithmetic and write permission checked. Table-driven.
#include "check.h"
#include <cstdio>
#include <vector>

#include "shm/regions.h"

using namespace xsw;

using ::xsw::test::failures;

static uint8_t backing_a[8192];
static uint8_t backing_b[4096];

static void AddRejectsBadRegions() {
  RegionTable t;
  CHECK(t.Add({0x1000, 8192, backing_a, true, 8192}));
  CHECK(!t.Add({0x1000, 0, backing_b, true, 0}));                 // empty
  CHECK(!t.Add({0x9000, 4096, nullptr, true, 4096}));             // no mapping
  CHECK(!t.Add({0x9000, 8192, backing_b, true, 4096}));           // longer than its mapping
  CHECK(!t.Add({0x9000, 4096, backing_b, true, 0}));              // mapping length not given
  CHECK(!t.Add({UINT64_MAX - 10, 4096, backing_b, true, 4096}));  // gva+len wraps
  CHECK(!t.Add({0x0000, 0x1001, backing_b, true, 0x1001}));       // overlaps the start
  CHECK(!t.Add({0x2fff, 2, backing_b, true, 2}));                 // overlaps the end
  CHECK(!t.Add({0x1800, 16, backing_b, true, 16}));               // inside
  CHECK(!t.Add({0x0, 0x10000, backing_b, true, 0x10000}));        // around
  CHECK(t.Add({0x3000, 4096, backing_b, false, 4096}));           // adjacent is fine
  CHECK(t.size() == 2);
  RegionTable full;
  for (uint32_t i = 0; i < RegionTable::kCapacity; ++i) CHECK(full.Add({uint64_t(i) << 20, 4096, backing_b, true, 4096}));
  CHECK(!full.Add({uint64_t(RegionTable::kCapacity) << 20, 4096, backing_b, true, 4096}));
  full.Clear();
  CHECK(full.size() == 0 && full.Add({0, 4096, backing_b, true, 4096}));
}

struct Row {
  const char* what;
  uint64_t gva, len;
  bool write;
  uint8_t* expect;  // nullptr: expect a violation
  Violation why;
};

static void TranslateTable() {
  RegionTable t;
  t.Add({0x1000, 8192, backing_a, true, 8192});    // [0x1000, 0x3000) writable
  t.Add({0x3000, 4096, backing_b, false, 4096});   // [0x3000, 0x4000) read-only, adjacent
  CHECK(!t.Add({UINT64_MAX - 4095, 4096, backing_b, false, 4096}));  // would end at 2^64: unrepresentable
  const Violation kOk = Violation::kNone;
  const std::vector<Row> rows = {
      {"start of a region", 0x1000, 64, false, backing_a, kOk},
      {"whole region", 0x1000, 8192, true, backing_a, kOk},
      {"last byte", 0x2fff, 1, true, backing_a + 8191, kOk},
      {"len 0 inside", 0x2000, 0, false, backing_a + 0x1000, kOk},
      {"len 0 at a region's end is the next region", 0x3000, 0, false, backing_b, kOk},
      {"len 0 outside", 0x4000, 0, false, nullptr, Violation::kAddrOutsideRegion},
      {"one byte past the end", 0x2fff, 2, false, nullptr, Violation::kAddrOutsideRegion},
      {"spans two adjacent regions", 0x2800, 0x1000, false, nullptr, Violation::kAddrOutsideRegion},
      {"before every region", 0x0fff, 1, false, nullptr, Violation::kAddrOutsideRegion},
      {"after every region", 0x4000, 1, false, nullptr, Violation::kAddrOutsideRegion},
      {"huge len from inside", 0x1000, UINT64_MAX / 2, false, nullptr, Violation::kAddrOutsideRegion},
      {"gva+len wraps", UINT64_MAX - 10, 100, false, nullptr, Violation::kLenOverflow},
      {"wraps to inside a region", 0x1000 + 16, UINT64_MAX, false, nullptr, Violation::kLenOverflow},
      {"read from read-only", 0x3000, 4096, false, backing_b, kOk},
      {"write to read-only", 0x3010, 16, true, nullptr, Violation::kWriteToReadOnly},
      {"range ending at 2^64", UINT64_MAX - 4095, 4096, false, nullptr, Violation::kLenOverflow},
      {"len 0 at the last address", UINT64_MAX, 0, false, nullptr, Violation::kAddrOutsideRegion},
  };
  for (const Row& r : rows) {
    Violation why = Violation::kNone;
    uint8_t* got = t.Translate(r.gva, r.len, r.write, &why);
    bool ok = got == r.expect && (r.expect != nullptr || why == r.why);
    if (!ok) {
      std::fprintf(stderr, "  row '%s': got %p (%s)\n", r.what, static_cast<void*>(got), ViolationName(why));
      ++failures;
    }
  }
  CHECK(t.Translate(0x9999999, 1, false, nullptr) == nullptr);  // why may be null

  // TranslateHinted gives Translate's answer whatever region it tries first
  // (any hint, in range or not), and leaves the matching region in the hint.
  const uint32_t hints[] = {0, 1, 2, RegionTable::kCapacity, UINT32_MAX};
  for (const Row& r : rows) {
    for (uint32_t h : hints) {
      uint32_t hint = h;
      Violation why = Violation::kNone;
      uint8_t* got = t.TranslateHinted(r.gva, r.len, r.write, &hint, &why);
      bool ok = got == r.expect && (r.expect != nullptr || why == r.why);
      if (ok && got != nullptr) ok = hint < t.size() && got == t.at(hint).hva + (r.gva - t.at(hint).gva);
      if (ok && got == nullptr) ok = hint == h;  // a miss leaves the hint alone
      if (!ok) {
        std::fprintf(stderr, "  hinted row '%s', hint %u: got %p (%s), hint %u\n", r.what, h, static_cast<void*>(got),
                     ViolationName(why), hint);
        ++failures;
      }
    }
  }
}

int main() {
  AddRejectsBadRegions();
  TranslateTable();
  return xsw::test::Finish("regions_test");
}
