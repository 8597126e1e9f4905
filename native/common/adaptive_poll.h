// Adaptive polling, shared by the guest engines and the back end's switch:
// spin while polls find work; after 64 empty polls in a row, sleep 10 µs,
// doubling up to 500 µs while nothing comes; any work resets. Several guests
// and a back end can then share two cores, at the price of up to 500 µs of
// latency after an idle spell. Busy polling (the original's) never sleeps.
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

namespace xsw {

class AdaptivePoll {
 public:
  static constexpr uint32_t kIdlePollsBeforeSleep = 64;
  static constexpr uint32_t kMinSleepUs = 10;
  static constexpr uint32_t kMaxSleepUs = 500;

  explicit AdaptivePoll(bool busy) : busy_(busy) {}

  // Call after each poll with whether it did any work; sleeps when it is time.
  void After(bool worked) {
    if (worked || busy_) {
      idle_ = 0;
      sleep_us_ = kMinSleepUs;
      return;
    }
    if (++idle_ < kIdlePollsBeforeSleep) return;
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    sleep_us_ = sleep_us_ * 2 > kMaxSleepUs ? kMaxSleepUs : sleep_us_ * 2;
  }

 private:
  bool busy_;
  uint32_t idle_ = 0;
  uint32_t sleep_us_ = kMinSleepUs;
};

}  // namespace xsw
