#include "pmd/device.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "common/errors.h"
#include "common/tap.h"
#include "shm/vring.h"

namespace xsw {

namespace {

// Anonymous, page-aligned, zeroed and populated memory, unmapped on destruction.
struct Pages {
  uint8_t* p = nullptr;
  size_t len = 0;
  explicit Pages(size_t bytes) : len(bytes) {
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (m == MAP_FAILED) {
      throw SysError(errno, "cannot allocate " + std::to_string(bytes) + " bytes for a local device (" +
                                ErrnoText(errno) + "): free some memory or ask for fewer mbufs");
    }
    p = static_cast<uint8_t*>(m);
  }
  ~Pages() {
    if (p) munmap(p, len);
  }
  Pages(const Pages&) = delete;
  Pages& operator=(const Pages&) = delete;
};

MempoolLayout LayoutOf(uint32_t nb_mbuf) {
  const std::optional<MempoolLayout> layout = MempoolLayout::Make(nb_mbuf, kDefaultMbufBufSize);
  if (!layout) {
    throw std::invalid_argument("a mempool of " + std::to_string(nb_mbuf) + " mbufs cannot be described: use 1 to " +
                                std::to_string(kMaxGrefListEntries) + " mbufs");
  }
  return *layout;
}

}  // namespace

struct FrontDevice::LocalMemory {
  LocalMemory(const MempoolLayout& layout, uint32_t ring_size)
      : pool(layout.Bytes()), tx(VringSize(ring_size)), rx(VringSize(ring_size)), flag(kPageSize) {}
  Pages pool, tx, rx, flag;
};

std::unique_ptr<FrontDevice> FrontDevice::OpenGranted(std::shared_ptr<FrontPool> pool, const FrontDeviceConfig& cfg,
                                                      domid_t backend) {
  std::unique_ptr<FrontDevice> d(new FrontDevice());
  d->rings_ = std::make_unique<FrontRings>(pool->grants(), cfg.ring_size, backend);
  uint32_t first = 0;
  if (!pool->TakeSlice(cfg.nb_bufs, &first)) {
    throw std::invalid_argument("the mempool has " + std::to_string(pool->unassigned()) +
                                " unassigned mbufs, not the " + std::to_string(cfg.nb_bufs) +
                                " this device needs: raise --nb-mbuf");
  }
  d->pool_ = std::move(pool);
  d->layout_ = d->pool_->layout();
  d->memory_.pool_base = d->pool_->base();
  d->memory_.pool_bytes = d->layout_.Bytes();
  d->memory_.tx_ring = d->rings_->tx_ring();
  d->memory_.rx_ring = d->rings_->rx_ring();
  d->memory_.flag_page = d->rings_->flag_page();
  d->BuildPort(cfg, first);
  return d;
}

std::unique_ptr<FrontDevice> FrontDevice::OpenLocal(const FrontDeviceConfig& cfg) {
  if (!VringSizeValid(cfg.ring_size)) {
    throw std::invalid_argument("ring size " + std::to_string(cfg.ring_size) +
                                " is not a power of two between 1 and 32768: use e.g. 256");
  }
  std::unique_ptr<FrontDevice> d(new FrontDevice());
  d->layout_ = LayoutOf(cfg.nb_bufs);
  d->local_ = std::make_unique<LocalMemory>(d->layout_, cfg.ring_size);
  d->memory_.pool_base = d->local_->pool.p;
  d->memory_.pool_bytes = d->local_->pool.len;
  d->memory_.tx_ring = d->local_->tx.p;
  d->memory_.rx_ring = d->local_->rx.p;
  d->memory_.flag_page = d->local_->flag.p;
  d->BuildPort(cfg, 0);
  return d;
}

void FrontDevice::BuildPort(const FrontDeviceConfig& cfg, uint32_t first_buf) {
  std::memcpy(mac_, cfg.mac, sizeof mac_);
  memory_.ring_size = cfg.ring_size;
  FrontPortConfig c;
  c.pool_base = memory_.pool_base;
  c.layout = layout_;
  c.first_buf = first_buf;
  c.nb_bufs = cfg.nb_bufs;
  c.tx_ring = memory_.tx_ring;
  c.rx_ring = memory_.rx_ring;
  c.ring_size = cfg.ring_size;
  c.max_pkt_len = cfg.max_pkt_len;
  port_ = std::make_unique<FrontPort>(c);
}

FrontDevice::~FrontDevice() {
  StopEngine();
  if (memory_.flag_page != nullptr) SetLive(false);
  port_.reset();
}

void FrontDevice::SetLive(bool live) {
  if (live && !engine_running()) port_->RefillRx();  // a running engine refills itself
  __atomic_store_n(&memory_.flag_page[0], live ? kVringFlagLive : kVringFlagDead, __ATOMIC_RELEASE);
}

uint8_t FrontDevice::flag() const { return __atomic_load_n(&memory_.flag_page[0], __ATOMIC_ACQUIRE); }

bool FrontDevice::OpenEvents(const GrantOptions& options, domid_t backend) {
  if (events_) return true;
  try {
    auto events = OpenEventChannels(options);
    evtchn_ = events->AllocateUnbound(backend);
    events_ = std::move(events);
  } catch (const std::exception&) {
    evtchn_ = 0;
    return false;
  }
  port_->SetKick(events_.get(), evtchn_);
  return true;
}

void FrontDevice::StartEngine(EngineConfig cfg, const std::string& tap) {
  if (engine_running()) throw SysError(EBUSY, "the device's engine already runs: stop it first");
  StopEngine();
  std::memcpy(cfg.own_mac, mac_, sizeof mac_);
  if (events_) {
    cfg.events = events_.get();
    cfg.evtchn = evtchn_;
  }
  try {
    if (cfg.mode == FwdMode::kTap && !tap.empty()) tap_fd_ = OpenTap(tap, TapSetup{mac_});
    cfg.tap_fd = tap_fd_;
    engine_ = std::make_unique<FrontEngine>(port_.get(), cfg);
  } catch (...) {
    CloseTap();
    throw;
  }
  port_->RefillRx();
  rx_posted_at_start_ = port_->rx_in_flight();
  engine_->Start();
}

void FrontDevice::StopEngine() {
  if (engine_) engine_->Stop();
  engine_.reset();
  CloseTap();
}

void FrontDevice::CloseTap() {
  if (tap_fd_ >= 0) close(tap_fd_);
  tap_fd_ = -1;
}

uint32_t FrontDevice::rx_posted() const {
  return engine_running() ? rx_posted_at_start_ : port_->rx_in_flight();
}

}  // namespace xsw
