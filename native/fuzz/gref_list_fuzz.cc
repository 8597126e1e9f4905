// libFuzzer target: the gref-list decoder (shm/gref_list.h) on pages a guest
// filled as it liked. The input is the pages' bytes (the rest of the pages
// is zero, as gntalloc hands them out), their count and the caller's bound.
//
// Checked against a plain reading of the format: the same entries, the same
// verdict (a terminator ends the list, more than the bound or a reserved ref
// is refused, with a reason), nothing read past the last page (ASan), and an
// accepted list encodes back to pages that decode to the same entries.
#include <fuzzer/FuzzedDataProvider.h>

#include <vector>

#include "fuzz_util.h"
#include "shm/gref_list.h"

using namespace xsw;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const uint32_t n_pages = in.ConsumeIntegralInRange<uint32_t>(0, kMaxGrefListPages + 1);
  const uint32_t capacity = n_pages * kGrefItemsPerPage;
  const uint32_t max_entries = in.ConsumeBool() ? in.ConsumeIntegralInRange<uint32_t>(0, capacity + 2)
                                                : in.ConsumeIntegral<uint32_t>();
  std::vector<uint8_t> bytes = in.ConsumeRemainingBytes<uint8_t>();
  xsw::fuzz::ExactMem pages(uint64_t(n_pages) * kPageSize);
  if (!bytes.empty()) std::memcpy(pages.p, bytes.data(), std::min<uint64_t>(bytes.size(), pages.size));

  std::vector<grant_ref_t> out;
  GrefListStatus st = DecodeGrefList(pages.p, n_pages, max_entries, &out);

  // The format, read plainly.
  bool ok = n_pages != 0 && n_pages <= kMaxGrefListPages;
  std::vector<grant_ref_t> expect;
  for (uint32_t i = 0; ok && i < capacity; ++i) {
    grant_ref_t gref;
    std::memcpy(&gref, pages.p + uint64_t(i) * sizeof(GrefListItem), sizeof gref);
    if (int32_t(gref) <= 0) break;
    if (i == max_entries || gref < kGnttabReservedEntries) {
      ok = false;
      break;
    }
    expect.push_back(gref);
  }
  FUZZ_CHECK(st.ok == ok);
  FUZZ_CHECK(ok ? st.reason.empty() : !st.reason.empty());
  if (n_pages != 0 && n_pages <= kMaxGrefListPages) FUZZ_CHECK(out == expect);  // on failure: those before the bad one
  if (!ok) return 0;

  FUZZ_CHECK(out.size() <= max_entries && out.size() <= capacity);
  for (grant_ref_t g : out) FUZZ_CHECK(int32_t(g) > 0 && g >= kGnttabReservedEntries);
  const uint32_t again_pages = GrefListPages(uint32_t(out.size()));
  xsw::fuzz::ExactMem again(uint64_t(again_pages) * kPageSize);
  FUZZ_CHECK(EncodeGrefList(out.data(), nullptr, uint32_t(out.size()), again.p, again_pages));
  std::vector<grant_ref_t> round;
  FUZZ_CHECK(DecodeGrefList(again.p, again_pages, uint32_t(out.size()), &round).ok);
  FUZZ_CHECK(round == out);
  return 0;
}
