// A guest's netfront in C++ for the netif tests: its rings and pages granted
// to dom0 on the simulated platform, an unbound event channel offered to
// dom0, and the ring use of Linux's xen-netfront (a frame split over slots
// with NETTXF_more_data, the first slot's size the whole frame's; RX
// requests of one granted page each; req_event/rsp_event for notifications).
// Also the hostile moves the tests need: it writes whatever it is told.
#pragma once

#include <cstring>
#include <memory>
#include <vector>

#include "grant/evtchn.h"
#include "grant/provider.h"
#include "netif/ring.h"

namespace xsw::test {

using namespace xsw::netif;

class FakeNetfront {
 public:
  static constexpr uint32_t kTxPages = 64, kRxPages = 64;

  FakeNetfront(const std::string& sim_dir, domid_t self) : domid(self) {
    GrantOptions o;
    o.platform = "sim";
    o.sim_dir = sim_dir;
    o.self_domid = self;
    grants = OpenGrantProvider(o);
    events = OpenEventChannels(o);
    rings = grants->Allocate(0, 2, true);
    tx_pages = grants->Allocate(0, kTxPages, false);  // netfront grants TX pages read-only
    rx_pages = grants->Allocate(0, kRxPages, true);
    port = events->AllocateUnbound(0);
    for (uint8_t* r : {TxRing(), RxRing()}) {
      Hdr(r)->req_event = 1;
      Hdr(r)->rsp_event = 1;
    }
  }

  uint8_t* TxRing() { return rings.addr; }
  uint8_t* RxRing() { return rings.addr + kPageSize; }
  grant_ref_t tx_ring_ref() const { return rings.grefs[0]; }
  grant_ref_t rx_ring_ref() const { return rings.grefs[1]; }
  static SringHeader* Hdr(uint8_t* r) { return reinterpret_cast<SringHeader*>(r); }

  TxRequest& TxSlot(uint32_t i) {
    return reinterpret_cast<TxRequest*>(TxRing() + sizeof(SringHeader))[i % kTxRingSize];
  }
  RxRequest& RxSlot(uint32_t i) {
    return reinterpret_cast<RxRequest*>(RxRing() + sizeof(SringHeader))[i % kRxRingSize];
  }

  // Queues one frame split into `pieces` (bytes per slot; empty: one slot),
  // each piece at `offset` of its own TX page. Does not publish.
  void QueueFrame(const std::vector<uint8_t>& frame, std::vector<uint32_t> pieces = {}, uint16_t flags = 0,
                  uint16_t offset = 0) {
    if (pieces.empty()) pieces.push_back(uint32_t(frame.size()));
    uint32_t at = 0;
    for (size_t i = 0; i < pieces.size(); ++i) {
      uint32_t page = next_tx_page++ % kTxPages;
      std::memcpy(tx_pages.addr + size_t(page) * kPageSize + offset, frame.data() + at,
                  std::min<size_t>(pieces[i], frame.size() - at));
      TxRequest r{};
      r.gref = tx_pages.grefs[page];
      r.offset = offset;
      r.flags = uint16_t((i == 0 ? flags : 0) | (i + 1 < pieces.size() ? NETTXF_more_data : 0));
      r.id = uint16_t(tx_req_prod % kTxRingSize);
      r.size = uint16_t(i == 0 ? frame.size() : pieces[i]);
      TxSlot(tx_req_prod++) = r;
      at += pieces[i];
    }
  }

  // RING_PUSH_REQUESTS_AND_CHECK_NOTIFY on the TX ring.
  void PushTx() { Push(TxRing(), tx_req_prod); }

  void PostRx(uint32_t n) {
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t page = rx_req_prod % kRxPages;
      RxRequest r{};
      r.id = uint16_t(page);
      r.gref = rx_pages.grefs[page];
      RxSlot(rx_req_prod++) = r;
    }
    Push(RxRing(), rx_req_prod);
  }

  // TX responses since the last call, as (id, status).
  std::vector<std::pair<uint16_t, int16_t>> TxResponses() {
    std::vector<std::pair<uint16_t, int16_t>> out;
    uint32_t prod = __atomic_load_n(&Hdr(TxRing())->rsp_prod, __ATOMIC_ACQUIRE);
    if (prod - tx_rsp_cons > kTxRingSize) return out;  // scribbled on (hostile tests): nothing to trust
    for (; tx_rsp_cons != prod; ++tx_rsp_cons) {
      auto* rsp = reinterpret_cast<TxResponse*>(&TxSlot(tx_rsp_cons));
      out.emplace_back(rsp->id, rsp->status);
    }
    Hdr(TxRing())->rsp_event = tx_rsp_cons + 1;
    return out;
  }

  // Frames received since the last call (the RX pages they landed in).
  std::vector<std::vector<uint8_t>> Received() {
    std::vector<std::vector<uint8_t>> out;
    uint32_t prod = __atomic_load_n(&Hdr(RxRing())->rsp_prod, __ATOMIC_ACQUIRE);
    if (prod - rx_rsp_cons > kRxRingSize) return out;
    for (; rx_rsp_cons != prod; ++rx_rsp_cons) {
      auto* rsp = reinterpret_cast<RxResponse*>(&RxSlot(rx_rsp_cons));
      if (rsp->status <= 0 || rsp->id >= kRxPages) {
        out.emplace_back();
        continue;
      }
      const uint8_t* p = rx_pages.addr + size_t(rsp->id) * kPageSize + rsp->offset;
      out.emplace_back(p, p + rsp->status);
    }
    Hdr(RxRing())->rsp_event = rx_rsp_cons + 1;
    return out;
  }

  // Events the back end sent us since the last call.
  uint32_t Events() {
    evtchn_port_t got[16];
    uint32_t n = events->Pending(got, 16);
    for (uint32_t i = 0; i < n; ++i) events->Unmask(got[i]);
    return n;
  }

  domid_t domid;
  std::unique_ptr<GrantProvider> grants;
  std::unique_ptr<EventChannels> events;
  GrantAllocation rings, tx_pages, rx_pages;
  evtchn_port_t port = 0;
  uint32_t tx_req_prod = 0, rx_req_prod = 0, tx_rsp_cons = 0, rx_rsp_cons = 0, next_tx_page = 0;
  uint32_t notified = 0;

 private:
  void Push(uint8_t* ring, uint32_t now) {
    SringHeader* h = Hdr(ring);
    uint32_t old = h->req_prod;
    __atomic_store_n(&h->req_prod, now, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (uint32_t(now - h->req_event) < uint32_t(now - old)) {
      events->Notify(port);
      ++notified;
    }
  }
};

}  // namespace xsw::test
