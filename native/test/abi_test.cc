// The ABI header's static_asserts are the test; this binary also checks the
// ring arithmetic at run time for every power-of-two size.
#include "check.h"

#include "abi/abi.h"

int main() {
  using namespace xsw;
  for (uint32_t num = 1; num <= kMaxRingSize; num <<= 1) {
    CHECK(VringUsedOffset(num) % kVringAlign == 0);
    CHECK(VringSize(num) > VringUsedOffset(num));
  }
  return xsw::test::Finish("abi_test");
}
