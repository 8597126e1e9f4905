#include "pmd/port.h"

#include "shm/prefetch.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace xsw {
namespace {

uint32_t CeilDiv(uint32_t a, uint32_t b) { return (a + b - 1) / b; }

// Validates the configuration before any member is built from it.
const FrontPortConfig& Checked(const FrontPortConfig& c) {
  if (c.pool_base == nullptr || c.layout.nb_mbuf == 0) {
    throw std::invalid_argument("the port has no mempool: allocate the pool before the device");
  }
  if (c.layout.buf_size <= kMbufHeadroom + kVirtioNetHdrLen) {
    throw std::invalid_argument("mbuf size " + std::to_string(c.layout.buf_size) + " leaves no data room after the " +
                                std::to_string(kMbufHeadroom) + "-byte headroom: use the default buffer size");
  }
  if (c.nb_bufs == 0 || c.first_buf >= c.layout.nb_mbuf || c.nb_bufs > c.layout.nb_mbuf - c.first_buf) {
    throw std::invalid_argument("the port's buffers [" + std::to_string(c.first_buf) + ", +" +
                                std::to_string(c.nb_bufs) + ") are not inside the pool of " +
                                std::to_string(c.layout.nb_mbuf) + ": give each device its own slice");
  }
  const uint32_t data_room = c.layout.buf_size - kMbufHeadroom;
  const uint32_t max_pkt = c.max_pkt_len == 0 ? data_room : c.max_pkt_len;
  if (max_pkt < kEthHdrLen || max_pkt > kMaxFrameLen) {
    throw std::invalid_argument("max packet length " + std::to_string(max_pkt) + " is outside [" +
                                std::to_string(kEthHdrLen) + ", " + std::to_string(kMaxFrameLen) +
                                "]: pick e.g. 9018 for jumbo frames");
  }
  const uint32_t segs = CeilDiv(max_pkt, data_room);
  const uint64_t need = uint64_t(c.ring_size) + uint64_t(kBurst) * segs;
  if (c.nb_bufs < need) {
    throw std::invalid_argument("a device with ring size " + std::to_string(c.ring_size) + " needs at least " +
                                std::to_string(need) + " mbufs but has " + std::to_string(c.nb_bufs) +
                                ": raise --nb-mbuf or lower --ring-size");
  }
  return c;
}

}  // namespace

FrontPort::FrontPort(const FrontPortConfig& config)
    : pool_base_(Checked(config).pool_base),
      layout_(config.layout),
      first_(config.first_buf),
      nb_bufs_(config.nb_bufs),
      data_room_(config.layout.buf_size - kMbufHeadroom),
      max_pkt_len_(config.max_pkt_len == 0 ? data_room_ : config.max_pkt_len),
      rx_segs_(CeilDiv(max_pkt_len_ + kVirtioNetHdrLen, data_room_ + kVirtioNetHdrLen)),
      tx_(config.tx_ring, config.ring_size),
      rx_(config.rx_ring, config.ring_size),
      free_(config.nb_bufs),
      next_(new uint32_t[config.nb_bufs]),
      off_(new uint16_t[config.nb_bufs]),
      seg_len_(new uint32_t[config.nb_bufs]),
      pkt_len_(new uint32_t[config.nb_bufs]) {
  const uint32_t per_page = layout_.bufs_per_page;
  if (per_page != 0 && (per_page & (per_page - 1)) == 0) {
    per_page_shift_ = __builtin_ctz(per_page);
    per_page_mask_ = per_page - 1;
  }
  if (rx_segs_ > kMaxChainSegs || rx_segs_ > config.ring_size) {
    throw std::invalid_argument("an RX chain of " + std::to_string(rx_segs_) +
                                " buffers does not fit the ring: raise --ring-size or lower --max-pkt-len");
  }
  Init();
}

void FrontPort::Init() {
  tx_.Init();
  rx_.Init();
  free_.FillAll();
  for (uint32_t i = 0; i < nb_bufs_; i++) {
    next_[i] = kNoBuf;
    off_[i] = kMbufHeadroom;
    seg_len_[i] = 0;
    pkt_len_[i] = 0;
  }
}

bool FrontPort::AllocChain(uint32_t nseg, uint32_t* head) {
  uint32_t idx[kMaxChainSegs];
  if (nseg == 0 || nseg > kMaxChainSegs) return false;
  const uint32_t got = free_.PopBurst(idx, nseg);
  if (got < nseg) {
    free_.PushBurst(idx, got);
    return false;
  }
  for (uint32_t k = 0; k < nseg; k++) {
    next_[idx[k]] = k + 1 < nseg ? idx[k + 1] : kNoBuf;
    off_[idx[k]] = kMbufHeadroom;
    seg_len_[idx[k]] = 0;
  }
  *head = idx[0];
  return true;
}

uint32_t FrontPort::RefillRx() {
  DriverBuf bufs[kMaxChainSegs];
  uint32_t posted = 0;
  if (rx_segs_ == 1) {  // the usual case: a burst of buffers off the free stack per pop
    uint32_t idx[kBurst];
    for (uint32_t want; (want = std::min(rx_.FreeDescs(), kBurst)) != 0;) {
      const uint32_t got = free_.PopBurst(idx, want);
      DriverBuf burst[kBurst];
      for (uint32_t i = 0; i < got; i++) {
        const uint32_t b = idx[i];
        next_[b] = kNoBuf;
        off_[b] = kMbufHeadroom;
        seg_len_[b] = 0;
        burst[i] = DriverBuf{Gva(BufAddr(b) + kMbufHeadroom - kVirtioNetHdrLen), kVirtioNetHdrLen + data_room_};
      }
      rx_.AddSingles(burst, idx, got, true);  // got <= FreeDescs()
      posted += got;
      if (got < want) {
        Bump(stats_.rx_nombuf, 1);
        break;
      }
    }
    if (posted > 0) rx_.Publish();
    return posted;
  }
  while (rx_.FreeDescs() >= rx_segs_) {
    uint32_t head;
    if (!AllocChain(rx_segs_, &head)) {
      Bump(stats_.rx_nombuf, 1);
      break;
    }
    uint32_t b = head;
    for (uint32_t k = 0; k < rx_segs_; k++, b = next_[b]) {
      bufs[k] = DriverBuf{Gva(BufAddr(b) + kMbufHeadroom - kVirtioNetHdrLen), kVirtioNetHdrLen + data_room_};
    }
    rx_.Add(bufs, 0, rx_segs_, head);
    posted++;
  }
  if (posted > 0) rx_.Publish();
  return posted;
}

uint32_t FrontPort::RxBurst(uint32_t* pkts, uint32_t max) {
  UsedEntry used[kBurst];
  const uint32_t n = rx_.Harvest(used, std::min(max, kBurst));
  uint32_t out = 0, runts = 0;
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < n; i++) {
    const uint32_t head = uint32_t(used[i].cookie);
    if (used[i].len < kVirtioNetHdrLen + kEthHdrLen) {
      Free(head);
      runts++;
      continue;
    }
    const uint32_t frame_len = used[i].len - kVirtioNetHdrLen;
    if (next_[head] == kNoBuf) {  // a one-buffer chain: Harvest clamped the length to it
      off_[head] = kMbufHeadroom;
      seg_len_[head] = frame_len;
      pkt_len_[head] = frame_len;
      bytes += frame_len;
      pkts[out++] = head;
      continue;
    }
    // The first buffer's frame starts after the header; the others' right
    // where the device started writing into them.
    uint32_t seg = head, remaining = frame_len, cap = data_room_;
    off_[seg] = kMbufHeadroom;
    for (;;) {
      const uint32_t take = std::min(remaining, cap);
      seg_len_[seg] = take;
      remaining -= take;
      const uint32_t next = next_[seg];
      if (remaining == 0 || next == kNoBuf) {
        next_[seg] = kNoBuf;
        if (next != kNoBuf) Free(next);
        break;
      }
      seg = next;
      off_[seg] = kMbufHeadroom - kVirtioNetHdrLen;
      cap = data_room_ + kVirtioNetHdrLen;
    }
    pkt_len_[head] = frame_len - remaining;
    bytes += pkt_len_[head];
    pkts[out++] = head;
  }
  if (out > 0) {
    Bump(stats_.rx_packets, out);
    Bump(stats_.rx_bytes, bytes);
  }
  if (runts > 0) Bump(stats_.rx_dropped, runts);
  RefillRx();
  return out;
}

uint32_t FrontPort::ReclaimTx() {
  UsedEntry used[kBurst];
  uint32_t total = 0, n;
  uint32_t pkts[kBurst];
  while ((n = tx_.Harvest(used, kBurst)) > 0) {
    for (uint32_t i = 0; i < n; i++) pkts[i] = uint32_t(used[i].cookie);
    FreeBurst(pkts, n);
    total += n;
  }
  return total;
}

uint32_t FrontPort::TxBurst(const uint32_t* pkts, uint32_t n) {
  // The headers' lines were last written by the back end (it received into
  // these buffers): fetch them for writing now (owned, with PREFETCHW where
  // the CPU has it), so that the misses overlap each other and the reclaim.
  for (uint32_t i = 0; i < n; i++) PrefetchForWrite(SegData(pkts[i]) - kVirtioNetHdrLen);
  ReclaimTx();
  DriverBuf bufs[kMaxChainSegs];
  DriverBuf singles[kBurst];  // a run of one-buffer frames, added in one call
  uint32_t sent = 0, run = 0;
  // Adds the run that ends before pkts[sent]; false when the ring took only
  // part of it (sent then points at the first frame it did not take).
  auto flush = [&] {
    const uint32_t added = tx_.AddSingles(singles, pkts + sent - run, run, false);
    const bool all = added == run;
    sent -= run - added;
    run = 0;
    return all;
  };
  for (; sent < n; sent++) {
    const uint32_t pkt = pkts[sent];
    uint8_t* data = SegData(pkt);
    std::memset(data - kVirtioNetHdrLen, 0, kVirtioNetHdrLen);  // in the headroom
    const DriverBuf first{Gva(data - kVirtioNetHdrLen), kVirtioNetHdrLen + seg_len_[pkt]};
    if (next_[pkt] == kNoBuf) {
      if (run == kBurst && !flush()) break;
      singles[run++] = first;
      continue;
    }
    if (run > 0 && !flush()) break;  // a chain goes after the run before it
    bufs[0] = first;
    uint32_t nseg = 1, seg = next_[pkt];
    for (; seg != kNoBuf && nseg < kMaxChainSegs; seg = next_[seg]) {
      bufs[nseg++] = DriverBuf{Gva(SegData(seg)), seg_len_[seg]};
    }
    if (seg != kNoBuf || tx_.Add(bufs, nseg, 0, pkt) < 0) break;
  }
  if (run > 0) flush();
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < sent; i++) bytes += pkt_len_[pkts[i]];
  if (sent > 0) {
    tx_.Publish();
    if (kick_events_ != nullptr && tx_.KickNeeded()) kick_events_->Notify(kick_port_);
    Bump(stats_.tx_packets, sent);
    Bump(stats_.tx_bytes, bytes);
  }
  return sent;
}

bool FrontPort::ArmNotify(bool tx) {
  bool ready = rx_.ArmUsedEvent(0);
  const uint32_t in_flight = tx_.InFlight();
  if (tx && in_flight != 0) ready |= tx_.ArmUsedEvent(uint16_t(in_flight > 1 ? in_flight / 2 - 1 : 0));
  return ready;
}

bool FrontPort::Alloc(uint32_t len, uint32_t* pkt) {
  if (len == 0 || len > kMaxFrameLen) return false;
  const uint32_t nseg = CeilDiv(len, data_room_);
  uint32_t head;
  if (!AllocChain(nseg, &head)) return false;
  uint32_t remaining = len;
  for (uint32_t seg = head; seg != kNoBuf; seg = next_[seg]) {
    seg_len_[seg] = std::min(remaining, data_room_);
    remaining -= seg_len_[seg];
  }
  pkt_len_[head] = len;
  *pkt = head;
  return true;
}

uint32_t FrontPort::AllocBurst(uint32_t len, uint32_t* pkts, uint32_t n) {
  n = std::min(n, kBurst);
  if (len == 0 || len > data_room_) {  // chains (or nothing): one at a time
    uint32_t got = 0;
    while (got < n && Alloc(len, &pkts[got])) got++;
    return got;
  }
  const uint32_t got = free_.PopBurst(pkts, n);
  for (uint32_t i = 0; i < got; i++) {
    const uint32_t b = pkts[i];
    next_[b] = kNoBuf;
    off_[b] = kMbufHeadroom;
    seg_len_[b] = len;
    pkt_len_[b] = len;
  }
  return got;
}

void FrontPort::Free(uint32_t pkt) {
  uint32_t seg = pkt;
  for (uint32_t k = 0; seg != kNoBuf && k < kMaxChainSegs; k++) {
    const uint32_t next = next_[seg];
    next_[seg] = kNoBuf;
    if (!free_.Push(seg)) break;  // a double free: stop rather than corrupt the stack
    seg = next;
  }
}

void FrontPort::FreeBurst(const uint32_t* pkts, uint32_t n) {
  uint32_t single[kBurst];
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (k < kBurst && next_[pkts[i]] == kNoBuf) {
      single[k++] = pkts[i];
    } else {
      Free(pkts[i]);
    }
  }
  free_.PushBurst(single, k);  // skips a double free, as Free does
}

void FrontPort::Trim(uint32_t pkt, uint32_t len) {
  if (len == 0 || len >= pkt_len_[pkt]) return;
  uint32_t seg = pkt, kept = 0;
  while (seg != kNoBuf) {
    if (kept + seg_len_[seg] >= len) {
      seg_len_[seg] = len - kept;
      const uint32_t rest = next_[seg];
      next_[seg] = kNoBuf;
      if (rest != kNoBuf) Free(rest);
      break;
    }
    kept += seg_len_[seg];
    seg = next_[seg];
  }
  pkt_len_[pkt] = len;
}

uint32_t FrontPort::NumSegs(uint32_t pkt) const {
  uint32_t n = 0;
  for (uint32_t seg = pkt; seg != kNoBuf && n <= kMaxChainSegs; seg = next_[seg]) n++;
  return n;
}

uint32_t FrontPort::CopyOut(uint32_t pkt, uint8_t* dst, uint32_t cap) const {
  uint32_t copied = 0;
  for (uint32_t seg = pkt; seg != kNoBuf && copied < cap; seg = next_[seg]) {
    const uint32_t take = std::min(seg_len_[seg], cap - copied);
    std::memcpy(dst + copied, SegData(seg), take);
    copied += take;
  }
  return copied;
}

bool FrontPort::CopyIn(const uint8_t* src, uint32_t len, uint32_t* pkt) {
  if (!Alloc(len, pkt)) return false;
  uint32_t copied = 0;
  for (uint32_t seg = *pkt; seg != kNoBuf; seg = next_[seg]) {
    std::memcpy(SegData(seg), src + copied, seg_len_[seg]);
    copied += seg_len_[seg];
  }
  return true;
}

}  // namespace xsw
