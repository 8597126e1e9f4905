#include "bench/switch_loop.h"

#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "abi/abi.h"
#include "bench/pin.h"
#include "common/cycles.h"
#include "common/errors.h"
#include "common/ethernet.h"
#include "pmd/device.h"
#include "shm/mempool.h"
#include "switch/switch.h"

namespace xsw::bench {
namespace {

void PinSelf(int cpu) {
  if (int e = PinThisThread(cpu)) {
    throw SysError(e, "cannot pin a thread to CPU " + std::to_string(cpu) + ": the switch harness needs CPUs 0 and 1");
  }
}

}  // namespace

// One device whose guest side is the real PMD over local memory (pmd/device.h).
struct SwitchLoop::Guest {
  std::unique_ptr<FrontDevice> device;
  FrontPort* port;
  uint64_t mac = 0;

  Guest(const SwitchLoopConfig& cfg, uint64_t mac_, uint32_t nb_mbuf) : mac(mac_) {
    FrontDeviceConfig dc;
    PutMac(dc.mac, mac);
    dc.ring_size = cfg.ring_size;
    dc.nb_bufs = nb_mbuf;
    device = FrontDevice::OpenLocal(dc);
    port = &device->port();
    device->SetLive(true);  // posts the RX ring, then marks the device alive
  }

  DeviceConfig Device(uint16_t domid) const {
    const FrontDeviceMemory& m = device->memory();
    DeviceConfig d;
    d.domid = domid;
    d.mac = mac;
    d.tx_ring = m.tx_ring;
    d.tx_num = m.ring_size;
    d.tx_ring_len = VringSize(m.ring_size);  // FrontDeviceMemory: VringSize(ring_size) bytes each
    d.rx_ring = m.rx_ring;
    d.rx_num = m.ring_size;
    d.rx_ring_len = VringSize(m.ring_size);
    d.flag = m.flag_page;
    d.flag_len = kPageSize;
    d.regions.push_back(Region{reinterpret_cast<uint64_t>(m.pool_base), m.pool_bytes, m.pool_base, true, m.pool_bytes});
    return d;
  }
};

SwitchLoop::SwitchLoop(const SwitchLoopConfig& cfg) : cfg_(cfg) {
  if (cfg.frame_len < 14 || cfg.frame_len > kMbufDataRoom) {
    throw SysError(EINVAL, "the switch harness sends 14 to " + std::to_string(kMbufDataRoom) + "-byte frames, not " + std::to_string(cfg.frame_len));
  }
  if (!MempoolLayout::Make(cfg.nb_mbuf) || cfg.nb_mbuf < cfg.in_flight + 2 * cfg.ring_size + kBurst) {
    throw SysError(EINVAL, "the switch harness needs at least in_flight + 2 rings + a burst of mbufs per device: raise nb_mbuf");
  }
  if (cfg.idle_devices > SwitchLoopConfig::kMaxIdleDevices) {
    throw SysError(EINVAL, "the switch harness attaches at most " + std::to_string(SwitchLoopConfig::kMaxIdleDevices) + " idle devices, not " + std::to_string(cfg.idle_devices));
  }
  if (cfg.latency) rtt_ns_.reserve(cfg.max_samples);
  a_ = std::make_unique<Guest>(cfg, 0x020000000a01ull, cfg.nb_mbuf);
  b_ = std::make_unique<Guest>(cfg, 0x020000000a02ull, cfg.nb_mbuf);
  SwitchConfig sc;
  sc.vm2vm = true;
  sc.busy_poll = true;
  sc.cores = cfg.switch_cores;
  switch_ = std::make_unique<Switch>(sc, nullptr);
  switch_->AddDevice(a_->Device(1));
  switch_->AddDevice(b_->Device(2));
  // Idle guests: enough buffers to post their RX ring, domids 3, 4, ...
  for (uint32_t i = 0; i < cfg.idle_devices; i++) {
    idle_.push_back(std::make_unique<Guest>(cfg, 0x020000000b00ull + i, 2 * cfg.ring_size));
    switch_->AddDevice(idle_.back()->Device(uint16_t(3 + i)));
  }
}

SwitchLoop::~SwitchLoop() { Stop(); }

void SwitchLoop::Start() {
  if (guest_thread_.joinable()) return;
  // The data thread inherits the affinity of the thread that starts it.
  std::string err;
  std::thread starter([&] {
    try {
      PinSelf(cfg_.switch_cpu);
      switch_->Start();
    } catch (const std::exception& e) {
      err = e.what();
    }
  });
  starter.join();
  if (!err.empty()) throw SysError(EINVAL, err);
  stop_.store(false);
  guest_thread_ = std::thread([this] { RunGuest(); });
}

void SwitchLoop::Stop() {
  stop_.store(true);
  if (guest_thread_.joinable()) guest_thread_.join();
  if (switch_ && switch_->running()) switch_->Stop();
}

uint64_t SwitchLoop::Received() const {
  return a_->port->stats().rx_packets.load(std::memory_order_relaxed) + b_->port->stats().rx_packets.load(std::memory_order_relaxed);
}

uint64_t SwitchLoop::SwitchDrops() const {
  uint64_t d = 0;
  for (const auto& s : switch_->Stats()) d += s.tx_dropped;
  return d;
}

SwitchLoop::PollCounts SwitchLoop::Polls() const {
  PollCounts p;
  p.guest_polls = guest_polls_.load(std::memory_order_relaxed);
  p.guest_empty = guest_empty_.load(std::memory_order_relaxed);
  p.guest_busy_cycles = guest_busy_cycles_.Get();
  p.guest_cycles = p.guest_busy_cycles + guest_idle_cycles_.Get();
  const auto threads = switch_->ThreadStats();
  std::vector<bool> counted(threads.size());
  for (const auto& d : switch_->Stats()) {
    if (d.domid != 1 && d.domid != 2) continue;  // the two looping devices
    p.switch_frames += d.tx_total;
    for (size_t i = 0; i < threads.size(); i++) {
      const auto& t = threads[i];
      if (t.index != d.thread) continue;
      p.switch_polls += t.loops;  // each loop of its thread checks its TX ring once
      if (counted[i]) continue;
      counted[i] = true;
      p.switch_busy_cycles += t.processing_cycles;
      p.switch_cycles += t.processing_cycles + t.idle_cycles;
    }
  }
  return p;
}

void SwitchLoop::RunGuest() {
  try {
    PinSelf(cfg_.guest_cpu);
  } catch (const SysError&) {
    return;  // Received() stays 0: the bench reports the window as failed
  }
  Guest* g[2] = {a_.get(), b_.get()};
  if (cfg_.latency) {
    RunLatency();
    return;
  }
  // Inject: frames from each device to the other, headers only (as testpmd's txonly).
  for (int i = 0; i < 2; i++) {
    uint32_t pkts[kBurst];
    uint32_t left = cfg_.in_flight;
    while (left > 0 && !stop_.load(std::memory_order_relaxed)) {
      uint32_t n = 0;
      for (; n < std::min(left, kBurst); n++) {
        if (!g[i]->port->Alloc(cfg_.frame_len, &pkts[n])) break;
        uint8_t* f = g[i]->port->SegData(pkts[n]);
        PutMac(f, g[1 - i]->mac);
        PutMac(f + 6, g[i]->mac);
        PutBe16(f + 12, 0x88B5);
      }
      const uint32_t sent = g[i]->port->TxBurst(pkts, n);
      g[i]->port->FreeBurst(pkts + sent, n - sent);
      left -= sent;
    }
  }
  injected_.store(true);
  // The loop: what a device receives goes back out of it, MACs swapped.
  uint32_t pkts[kBurst];
  uint64_t polls = 0, empty = 0;
  LoopCycles cycles;
  while (!stop_.load(std::memory_order_relaxed)) {
    polls += 2;
    guest_polls_.store(polls, std::memory_order_relaxed);
    guest_empty_.store(empty, std::memory_order_relaxed);
    for (Guest* d : g) {
      const uint32_t n = d->port->RxBurst(pkts, kBurst);
      if (n == 0) {
        ++empty;
        d->port->ReclaimTx();
        cycles.After(false, guest_busy_cycles_, guest_idle_cycles_);
        continue;
      }
      for (uint32_t k = 0; k < n; k++) {
        uint8_t* f = d->port->SegData(pkts[k]);
        uint8_t tmp[6];
        std::memcpy(tmp, f, 6);
        std::memcpy(f, f + 6, 6);
        std::memcpy(f + 6, tmp, 6);
      }
      const uint32_t sent = d->port->TxBurst(pkts, n);
      d->port->FreeBurst(pkts + sent, n - sent);
      cycles.After(true, guest_busy_cycles_, guest_idle_cycles_);  // per poll, as testpmd's --record-core-cycles
    }
  }
}

void SwitchLoop::RunLatency() {
  using Clock = std::chrono::steady_clock;
  FrontPort& a = *a_->port;
  FrontPort& b = *b_->port;
  uint32_t pkt = kNoBuf;
  uint32_t pkts[kBurst];
  while (!stop_.load(std::memory_order_relaxed)) {
    if (pkt == kNoBuf) {  // (re)inject the one frame
      if (!a.Alloc(cfg_.frame_len, &pkt)) continue;
      uint8_t* f = a.SegData(pkt);
      PutMac(f, b_->mac);
      PutMac(f + 6, a_->mac);
      PutBe16(f + 12, 0x88B5);
    }
    const auto t0 = Clock::now();
    if (a.TxBurst(&pkt, 1) != 1) continue;
    pkt = kNoBuf;
    // B: wait for it, send it back.
    uint32_t n = 0;
    while (n == 0 && !stop_.load(std::memory_order_relaxed)) n = b.RxBurst(pkts, kBurst);
    if (n == 0) break;
    for (uint32_t k = 0; k < n; k++) {
      uint8_t* f = b.SegData(pkts[k]);
      PutMac(f, a_->mac);
      PutMac(f + 6, b_->mac);
    }
    const uint32_t sent = b.TxBurst(pkts, n);
    b.FreeBurst(pkts + sent, n - sent);
    // A: wait for it; the round trip ends here.
    n = 0;
    while (n == 0 && !stop_.load(std::memory_order_relaxed)) n = a.RxBurst(pkts, kBurst);
    if (n == 0) break;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
    if (rtt_ns_.size() < rtt_ns_.capacity()) rtt_ns_.push_back(uint32_t(std::min<int64_t>(ns, UINT32_MAX)));
    pkt = pkts[0];  // send the same frame again
    a.FreeBurst(pkts + 1, n - 1);
    uint8_t* f = a.SegData(pkt);
    PutMac(f, b_->mac);
    PutMac(f + 6, a_->mac);
  }
  if (pkt != kNoBuf) a.Free(pkt);
}

}  // namespace xsw::bench
