// The front end's granted memory, over a fake provider that records what was
// asked: gref lists describe every page, the VA key is the pool's address,
// the flag page is notify-registered and cleared before it is freed, and an
// exhausted gntalloc limit gives a sentence and leaks nothing.
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "pmd/granted_pool.h"
#include "pmd/granted_rings.h"
#include "shm/gref_list.h"
#include "pmd_test_util.h"

using namespace xsw;
using namespace pmdtest;

class FakeGrants : public GrantProvider {
 public:
  explicit FakeGrants(uint32_t limit) : limit_(limit) {}
  ~FakeGrants() override {
    for (auto& [id, a] : live_) std::free(a.addr);
  }
  const char* kind() const override { return "sim"; }
  GrantAllocation Allocate(domid_t to, uint32_t pages, bool writable) override {
    if (used_ + pages > limit_) throw SysError(ENOSPC, "over the limit");
    GrantAllocation a;
    a.id = next_id_++;
    a.pages = pages;
    a.granted_to = to;
    a.writable = writable;
    a.addr = static_cast<uint8_t*>(std::aligned_alloc(kPageSize, size_t(pages) * kPageSize));
    std::memset(a.addr, 0, size_t(pages) * kPageSize);
    for (uint32_t i = 0; i < pages; i++) {
      a.grefs.push_back(next_gref_++);
      a.pfns.push_back(0x1000 + next_gref_);
    }
    used_ += pages;
    live_[a.id] = a;
    return a;
  }
  void Free(uint64_t id) override {
    auto it = live_.find(id);
    if (it == live_.end()) throw SysError(ENOENT, "unknown allocation");
    first_byte_at_free_[id] = it->second.addr[0];
    used_ -= it->second.pages;
    std::free(it->second.addr);
    live_.erase(it);
  }
  void SetUnmapNotify(uint64_t id, uint64_t offset) override { notify_[id] = offset; }
  GrantMapping Map(domid_t, const grant_ref_t*, uint32_t, bool) override { throw SysError(ENOSYS, "guest only"); }
  void Unmap(uint64_t) override {}

  uint32_t limit_, used_ = 0;
  uint64_t next_id_ = 1;
  grant_ref_t next_gref_ = 8;
  std::map<uint64_t, GrantAllocation> live_;
  std::map<uint64_t, uint64_t> notify_;
  std::map<uint64_t, uint8_t> first_byte_at_free_;
};

static std::vector<grant_ref_t> ParseKey(const std::string& key) {
  std::vector<grant_ref_t> out;
  size_t at = 0;
  while (at < key.size()) {
    size_t comma = key.find(',', at);
    if (comma == std::string::npos) comma = key.size();
    out.push_back(grant_ref_t(std::stoul(key.substr(at, comma - at))));
    at = comma + 1;
  }
  return out;
}

// Reads a gref list back through the allocation that holds those grefs.
static std::vector<grant_ref_t> Decode(FakeGrants& g, const std::string& key) {
  const std::vector<grant_ref_t> list = ParseKey(key);
  for (auto& [id, a] : g.live_) {
    if (!list.empty() && a.grefs[0] == list[0]) {
      CHECK_EQ(a.pages, list.size());
      std::vector<grant_ref_t> out;
      CHECK(DecodeGrefList(a.addr, a.pages, kMaxGrefListEntries, &out));
      return out;
    }
  }
  CHECK(false);
  return {};
}

static void APoolOf8192MbufsIsDescribedByItsGrefList() {
  auto g = std::make_shared<FakeGrants>(100000);
  {
    FrontPool pool(g, 8192, 0);
    CHECK_EQ(pool.layout().pages, 8192u);  // one 2176-byte mbuf per page
    CHECK_EQ(pool.data_pages(), 8192u);
    CHECK_EQ(ParseKey(pool.GrefKey()).size(), 16u);  // 8192 / 512 list pages
    CHECK(Decode(*g, pool.GrefKey()) == pool.data_grefs());
    char want[32];
    std::snprintf(want, sizeof want, "0x%llx", (unsigned long long)reinterpret_cast<uintptr_t>(pool.base()));
    CHECK(pool.VaKey() == want);
    CHECK(pool.VaKey().find_first_of("ABCDEF") == std::string::npos);
    uint32_t first = 99;
    CHECK(pool.TakeSlice(4096, &first) && first == 0);
    CHECK(pool.TakeSlice(4096, &first) && first == 4096);
    CHECK(!pool.TakeSlice(1, &first));
    for (auto& [id, a] : g->live_) CHECK(a.granted_to == 0 && a.writable);
  }
  CHECK(g->live_.empty());
}

static void RingsFlagAndListsAreGrantedAndReleased() {
  auto g = std::make_shared<FakeGrants>(100000);
  uint64_t flag_id = 0;
  {
    FrontRings rings(g, 256, 0);
    CHECK_EQ(g->live_.size(), 5u);  // tx, tx list, rx, rx list, flag
    const auto tx = Decode(*g, rings.TxGrefKey());
    const auto rx = Decode(*g, rings.RxGrefKey());
    CHECK_EQ(tx.size(), 3u);  // VringPages(256)
    CHECK_EQ(rx.size(), 3u);
    CHECK(tx != rx);
    CHECK_EQ(rings.flag(), 0u);
    rings.SetLive(true);
    CHECK_EQ(rings.flag(), 0xA5u);
    for (auto& [id, a] : g->live_) {
      if (a.grefs[0] == rings.flag_gref()) flag_id = id;
    }
    CHECK(g->notify_.count(flag_id) == 1 && g->notify_[flag_id] == 0);
  }
  CHECK(g->live_.empty());
  CHECK_EQ(g->first_byte_at_free_[flag_id], 0u);  // cleared before the grant went away
}

static void AnExhaustedLimitSaysHowToRaiseItAndLeaksNothing() {
  for (uint32_t limit : {100u, 8192u, 8200u}) {  // fails on the data, then on the gref list
    auto g = std::make_shared<FakeGrants>(limit);
    try {
      FrontPool pool(g, 8192, 0);
      CHECK(false);
    } catch (const SysError& e) {
      const std::string msg = e.what();
      CHECK_EQ(e.err(), ENOSPC);
      CHECK(msg.find("gntalloc limit") != std::string::npos);
      CHECK(msg.find("--nb-mbuf") != std::string::npos);
      CHECK(msg.find("xsw-sim up --gntalloc-limit") != std::string::npos);
    }
    CHECK(g->live_.empty());
  }
  auto g = std::make_shared<FakeGrants>(10);  // rings: 3 + 1 + 3 + 1 + 1 = 9 pages, flag fails at 10? no: fits
  { FrontRings ok(g, 256, 0); }
  auto tight = std::make_shared<FakeGrants>(7);  // the RX list or the flag page does not fit
  try {
    FrontRings rings(tight, 256, 0);
    CHECK(false);
  } catch (const SysError& e) {
    CHECK_EQ(e.err(), ENOSPC);
  }
  CHECK(tight->live_.empty());
  try {
    FrontRings rings(g, 100, 0);
    CHECK(false);
  } catch (const std::invalid_argument&) {
  }
}

int main() {
  APoolOf8192MbufsIsDescribedByItsGrefList();
  RingsFlagAndListsAreGrantedAndReleased();
  AnExhaustedLimitSaysHowToRaiseItAndLeaksNothing();
  return xsw::test::Finish("granted_memory_test");
}
