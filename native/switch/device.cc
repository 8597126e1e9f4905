#include "switch/device.h"

namespace xsw {

const char* DeviceStateName(DeviceState s) {
  switch (s) {
    case DeviceState::kFree: return "free";
    case DeviceState::kActive: return "active";
    case DeviceState::kQuarantined: return "quarantined";
    case DeviceState::kDead: return "dead";
    case DeviceState::kRemoved: return "removed";
  }
  return "unknown";
}

void DeviceCounters::Reset() {
  for (Counter* c : {&tx_total, &tx_dropped, &rx_total, &rx_dropped, &tx_bytes, &rx_bytes}) c->Reset();
  for (Counter& c : drops) c.Reset();
}

}  // namespace xsw
