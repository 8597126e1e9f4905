#include "switch/drops.h"

namespace xsw {

namespace {
constexpr const char* kSwitchDropNames[] = {
#define XSW_DROP_NAME(code, name) name,
    XSW_SWITCH_DROPS(XSW_DROP_NAME)
#undef XSW_DROP_NAME
};
static_assert(kViolationCount + sizeof kSwitchDropNames / sizeof kSwitchDropNames[0] == kDropCount,
              "one name per drop reason");
}  // namespace

const char* DropName(uint32_t i) {
  if (i < kViolationCount) return ViolationName(static_cast<Violation>(i));
  if (i < kDropCount) return kSwitchDropNames[i - kViolationCount];
  return "unknown";
}

}  // namespace xsw
