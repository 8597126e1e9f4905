// Shared by the PMD's C++ tests: a device over local memory (pmd/device.h)
// and a "dom0" that plays the device side of its rings with VringDevice over
// the same memory (gva == hva: one process plays both domains).
#pragma once

#include "check.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "pmd/device.h"
#include "shm/vring.h"

namespace pmdtest {

using ::xsw::test::failures;

// A FrontDevice over local memory, and dom0's view of both of its rings.
struct Rig {
  // Where one piece of the device's memory lies.
  struct View {
    uint8_t* p;
    size_t size;
  };

  Rig(uint32_t nb_mbuf, uint32_t ring_size, uint32_t max_pkt_len = 0)
      : device(Open(nb_mbuf, ring_size, max_pkt_len)),
        port(&device->port()),
        pool{device->memory().pool_base, size_t(device->memory().pool_bytes)},
        tx{device->memory().tx_ring, size_t(xsw::VringSize(ring_size))},
        rx{device->memory().rx_ring, size_t(xsw::VringSize(ring_size))} {
    regions.Add({reinterpret_cast<uint64_t>(pool.p), pool.size, pool.p, true, pool.size});
    dev_tx = std::make_unique<xsw::VringDevice>(tx.p, ring_size, tx.size, &regions, xsw::kMaxChainSegs,
                                                xsw::RingDirection::kDeviceReads);
    dev_rx = std::make_unique<xsw::VringDevice>(rx.p, ring_size, rx.size, &regions, xsw::kMaxChainSegs,
                                                xsw::RingDirection::kDeviceWrites);
  }

  static std::unique_ptr<xsw::FrontDevice> Open(uint32_t nb_mbuf, uint32_t ring_size, uint32_t max_pkt_len) {
    xsw::FrontDeviceConfig c;
    c.nb_bufs = nb_mbuf;
    c.ring_size = ring_size;
    c.max_pkt_len = max_pkt_len;
    return xsw::FrontDevice::OpenLocal(c);
  }

  // dom0 takes every TX chain, returns each frame (header stripped, checked zero).
  std::vector<std::vector<uint8_t>> DrainTx() {
    std::vector<std::vector<uint8_t>> frames;
    uint32_t avail = 0;
    CHECK(dev_tx->Avail(&avail) == xsw::Violation::kNone);
    for (uint32_t i = 0; i < avail; i++) {
      xsw::Chain c;
      CHECK(dev_tx->Pop(&c) == xsw::Violation::kNone);
      std::vector<uint8_t> bytes;
      for (uint32_t s = 0; s < c.nseg; s++) bytes.insert(bytes.end(), c.seg[s].hva, c.seg[s].hva + c.seg[s].len);
      CHECK(bytes.size() >= xsw::kVirtioNetHdrLen);
      for (uint32_t k = 0; k < xsw::kVirtioNetHdrLen && k < bytes.size(); k++) CHECK_EQ(bytes[k], 0);
      frames.emplace_back(bytes.begin() + xsw::kVirtioNetHdrLen, bytes.end());
      dev_tx->PushUsed(c.head, 0);
    }
    dev_tx->PublishUsed();
    return frames;
  }

  // dom0 delivers one frame into the next RX chain (zero header + frame
  // across the segments); false when the guest posted nothing.
  bool Deliver(const std::vector<uint8_t>& frame) {
    uint32_t avail = 0;
    CHECK(dev_rx->Avail(&avail) == xsw::Violation::kNone);
    if (avail == 0) return false;
    xsw::Chain c;
    CHECK(dev_rx->Pop(&c) == xsw::Violation::kNone);
    std::vector<uint8_t> bytes(xsw::kVirtioNetHdrLen, 0);
    bytes.insert(bytes.end(), frame.begin(), frame.end());
    CHECK(bytes.size() <= c.in_len);
    size_t done = 0;
    for (uint32_t s = 0; s < c.nseg && done < bytes.size(); s++) {
      const size_t take = std::min<size_t>(c.seg[s].len, bytes.size() - done);
      std::memcpy(c.seg[s].hva, bytes.data() + done, take);
      done += take;
    }
    dev_rx->PushUsed(c.head, uint32_t(done));
    dev_rx->PublishUsed();
    return true;
  }

  uint32_t RxPosted() {
    uint32_t avail = 0;
    dev_rx->Avail(&avail);
    return avail;
  }

  std::unique_ptr<xsw::FrontDevice> device;
  xsw::FrontPort* port;
  View pool, tx, rx;
  xsw::RegionTable regions;
  std::unique_ptr<xsw::VringDevice> dev_tx, dev_rx;
};

inline std::vector<uint8_t> EthFrame(const uint8_t dst[6], const uint8_t src[6], uint32_t len, uint8_t fill) {
  std::vector<uint8_t> f(len, fill);
  std::memcpy(f.data(), dst, 6);
  std::memcpy(f.data() + 6, src, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  for (uint32_t i = 14; i < len; i++) f[i] = uint8_t(fill + i);
  return f;
}

}  // namespace pmdtest
