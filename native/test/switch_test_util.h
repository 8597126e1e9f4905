// Test helpers for the switch: a fake guest that drives its two vrings by
// writing the driver side's bytes directly (so hostile rings are as easy to
// build as good ones), and an in-memory NIC port.
#pragma once

#include "check.h"
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "abi/abi.h"
#include "common/ethernet.h"
#include "switch/device.h"
#include "switch/nic_port.h"

namespace xsw::test {


// Anonymous shared pages, unmapped on destruction (or earlier with Unmap).
struct Pages {
  explicit Pages(size_t bytes) : size(AlignUp(bytes, kPageSize)) {
    void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) std::abort();
    p = static_cast<uint8_t*>(m);
  }
  ~Pages() { Unmap(); }
  void Unmap() {
    if (p) munmap(p, size);
    p = nullptr;
  }
  Pages(const Pages&) = delete;
  Pages& operator=(const Pages&) = delete;
  size_t size;
  uint8_t* p;
};

constexpr uint32_t kBufSize = 2048;

inline std::vector<uint8_t> MakeFrame(uint64_t dst, uint64_t src, uint32_t len, uint8_t seed, uint16_t type = 0x0800) {
  std::vector<uint8_t> f(len);
  PutMac(f.data(), dst);
  PutMac(f.data() + 6, src);
  PutBe16(f.data() + 12, type);
  for (uint32_t i = 14; i < len; ++i) f[i] = uint8_t(seed + i * 7);
  return f;
}

// A guest's device: TX ring, RX ring, flag page and a pool with one 2 KiB
// buffer per descriptor of each ring (TX desc i -> buffer i, RX desc i ->
// buffer num + i). Descriptors are used round robin; the switch returns
// chains in order, so a descriptor is reused only after it came back.
struct FakeGuest {
  FakeGuest(uint64_t mac, uint64_t gva_base, uint32_t num = 256, uint16_t vlan = 0)
      : mac(mac), num(num), vlan(vlan), gva(gva_base), tx(VringSize(num)), rx(VringSize(num)), flag(kPageSize),
        pool(uint64_t(2) * num * kBufSize) {
    flag.p[0] = kVringFlagLive;
  }

  DeviceConfig Config(uint16_t domid, uint32_t dev, bool pool_writable = true) {
    DeviceConfig c;
    c.domid = domid;
    c.dev = dev;
    c.mac = mac;
    c.vlan = vlan;
    c.tx_ring = tx.p;
    c.tx_num = num;
    c.tx_ring_len = tx.size;
    c.rx_ring = rx.p;
    c.rx_num = num;
    c.rx_ring_len = rx.size;
    c.flag = flag.p;
    c.flag_len = flag.size;
    c.regions.push_back(Region{gva, pool.size, pool.p, pool_writable, pool.size});
    return c;
  }

  VringView Tx() { return VringView::At(tx.p, num); }
  VringView Rx() { return VringView::At(rx.p, num); }
  uint8_t* TxBuf(uint32_t desc) { return pool.p + uint64_t(desc) * kBufSize; }
  uint64_t TxGva(uint32_t desc) { return gva + uint64_t(desc) * kBufSize; }
  uint8_t* RxBuf(uint32_t desc) { return pool.p + uint64_t(num + desc) * kBufSize; }
  uint64_t RxGva(uint32_t desc) { return gva + uint64_t(num + desc) * kBufSize; }

  static void StoreIdx(uint16_t* p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
  static uint16_t LoadIdx(const uint16_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

  // Queues one frame (10-byte zero header + frame) split over ceil(bytes / seg) descriptors.
  // Returns false when the ring has no room for it.
  bool Send(const std::vector<uint8_t>& frame, uint32_t seg = kBufSize) {
    std::vector<uint8_t> bytes(kVirtioNetHdrLen, 0);
    bytes.insert(bytes.end(), frame.begin(), frame.end());
    uint32_t nseg = uint32_t((bytes.size() + seg - 1) / seg);
    if (uint16_t(tx_desc_next - TxUsedIdx()) + nseg > num) return false;
    VringView v = Tx();
    uint32_t head = tx_desc_next % num;
    for (uint32_t k = 0; k < nseg; ++k) {
      uint32_t d = (tx_desc_next + k) % num;
      uint32_t off = k * seg;
      uint32_t len = std::min<uint32_t>(seg, uint32_t(bytes.size()) - off);
      std::memcpy(TxBuf(d), bytes.data() + off, len);
      v.desc[d] = VringDesc{TxGva(d), len, uint16_t(k + 1 < nseg ? VRING_DESC_F_NEXT : 0),
                            uint16_t((d + 1) % num)};
    }
    tx_desc_next += nseg;
    tx_chain_descs.push_back(nseg);
    PostAvail(v, head);
    return true;
  }
  // Publishes one avail entry naming `head` (raw: any value).
  void PostAvail(VringView v, uint32_t head) {
    uint16_t idx = LoadIdx(&v.avail->idx);
    v.avail->ring[idx & (v.num - 1)] = uint16_t(head);
    StoreIdx(&v.avail->idx, uint16_t(idx + 1));
  }
  uint16_t TxUsedIdx() {
    // Descriptors in flight: those of chains not yet returned.
    uint16_t used = LoadIdx(&Tx().used->idx);
    while (tx_chains_returned != used) {
      tx_descs_returned += tx_chain_descs.front();
      tx_chain_descs.pop_front();
      ++tx_chains_returned;
    }
    return tx_descs_returned;
  }

  // Posts `count` RX chains of `nseg` writable descriptors of `seg_len` bytes each.
  void PostRx(uint32_t count, uint32_t nseg = 1, uint32_t seg_len = kBufSize, uint16_t flags = VRING_DESC_F_WRITE) {
    VringView v = Rx();
    for (uint32_t c = 0; c < count; ++c) {
      uint32_t head = rx_desc_next % num;
      for (uint32_t k = 0; k < nseg; ++k) {
        uint32_t d = (rx_desc_next + k) % num;
        std::memset(RxBuf(d), 0xEE, kBufSize);
        v.desc[d] = VringDesc{RxGva(d), seg_len, uint16_t(flags | (k + 1 < nseg ? VRING_DESC_F_NEXT : 0)),
                              uint16_t((d + 1) % num)};
      }
      rx_desc_next += nseg;
      PostAvail(v, head);
    }
  }

  struct Received {
    uint32_t len;                // used.len
    std::vector<uint8_t> bytes;  // header + frame, gathered from the chain
  };
  // Reads every new used entry of the RX ring and gathers its bytes.
  std::vector<Received> Harvest() {
    std::vector<Received> out;
    VringView v = Rx();
    uint16_t used = LoadIdx(&v.used->idx);
    for (; rx_used_seen != used; ++rx_used_seen) {
      VringUsedElem e = v.used->ring[rx_used_seen & (num - 1)];
      Received r{e.len, {}};
      uint32_t d = e.id;
      uint32_t left = e.len;
      for (uint32_t guard = 0; guard < num && d < num; ++guard) {
        const VringDesc& desc = v.desc[d];
        uint32_t n = std::min(left, desc.len);
        r.bytes.insert(r.bytes.end(), RxBuf(d), RxBuf(d) + n);
        left -= n;
        if (!(desc.flags & VRING_DESC_F_NEXT) || left == 0) break;
        d = desc.next;
      }
      out.push_back(std::move(r));
    }
    return out;
  }

  uint64_t mac;
  uint32_t num;
  uint16_t vlan;
  uint64_t gva;
  Pages tx, rx, flag, pool;
  uint32_t tx_desc_next = 0, rx_desc_next = 0;
  std::deque<uint32_t> tx_chain_descs;
  uint16_t tx_chains_returned = 0, tx_descs_returned = 0;
  uint16_t rx_used_seen = 0;
};

// Checks that a received entry is a zeroed virtio_net_hdr followed by `frame`.
inline bool IsDelivery(const FakeGuest::Received& r, const std::vector<uint8_t>& frame) {
  if (r.len != kVirtioNetHdrLen + frame.size() || r.bytes.size() != r.len) return false;
  for (uint32_t i = 0; i < kVirtioNetHdrLen; ++i)
    if (r.bytes[i] != 0) return false;
  return std::memcmp(r.bytes.data() + kVirtioNetHdrLen, frame.data(), frame.size()) == 0;
}

// An in-memory NIC: the test injects received frames and reads transmitted ones.
class FakeNic : public NicPort {
 public:
  struct Frame {
    std::vector<uint8_t> bytes;
    bool vlan_valid = false;
    uint16_t tci = 0;
  };
  explicit FakeNic(uint32_t capacity = kMaxFrameLen) : capacity_(capacity), tx_buf_(capacity) {}
  const char* kind() const override { return "fake"; }
  const std::string& name() const override { return name_; }
  uint32_t RxBurst(NicRxFrame* out, uint32_t max) override {
    uint32_t n = 0;
    while (n < max && !rx->empty()) {
      in_flight_.push_back(std::move(rx->front()));
      rx->pop_front();
      ++n;
    }
    for (uint32_t i = 0; i < n; ++i) {
      Frame& f = in_flight_[i];
      out[i] = NicRxFrame{f.bytes.data(), uint32_t(f.bytes.size()), uint32_t(f.bytes.size()), f.tci, f.vlan_valid};
    }
    return n;
  }
  void RxRelease() override { in_flight_.clear(); }
  uint8_t* TxReserve() override { return tx_full || TxFree() == 0 ? nullptr : tx_buf_.data(); }
  uint32_t TxCapacity() const override { return capacity_; }
  bool TxCommit(uint32_t len) override {
    tx->push_back(std::vector<uint8_t>(tx_buf_.begin(), tx_buf_.begin() + len));
    ++in_ring;
    return true;
  }
  uint32_t TxFree() override {
    if (tx_full) return 0;
    return tx_ring == 0 ? kTxUnbounded : tx_ring - in_ring;
  }
  void TxFlush() override {
    ++flushes;
    in_ring -= std::min(in_ring, drain_per_flush);
  }

  // Shared with the test, which keeps these pointers after handing the port to the switch.
  std::shared_ptr<std::deque<Frame>> rx = std::make_shared<std::deque<Frame>>();
  std::shared_ptr<std::vector<std::vector<uint8_t>>> tx = std::make_shared<std::vector<std::vector<uint8_t>>>();
  bool tx_full = false;
  uint32_t tx_ring = 0;                  // transmit ring slots; 0: no ring, never full
  uint32_t drain_per_flush = UINT32_MAX; // slots the "wire" frees at each flush
  uint32_t in_ring = 0;                  // committed and not yet drained
  uint64_t flushes = 0;

 private:
  std::string name_ = "fake0";
  uint32_t capacity_;
  std::vector<uint8_t> tx_buf_;
  std::vector<Frame> in_flight_;
};

}  // namespace xsw::test
