// The switch device of a netif engine's local device, as the back end's
// control plane registers it (backend/netif.ts): for the netif tests and the
// netif fuzz target, which run engine and switch in one process.
#pragma once

#include "netif/engine.h"
#include "switch/device.h"

namespace xsw::test {

inline DeviceConfig NetifSwitchDevice(const netif::LocalDevice& l, uint16_t domid, uint64_t mac) {
  DeviceConfig c;
  c.domid = domid;
  c.mac = mac;
  c.tx_ring = l.tx_ring;
  c.tx_num = l.ring_size;
  c.tx_ring_len = l.ring_len;
  c.rx_ring = l.rx_ring;
  c.rx_num = l.ring_size;
  c.rx_ring_len = l.ring_len;
  c.flag = l.flag;
  c.flag_len = 1;
  Region r;
  r.gva = reinterpret_cast<uint64_t>(l.pool);
  r.len = r.map_len = l.pool_len;
  r.hva = l.pool;
  r.writable = true;
  c.regions.push_back(r);
  return c;
}

}  // namespace xsw::test
