// libFuzzer target: dom0's side of one vring (shm/vring.h) against a guest
// that writes whatever it likes into the shared ring - descriptors, avail
// entries, the avail index, even the used ring the device owns - between any
// two of the device's calls. The input is the guest's script, interleaved
// with the device's Avail / Pop / PushUsed / Resume.
//
// Checked: the device never touches memory outside the ring and its two
// regions (ASan: everything is allocated to the byte), every chain Pop hands
// out is one the contract allows (direction, order, lengths, bounds, count
// no more than Avail saw), and nothing aborts or hits undefined behaviour.
#include <fuzzer/FuzzedDataProvider.h>

#include "fuzz_util.h"
#include "shm/regions.h"
#include "shm/vring.h"

using namespace xsw;
using xsw::fuzz::ExactMem;

namespace {

constexpr uint64_t kPoolGva = 0x10000000;
constexpr uint64_t kPoolBytes = 8 * kPageSize;  // writable
constexpr uint64_t kRoGva = kPoolGva + kPoolBytes;  // read-only, adjacent
constexpr uint64_t kRoBytes = kPageSize;

uint64_t PickAddr(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 4)) {
    case 0: return kPoolGva + in.ConsumeIntegralInRange<uint64_t>(0, kPoolBytes + 64);
    case 1: return kRoGva + in.ConsumeIntegralInRange<uint64_t>(0, kRoBytes + 64);
    case 2: return kPoolGva - in.ConsumeIntegralInRange<uint64_t>(0, 64);
    case 3: return ~uint64_t(0) - in.ConsumeIntegralInRange<uint64_t>(0, 4096);
    default: return in.ConsumeIntegral<uint64_t>();
  }
}

uint32_t PickLen(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 2)) {
    case 0: return in.ConsumeIntegralInRange<uint32_t>(0, 4096);
    case 1: return in.ConsumeIntegralInRange<uint32_t>(0, uint32_t(kPoolBytes + kRoBytes) + 64);
    default: return in.ConsumeIntegral<uint32_t>();
  }
}

uint16_t PickFlags(FuzzedDataProvider& in) {
  if (in.ConsumeBool()) return in.ConsumeIntegral<uint16_t>();
  return uint16_t((in.ConsumeBool() ? VRING_DESC_F_NEXT : 0) | (in.ConsumeBool() ? VRING_DESC_F_WRITE : 0));
}

bool Inside(const uint8_t* p, uint64_t len, const uint8_t* base, uint64_t size) {
  return p >= base && uint64_t(p - base) <= size && len <= size - uint64_t(p - base);
}

// Everything Pop promises about a chain it accepted.
void CheckChain(const Chain& c, uint32_t num, uint32_t max_chain, RingDirection dir, const ExactMem& pool,
                const ExactMem& ro) {
  FUZZ_CHECK(c.head < num);
  FUZZ_CHECK(c.nseg >= 1 && c.nseg <= max_chain);
  uint64_t out = 0, in = 0;
  bool seen_writable = false;
  for (uint32_t i = 0; i < c.nseg; ++i) {
    const Segment& s = c.seg[i];
    FUZZ_CHECK(s.len <= kMaxSegmentLen);
    FUZZ_CHECK(!(seen_writable && !s.device_writable));  // out buffers first
    if (dir == RingDirection::kDeviceReads) FUZZ_CHECK(!s.device_writable);
    if (dir == RingDirection::kDeviceWrites) FUZZ_CHECK(s.device_writable);
    seen_writable |= s.device_writable;
    (s.device_writable ? in : out) += s.len;
    bool in_pool = Inside(s.hva, s.len, pool.p, pool.size);
    bool in_ro = Inside(s.hva, s.len, ro.p, ro.size);
    FUZZ_CHECK(in_pool || (in_ro && !s.device_writable));
    // Touch every byte as the switch would (ASan checks the bounds again).
    volatile uint8_t sink = 0;
    for (uint32_t k = 0; k < s.len; ++k) sink = sink + s.hva[k];
    if (s.device_writable && s.len != 0) std::memset(s.hva, 0x5A, s.len);
  }
  FUZZ_CHECK(out == c.out_len && in == c.in_len);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ExactMem pool(kPoolBytes), ro(kRoBytes);
  FuzzedDataProvider in(data, size);
  const uint32_t num = 1u << in.ConsumeIntegralInRange<uint32_t>(0, 8);  // 1..256 entries
  const RingDirection dir = static_cast<RingDirection>(in.ConsumeIntegralInRange<int>(0, 2));
  const uint32_t max_chain_arg = in.ConsumeIntegralInRange<uint32_t>(0, kMaxChainSegs + 2);
  const uint32_t max_chain = max_chain_arg < 1 ? 1 : max_chain_arg > kMaxChainSegs ? kMaxChainSegs : max_chain_arg;

  ExactMem ring(VringSize(num));
  RegionTable regions;
  FUZZ_CHECK(regions.Add(Region{kPoolGva, kPoolBytes, pool.p, true, kPoolBytes}));
  FUZZ_CHECK(regions.Add(Region{kRoGva, kRoBytes, ro.p, false, kRoBytes}));
  VringView v = VringView::At(ring.p, num);
  // The guest may have used the ring before the device starts (a restart).
  v.used->idx = in.ConsumeIntegral<uint16_t>();
  v.avail->idx = v.used->idx;
  VringDevice dev(ring.p, num, ring.size, &regions, max_chain_arg, dir);

  uint32_t may_pop = 0;  // chains the last Avail saw that have not been popped
  uint16_t last_head = 0;
  for (int ops = 0; ops < 512 && in.remaining_bytes() != 0; ++ops) {
    switch (in.ConsumeIntegralInRange<int>(0, 9)) {
      case 0: {  // the guest writes a descriptor
        uint32_t i = in.ConsumeIntegral<uint16_t>() % num;
        uint64_t addr = PickAddr(in);
        uint32_t len = PickLen(in);
        uint16_t flags = PickFlags(in);
        uint16_t next = in.ConsumeBool() ? uint16_t((i + 1) % num) : in.ConsumeIntegral<uint16_t>();
        v.desc[i] = VringDesc{addr, len, flags, next};
        break;
      }
      case 1: {  // ... an avail entry
        uint16_t slot = in.ConsumeIntegral<uint16_t>();
        v.avail->ring[slot % num] = in.ConsumeBool() ? uint16_t(in.ConsumeIntegral<uint16_t>() % num)
                                                     : in.ConsumeIntegral<uint16_t>();
        break;
      }
      case 2: {  // ... the avail index, a little ahead or anywhere
        uint16_t idx = v.avail->idx;
        idx = in.ConsumeBool() ? uint16_t(idx + in.ConsumeIntegralInRange<uint32_t>(0, num + 1))
                               : in.ConsumeIntegral<uint16_t>();
        __atomic_store_n(&v.avail->idx, idx, __ATOMIC_RELEASE);
        break;
      }
      case 3: {  // ... the used ring, which is the device's to write
        if (in.ConsumeBool()) {
          v.used->idx = in.ConsumeIntegral<uint16_t>();
        } else {
          VringUsedElem& e = v.used->ring[in.ConsumeIntegral<uint16_t>() % num];
          e.id = in.ConsumeIntegral<uint32_t>();
          e.len = in.ConsumeIntegral<uint32_t>();
        }
        break;
      }
      case 4:
      case 5: {  // the device: Avail, then pops (the guest's writes above may land between them)
        uint32_t count = 0;
        Violation why = dev.Avail(&count);
        if (why == Violation::kNone) {
          FUZZ_CHECK(count <= num);
          may_pop = count;
        } else {
          FUZZ_CHECK(why == Violation::kAvailIdxJump && count == 0);
        }
        break;
      }
      case 6:
      case 7: {
        Chain c;
        Violation why = dev.Pop(&c);
        if (why == Violation::kNone && c.nseg != 0) {
          FUZZ_CHECK(may_pop != 0);
          --may_pop;
          CheckChain(c, num, max_chain, dir, pool, ro);
          last_head = c.head;
        } else if (why == Violation::kNone) {
          FUZZ_CHECK(may_pop == 0);
        } else {
          FUZZ_CHECK(why != Violation::kAvailIdxJump);  // only Avail reports that
          FUZZ_CHECK(uint32_t(why) < kViolationCount);
        }
        break;
      }
      case 8: {  // the device gives a chain back
        dev.PushUsed(in.ConsumeBool() ? last_head : in.ConsumeIntegral<uint16_t>(), in.ConsumeIntegral<uint32_t>());
        if (in.ConsumeBool()) dev.PublishUsed();
        break;
      }
      default:  // the device restarts from the ring's own state
        dev.Resume();
        may_pop = 0;
        break;
    }
  }
  return 0;
}
