// FrontDevice: one whole guest device, assembled in one place: its memory,
// the poll-mode driver (FrontPort) over that memory, its vring flag byte, and
// the forwarding engine thread (with its TAP in tap mode). The N-API layer
// (xsw-front), the bench and the C++ tests all build their devices here.
//
// The memory is either granted (the rings and flag page granted to the back
// end, the buffers a slice of a granted FrontPool: what xsw-front publishes)
// or local (a pool, two rings and a flag page of this process's own
// anonymous memory, granted to nobody: for the tests and the bench, where
// the "back end" lives in the same process). Either way gva == address.
//
// Control path only; the data path is FrontPort's. Not thread-safe: one
// control thread owns the object, the engine thread owns the port while it runs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "abi/abi.h"
#include "grant/evtchn.h"
#include "grant/provider.h"
#include "pmd/engine.h"
#include "pmd/granted_pool.h"
#include "pmd/granted_rings.h"
#include "pmd/port.h"

namespace xsw {

struct FrontDeviceConfig {
  uint8_t mac[6] = {};
  uint32_t ring_size = kDefaultRingSize;
  uint32_t nb_bufs = 0;      // granted: the slice of the pool; local: the size of the device's own pool
  uint32_t max_pkt_len = 0;  // largest frame RX chains must hold; 0 = the data room
};

// Where a device's memory lies in this process.
struct FrontDeviceMemory {
  uint8_t* pool_base = nullptr;  // the whole pool the device's buffers come from
  uint64_t pool_bytes = 0;
  uint8_t* tx_ring = nullptr;    // VringSize(ring_size) bytes each, page aligned
  uint8_t* rx_ring = nullptr;
  uint8_t* flag_page = nullptr;  // byte 0: kVringFlagLive while the device lives
  uint32_t ring_size = 0;
};

class FrontDevice {
 public:
  // Grants the rings and flag page to `backend` through the pool's provider
  // and takes cfg.nb_bufs buffers from the pool. Throws SysError (ENOSPC at
  // the gntalloc limit) or std::invalid_argument, each with a sentence.
  static std::unique_ptr<FrontDevice> OpenGranted(std::shared_ptr<FrontPool> pool, const FrontDeviceConfig& cfg,
                                                  domid_t backend);
  // A device over this process's own zeroed memory: a pool of cfg.nb_bufs
  // mbufs, two rings and a flag page. Throws like OpenGranted.
  static std::unique_ptr<FrontDevice> OpenLocal(const FrontDeviceConfig& cfg);

  // Stops the engine, clears the flag byte, then releases the memory.
  ~FrontDevice();
  FrontDevice(const FrontDevice&) = delete;
  FrontDevice& operator=(const FrontDevice&) = delete;

  FrontPort& port() { return *port_; }
  const FrontDeviceMemory& memory() const { return memory_; }
  // The granted rings (their XenStore keys); null for local memory.
  const FrontRings* granted_rings() const { return rings_.get(); }
  const uint8_t* mac() const { return mac_; }

  // true: fills the RX ring first (unless the engine runs: it refilled it),
  // so the device is announced with buffers posted (DPDK's dev_start order),
  // then writes kVringFlagLive; false: writes kVringFlagDead.
  void SetLive(bool live);
  uint8_t flag() const;

  // Starts the engine thread (cfg.own_mac is this device's MAC). In tap mode
  // with a non-empty `tap`, creates or attaches to that TAP first. Throws
  // SysError (EBUSY while an engine runs, the TAP's errors) or
  // std::invalid_argument for a bad engine configuration.
  void StartEngine(EngineConfig cfg, const std::string& tap);
  // Stops and joins the engine thread and closes its TAP. Idempotent.
  void StopEngine();
  bool engine_running() const { return engine_ && engine_->running(); }

  // Opens this platform's event channels and offers the back end a port
  // (XenStore's V_event_channel): TX bursts kick a sleeping back end and the
  // engine sleeps until it notifies. Best effort: false (the device stays
  // polled) when the platform has none. Before StartEngine.
  bool OpenEvents(const GrantOptions& options, domid_t backend);
  // The port offered to the back end, 0: none.
  evtchn_port_t evtchn() const { return evtchn_; }

  // RX chains posted to the back end: while the engine runs the ring is its
  // own, so this is what it started with; otherwise what is posted now.
  uint32_t rx_posted() const;

 private:
  struct LocalMemory;
  FrontDevice() = default;
  void BuildPort(const FrontDeviceConfig& cfg, uint32_t first_buf);
  void CloseTap();

  // Owners of the memory (one kind set), declared first: destroyed last.
  std::shared_ptr<FrontPool> pool_;
  std::unique_ptr<FrontRings> rings_;
  std::unique_ptr<LocalMemory> local_;
  FrontDeviceMemory memory_;
  MempoolLayout layout_;
  uint8_t mac_[6] = {};
  std::unique_ptr<EventChannels> events_;  // before the port and engine: outlives both
  evtchn_port_t evtchn_ = 0;
  std::unique_ptr<FrontPort> port_;
  std::unique_ptr<FrontEngine> engine_;
  int tap_fd_ = -1;
  uint32_t rx_posted_at_start_ = 0;
};

}  // namespace xsw
