// The ABI header's static_asserts are the test; this binary also checks the
// ring arithmetic at run time for every power-of-two size.
#include <cstdio>

#include "abi.h"

int main() {
  using namespace xsw;
  int failures = 0;
  for (uint32_t num = 1; num <= kMaxRingSize; num <<= 1) {
    if (VringUsedOffset(num) % kVringAlign != 0) ++failures;
    if (VringSize(num) <= VringUsedOffset(num)) ++failures;
  }
  std::printf("abi_test: %s\n", failures ? "FAIL" : "ok");
  return failures ? 1 : 0;
}
