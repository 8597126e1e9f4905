// The source MACs the switch has seen on frames arriving from the NIC: hosts
// on the LAN side. The control plane asks it before letting a guest register
// a MAC it chose itself, so a guest cannot claim the gateway's address.
//
// A fixed table (kSize entries, open addressing, kProbe slots per MAC, the
// stalest slot of the window replaced when it is full): no allocation, no
// lock. The data thread is the only writer (Learn, once per NIC frame); any
// thread may read (Seen) - a torn read between a slot's MAC and its stamp
// can only misdate one entry, which is harmless for this question. Stamps
// are whole seconds of CLOCK_MONOTONIC_COARSE, read once per NIC burst.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

namespace xsw {

class NicMacTable {
 public:
  static constexpr uint32_t kSize = 1024;  // a power of two
  static constexpr uint32_t kProbe = 8;

  // Now, in the table's seconds (never 0, so a stamp of 0 means "never").
  static uint32_t NowSeconds() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return uint32_t(ts.tv_sec) + 1;
  }

  // Data thread: records that `mac` (48 bits, unicast, non-zero) was a source at `now`.
  void Learn(uint64_t mac, uint32_t now) {
    if (mac == 0) return;
    const uint32_t home = Home(mac);
    uint32_t target = home;
    uint32_t oldest = UINT32_MAX;
    for (uint32_t i = 0; i < kProbe; ++i) {
      Entry& e = slots_[(home + i) & (kSize - 1)];
      const uint64_t m = e.mac.load(std::memory_order_relaxed);
      if (m == mac) {
        if (e.seen.load(std::memory_order_relaxed) != now) e.seen.store(now, std::memory_order_relaxed);
        return;
      }
      const uint32_t seen = m == 0 ? 0 : e.seen.load(std::memory_order_relaxed);
      if (seen < oldest) {
        oldest = seen;
        target = (home + i) & (kSize - 1);
      }
    }
    Entry& e = slots_[target];
    e.seen.store(now, std::memory_order_relaxed);
    e.mac.store(mac, std::memory_order_release);
  }

  // Any thread: true if `mac` was a source within `max_age` seconds before `now`.
  bool Seen(uint64_t mac, uint32_t now, uint32_t max_age) const {
    if (mac == 0) return false;
    const uint32_t home = Home(mac);
    for (uint32_t i = 0; i < kProbe; ++i) {
      const Entry& e = slots_[(home + i) & (kSize - 1)];
      if (e.mac.load(std::memory_order_acquire) != mac) continue;
      const uint32_t seen = e.seen.load(std::memory_order_relaxed);
      return seen != 0 && now >= seen && now - seen <= max_age;
    }
    return false;
  }

 private:
  struct Entry {
    std::atomic<uint64_t> mac{0};
    std::atomic<uint32_t> seen{0};
  };

  static uint32_t Home(uint64_t mac) {
    return uint32_t((mac * 0x9E3779B97F4A7C15ull) >> 54) & (kSize - 1);  // Fibonacci hashing, top 10 bits
  }

  Entry slots_[kSize];
};

}  // namespace xsw
