#include "netif/engine.h"

#include <poll.h>
#include <sys/mman.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "netif/checksum.h"
#include "netif/ring.h"

namespace xsw::netif {
namespace {

constexpr uint32_t kLocalRing = 256;
constexpr uint32_t kMaxSegs = kBurst * kMaxTxSlots;

SringHeader* Header(uint8_t* page) { return reinterpret_cast<SringHeader*>(page); }
uint8_t* Slots(uint8_t* page) { return page + sizeof(SringHeader); }

uint32_t LoadShared(const uint32_t& v) { return __atomic_load_n(&v, __ATOMIC_ACQUIRE); }
void StoreShared(uint32_t& v, uint32_t x) { __atomic_store_n(&v, x, __ATOMIC_RELEASE); }

// Copy once: the guest may rewrite the slot at any time; only this copy is used.
// A slot is as large as the larger of request and response (TX 12, RX 8).
template <typename T>
T ReadSlot(uint8_t* page, uint32_t index, uint32_t ring_size) {
  static_assert(sizeof(T) == sizeof(TxRequest) || sizeof(T) == sizeof(RxRequest), "a netif request");
  T out;
  const volatile uint8_t* src = Slots(page) + size_t(index & (ring_size - 1)) * sizeof(T);
  uint8_t tmp[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i) tmp[i] = src[i];
  std::memcpy(&out, tmp, sizeof(T));
  return out;
}

template <typename T>
void WriteSlot(uint8_t* page, uint32_t index, uint32_t ring_size, size_t slot_bytes, const T& v) {
  std::memcpy(Slots(page) + size_t(index & (ring_size - 1)) * slot_bytes, &v, sizeof(T));
}

// RING_PUSH_RESPONSES_AND_CHECK_NOTIFY: publish, then notify only when the
// front end asked to hear about a response in (old, new].
bool PushResponses(uint8_t* page, uint32_t& published, uint32_t now) {
  if (now == published) return false;
  SringHeader* h = Header(page);
  uint32_t old = published;
  StoreShared(h->rsp_prod, now);
  published = now;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  uint32_t event = LoadShared(h->rsp_event);
  return uint32_t(now - event) < uint32_t(now - old);
}

}  // namespace

const char* FaultName(Fault f) {
  switch (f) {
    case Fault::kNone: return "none";
    case Fault::kTxReqOverflow: return "tx_req_overflow";
    case Fault::kRxReqOverflow: return "rx_req_overflow";
    case Fault::kTxTooManySlots: return "tx_too_many_slots";
    case Fault::kTxSlotPastPage: return "tx_slot_past_page";
    case Fault::kTxZeroSlot: return "tx_zero_slot";
    case Fault::kTxSlotSizes: return "tx_slot_sizes";
    case Fault::kTxExtraInfo: return "tx_extra_info";
    case Fault::kTxBadGrant: return "tx_bad_grant";
    case Fault::kRxBadGrant: return "rx_bad_grant";
  }
  return "unknown";
}

Engine::Engine(const EngineConfig& config, std::unique_ptr<GrantProvider> grants, std::unique_ptr<EventChannels> events)
    : cfg_(config), grants_(std::move(grants)), events_(std::move(events)) {
  if (!cfg_.tx_sring || !cfg_.rx_sring) throw std::invalid_argument("a netif engine needs both ring pages mapped");
  if (cfg_.max_frame < 60 || cfg_.max_frame > kMbufDataRoom || cfg_.max_frame > kPageSize)
    throw std::invalid_argument("a netif vif's largest frame must be 60 to " + std::to_string(kMbufDataRoom) +
                                " bytes (no scatter-gather): got " + std::to_string(cfg_.max_frame));
  const uint32_t nb = 2 * kLocalRing + 4 * kBurst;
  auto layout = MempoolLayout::Make(nb);
  if (!layout) throw std::invalid_argument("netif engine: bad local pool layout");
  uint64_t ring_bytes = AlignUp(VringSize(kLocalRing), kPageSize);
  mem_len_ = 2 * ring_bytes + kPageSize + layout->Bytes();
  void* m = mmap(nullptr, mem_len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    int err = errno;
    throw SysError(err, "cannot allocate " + std::to_string(mem_len_) + " bytes for a netif vif (" + ErrnoText(err) + ")");
  }
  mem_ = static_cast<uint8_t*>(m);
  local_.tx_ring = mem_;
  local_.rx_ring = mem_ + ring_bytes;
  local_.ring_size = kLocalRing;
  local_.ring_len = ring_bytes;
  local_.flag = mem_ + 2 * ring_bytes;
  local_.pool = local_.flag + kPageSize;
  local_.pool_len = layout->Bytes();
  FrontPortConfig pc;
  pc.pool_base = local_.pool;
  pc.layout = *layout;
  pc.first_buf = 0;
  pc.nb_bufs = nb;
  pc.tx_ring = local_.tx_ring;
  pc.rx_ring = local_.rx_ring;
  pc.ring_size = kLocalRing;
  pc.max_pkt_len = cfg_.max_frame;
  port_ = std::make_unique<FrontPort>(pc);
  port_->RefillRx();
  tx_frames_.reset(new TxFrame[kBurst]);
  tx_ids_.reset(new uint16_t[kMaxSegs]);
  segs_.reset(new GrantCopySeg[kMaxSegs]);
  // Resume from what the rings hold (a restarted back end, or a front end
  // that reconnected): our private indexes start at the published responses.
  tx_req_cons_ = tx_rsp_prod_ = tx_rsp_pub_ = LoadShared(Header(cfg_.tx_sring)->rsp_prod);
  rx_req_cons_ = rx_rsp_prod_ = rx_rsp_pub_ = LoadShared(Header(cfg_.rx_sring)->rsp_prod);
  __atomic_store_n(local_.flag, kVringFlagLive, __ATOMIC_RELEASE);
}

Engine::~Engine() {
  Stop();
  if (mem_) munmap(mem_, mem_len_);
}

void Engine::Start() {
  if (running_.exchange(true)) return;
  thread_ = std::thread([this] { Run(); });
}

void Engine::Stop() {
  running_.store(false);
  if (thread_.joinable()) thread_.join();
}

void Engine::Quarantine(Fault f) {
  Fault none = Fault::kNone;
  fault_.compare_exchange_strong(none, f, std::memory_order_acq_rel);
  __atomic_store_n(local_.flag, uint8_t(0), __ATOMIC_RELEASE);  // the switch lets go of the device
}

bool Engine::DoTx() {
  uint8_t* ring = cfg_.tx_sring;
  SringHeader* h = Header(ring);
  const uint32_t prod = LoadShared(h->req_prod);
  const uint32_t avail = prod - tx_req_cons_;
  if (avail > kTxRingSize) {
    Quarantine(Fault::kTxReqOverflow);
    return false;
  }
  if (avail == 0) return false;
  port_->ReclaimTx();

  uint32_t nframes = 0, nsegs = 0, nids = 0, cons = tx_req_cons_;
  while (nframes < kBurst && prod != cons) {
    TxRequest req[kMaxTxSlots];
    req[0] = ReadSlot<TxRequest>(ring, cons, kTxRingSize);
    if (req[0].flags & NETTXF_extra_info) return Quarantine(Fault::kTxExtraInfo), false;
    uint32_t n = 1;
    bool complete = true;
    while (req[n - 1].flags & NETTXF_more_data) {
      if (n == kMaxTxSlots) return Quarantine(Fault::kTxTooManySlots), false;
      if (uint32_t(prod - cons) <= n) {  // the frame's last slots are not published yet
        complete = false;
        break;
      }
      req[n] = ReadSlot<TxRequest>(ring, cons + n, kTxRingSize);
      if (req[n].flags & NETTXF_extra_info) return Quarantine(Fault::kTxExtraInfo), false;
      ++n;
    }
    if (!complete) {
      if (avail == kTxRingSize) return Quarantine(Fault::kTxTooManySlots), false;  // a frame larger than the ring
      break;
    }
    uint32_t rest = 0;
    for (uint32_t i = 1; i < n; ++i) {
      if (req[i].size == 0) return Quarantine(Fault::kTxZeroSlot), false;
      if (uint32_t(req[i].offset) + req[i].size > kPageSize) return Quarantine(Fault::kTxSlotPastPage), false;
      rest += req[i].size;
    }
    if (req[0].size < rest) return Quarantine(Fault::kTxSlotSizes), false;
    uint32_t first_len = req[0].size - rest;
    if (first_len == 0) return Quarantine(Fault::kTxZeroSlot), false;
    if (uint32_t(req[0].offset) + first_len > kPageSize) return Quarantine(Fault::kTxSlotPastPage), false;

    TxFrame& f = tx_frames_[nframes];
    f.first_slot_index = uint16_t(nids);
    f.nslots = uint16_t(n);
    f.flags = req[0].flags;
    f.size = req[0].size;
    f.pkt = kNoBuf;
    f.status = NETIF_RSP_OKAY;
    if (req[0].size < 14 || req[0].size > cfg_.max_frame) {
      f.status = NETIF_RSP_ERROR;  // runt or oversized: dropped, the guest told
    } else if (!port_->Alloc(req[0].size, &f.pkt)) {
      break;  // the switch has not taken the last frames yet: retry next loop
    } else {
      uint8_t* dst = port_->SegData(f.pkt);
      uint32_t at = 0;
      for (uint32_t i = 0; i < n; ++i) {
        uint16_t len = uint16_t(i == 0 ? first_len : req[i].size);
        segs_[nsegs++] = GrantCopySeg{false, cfg_.domid, req[i].gref, req[i].offset, len, dst + at};
        at += len;
      }
    }
    for (uint32_t i = 0; i < n; ++i) tx_ids_[nids++] = req[i].id;
    ++nframes;
    cons += n;
  }
  if (nframes == 0) return false;
  if (nsegs) grants_->Copy(segs_.get(), nsegs);
  for (uint32_t i = 0; i < nsegs; ++i) {
    if (segs_[i].status != GNTST_okay) {
      for (uint32_t k = 0; k < nframes; ++k)
        if (tx_frames_[k].pkt != kNoBuf) port_->Free(tx_frames_[k].pkt);
      Quarantine(Fault::kTxBadGrant);
      return false;
    }
  }
  uint32_t pkts[kBurst], npkts = 0;
  uint64_t bytes = 0, dropped = 0, csum = 0, slots = 0;
  for (uint32_t k = 0; k < nframes; ++k) {
    TxFrame& f = tx_frames_[k];
    if (f.pkt != kNoBuf && (f.flags & NETTXF_csum_blank)) {
      if (CompleteChecksum(port_->SegData(f.pkt), f.size)) {
        ++csum;
      } else {  // as netback: a blank checksum it cannot complete is a dropped frame
        port_->Free(f.pkt);
        f.pkt = kNoBuf;
      }
    }
    if (f.pkt != kNoBuf) {
      pkts[npkts++] = f.pkt;
      bytes += f.size;
    } else {
      ++dropped;
    }
    for (uint32_t i = 0; i < f.nslots; ++i)
      WriteSlot(ring, tx_rsp_prod_++, kTxRingSize, sizeof(TxRequest),
                TxResponse{tx_ids_[f.first_slot_index + i], f.status});
    slots += f.nslots;
  }
  uint32_t queued = port_->TxBurst(pkts, npkts);
  for (uint32_t i = queued; i < npkts; ++i) {
    bytes -= port_->PktLen(pkts[i]);
    port_->Free(pkts[i]);
    ++dropped;
  }
  tx_req_cons_ = cons;
  StoreShared(h->req_event, cons + 1);  // wake us for the next request
  if (PushResponses(ring, tx_rsp_pub_, tx_rsp_prod_)) notify_tx_ = true;
  Bump(counters_.tx_frames, queued);
  Bump(counters_.tx_bytes, bytes);
  Bump(counters_.tx_slots, slots);
  Bump(counters_.tx_dropped, dropped);
  Bump(counters_.tx_csum_completed, csum);
  return true;
}

// Takes from the local RX ring only as many frames as the guest has posted
// pages for: the rest wait there (the switch counts rx_no_buffer when that
// ring is full), and the guest's next posting wakes us (feature-rx-notify).
bool Engine::DoRx() {
  uint8_t* ring = cfg_.rx_sring;
  SringHeader* h = Header(ring);
  const uint32_t prod = LoadShared(h->req_prod);
  uint32_t posted = prod - rx_req_cons_;
  if (posted > kRxRingSize) {
    Quarantine(Fault::kRxReqOverflow);
    return false;
  }
  if (posted == 0) {
    StoreShared(h->req_event, rx_req_cons_ + 1);
    return false;
  }
  uint32_t pkts[kBurst];
  uint32_t n = port_->RxBurst(pkts, posted < kBurst ? posted : kBurst);
  if (n == 0) return false;
  uint16_t ids[kBurst];
  uint32_t nsegs = 0;
  uint64_t no_buffer = 0, too_big = 0;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t len = port_->PktLen(pkts[i]);
    if (len > cfg_.max_frame || port_->NumSegs(pkts[i]) != 1) {
      ++too_big;
      continue;
    }
    if (nsegs == posted) {
      ++no_buffer;
      continue;
    }
    RxRequest req = ReadSlot<RxRequest>(ring, rx_req_cons_ + nsegs, kRxRingSize);
    ids[nsegs] = req.id;
    segs_[nsegs] = GrantCopySeg{true, cfg_.domid, req.gref, 0, uint16_t(len), port_->SegData(pkts[i])};
    ++nsegs;
  }
  if (nsegs) grants_->Copy(segs_.get(), nsegs);
  port_->FreeBurst(pkts, n);
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < nsegs; ++i) {
    if (segs_[i].status != GNTST_okay) {
      Quarantine(Fault::kRxBadGrant);
      return false;
    }
    bytes += segs_[i].len;
  }
  for (uint32_t i = 0; i < nsegs; ++i)
    WriteSlot(ring, rx_rsp_prod_++, kRxRingSize, sizeof(RxRequest),
              RxResponse{ids[i], 0, 0, int16_t(segs_[i].len)});
  rx_req_cons_ += nsegs;
  StoreShared(h->req_event, rx_req_cons_ + 1);  // feature-rx-notify: hear about new buffers
  if (PushResponses(ring, rx_rsp_pub_, rx_rsp_prod_)) notify_rx_ = true;
  Bump(counters_.rx_frames, nsegs);
  Bump(counters_.rx_bytes, bytes);
  Bump(counters_.rx_dropped, no_buffer + too_big);
  Bump(counters_.rx_no_buffer, no_buffer);
  return true;
}

bool Engine::PollOnce() {
  if (fault() != Fault::kNone) return false;
  evtchn_port_t ports[16];
  uint32_t got = events_->Pending(ports, 16);
  for (uint32_t i = 0; i < got; ++i) events_->Unmask(ports[i]);
  if (got) Bump(counters_.events_in, got);
  bool worked = DoTx();
  if (fault() == Fault::kNone) worked = DoRx() || worked;
  if (fault() != Fault::kNone) return false;
  uint64_t sent = 0;
  if (cfg_.tx_port == cfg_.rx_port) {
    if (notify_tx_ || notify_rx_) sent += events_->Notify(cfg_.tx_port);
  } else {
    if (notify_tx_) sent += events_->Notify(cfg_.tx_port);
    if (notify_rx_) sent += events_->Notify(cfg_.rx_port);
  }
  notify_tx_ = notify_rx_ = false;
  if (sent) Bump(counters_.events_out, sent);
  return worked || got > 0;
}

// Adaptive, like the switch's: spin while there is work; after 64 empty
// loops sleep 10 µs doubling to 500 µs, but in ppoll on the event channel,
// so a guest's notification ends the sleep at once.
void Engine::Idle(bool worked) {
  if (worked || cfg_.busy_poll) {
    idle_polls_ = 0;
    sleep_us_ = 10;
    return;
  }
  if (++idle_polls_ < 64) return;
  pollfd p{events_->fd(), POLLIN, 0};
  timespec ts{0, long(sleep_us_) * 1000};
  ppoll(&p, 1, &ts, nullptr);
  sleep_us_ = sleep_us_ * 2 > 500 ? 500 : sleep_us_ * 2;
}

void Engine::Run() {
  while (running_.load(std::memory_order_relaxed)) {
    bool worked = PollOnce();
    Idle(worked);
  }
}

std::unique_ptr<Engine> OpenVif(const VifParams& p) {
  std::unique_ptr<GrantProvider> grants = OpenGrantProvider(p.platform);
  std::unique_ptr<EventChannels> events = OpenEventChannels(p.platform);
  std::string who = "vif " + std::to_string(p.domid) + "/" + std::to_string(p.devid);
  GrantMapping tx, rx;
  try {
    tx = grants->Map(p.domid, &p.tx_ring_ref, 1, true);
    rx = grants->Map(p.domid, &p.rx_ring_ref, 1, true);
  } catch (const SysError& e) {
    throw SysError(e.err(), who + ": cannot map its rings (" + e.what() + ")");
  }
  EngineConfig c;
  c.domid = p.domid;
  c.devid = p.devid;
  c.tx_sring = tx.addr;
  c.rx_sring = rx.addr;
  c.max_frame = p.max_frame;
  c.busy_poll = p.busy_poll;
  try {
    c.tx_port = events->BindInterdomain(p.domid, p.tx_evtchn);
    c.rx_port = p.rx_evtchn == p.tx_evtchn ? c.tx_port : events->BindInterdomain(p.domid, p.rx_evtchn);
  } catch (const SysError& e) {
    throw SysError(e.err(), who + ": cannot bind its event channel (" + e.what() + ")");
  }
  return std::make_unique<Engine>(c, std::move(grants), std::move(events));
}

}  // namespace xsw::netif
