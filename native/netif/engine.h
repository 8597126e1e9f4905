// The netif engine: serves one vif's two netif rings (mapped from the guest)
// on a thread of its own, and presents the vif to the switch as an ordinary
// device whose virtio rings and buffers live in dom0-private memory.
//
//   guest TX ring --grant copy--> local buffer --local TX vring--> switch
//   switch --local RX vring--> local buffer --grant copy--> guest RX page
//
// The switch core stays untouched: it sees a device like any other (its
// regions are this engine's private pool). The price is one copy more than
// the PMD path (docs/dataplane.md#netif-devices).
//
// Every request the guest writes is copied once out of the shared ring and
// validated; a protocol violation quarantines the vif: the engine stops
// touching the guest's rings and clears the local flag byte, so the switch
// reports the device dead. Nothing is allocated, logged or locked per frame.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "grant/evtchn.h"
#include "grant/provider.h"
#include "netif/ring.h"
#include "pmd/port.h"

namespace xsw::netif {

// Why a vif was quarantined (stable names: FaultName).
enum class Fault : uint8_t {
  kNone,
  kTxReqOverflow,    // req_prod ran more than a ring ahead (XSA-39 class)
  kRxReqOverflow,
  kTxTooManySlots,   // a frame of more than 18 slots (XSA-423/448 class)
  kTxSlotPastPage,   // offset + size past the granted page (XSA-155/270 class)
  kTxZeroSlot,       // an empty follow-up slot
  kTxSlotSizes,      // the first slot's size smaller than the slots that follow
  kTxExtraInfo,      // extra-info slots, a feature this back end never offered
  kTxBadGrant,       // a TX slot's ref the guest did not grant us
  kRxBadGrant,       // an RX request's ref the guest did not grant us (writable)
};
const char* FaultName(Fault f);

struct EngineConfig {
  domid_t domid = 0;
  uint32_t devid = 0;
  uint8_t* tx_sring = nullptr;  // the guest's TX ring page, mapped writable
  uint8_t* rx_sring = nullptr;  // the guest's RX ring page, mapped writable
  evtchn_port_t tx_port = 0;    // local ports (equal with one event channel)
  evtchn_port_t rx_port = 0;
  uint32_t max_frame = 1514;    // largest frame either way (no scatter-gather: one page)
  bool busy_poll = false;
};

// The local device the switch is given (all inside this engine's memory).
struct LocalDevice {
  uint8_t* tx_ring = nullptr;  // frames from the guest (the switch's TX)
  uint8_t* rx_ring = nullptr;  // frames for the guest (the switch's RX)
  uint32_t ring_size = 0;
  uint64_t ring_len = 0;
  uint8_t* flag = nullptr;
  uint8_t* pool = nullptr;     // one region: gva == address
  uint64_t pool_len = 0;
};

struct EngineCounters {
  std::atomic<uint64_t> tx_frames{0}, tx_bytes{0}, tx_slots{0}, tx_dropped{0}, tx_csum_completed{0};
  std::atomic<uint64_t> rx_frames{0}, rx_bytes{0}, rx_dropped{0}, rx_no_buffer{0};
  std::atomic<uint64_t> events_in{0}, events_out{0};
};

// What the control plane read from XenStore for one vif (validated there).
struct VifParams {
  GrantOptions platform;      // which platform; self_domid is dom0's own id
  domid_t domid = 0;          // the guest
  uint32_t devid = 0;
  grant_ref_t tx_ring_ref = 0, rx_ring_ref = 0;
  evtchn_port_t tx_evtchn = 0, rx_evtchn = 0;  // the guest's ports (equal with one channel)
  uint32_t max_frame = 1514;
  bool busy_poll = false;
};

class Engine;
// Maps the two ring pages, binds the event channel(s) and builds the engine
// (not started). Throws SysError naming what failed.
std::unique_ptr<Engine> OpenVif(const VifParams& params);

class Engine {
 public:
  // Takes the grant provider and event channels (used by its thread only).
  // Throws SysError/invalid_argument for a bad configuration.
  Engine(const EngineConfig& config, std::unique_ptr<GrantProvider> grants, std::unique_ptr<EventChannels> events);
  ~Engine();  // stops the thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const LocalDevice& local() const { return local_; }
  void Start();
  void Stop();

  // One loop on the calling thread (tests; the thread must not be running).
  bool PollOnce();

  Fault fault() const { return fault_.load(std::memory_order_acquire); }
  const EngineCounters& counters() const { return counters_; }
  GrantProvider& grants() { return *grants_; }
  EventChannels& events() { return *events_; }

 private:
  bool DoTx();
  bool DoRx();
  void Quarantine(Fault f);
  void Run();
  void Idle(bool worked);

  EngineConfig cfg_;
  std::unique_ptr<GrantProvider> grants_;
  std::unique_ptr<EventChannels> events_;
  uint8_t* mem_ = nullptr;
  uint64_t mem_len_ = 0;
  LocalDevice local_;
  std::unique_ptr<FrontPort> port_;
  uint32_t tx_rsp_pub_ = 0, rx_rsp_pub_ = 0;  // rsp_prod as last published

  // Private ring state: never read back from shared memory.
  uint32_t tx_req_cons_ = 0, tx_rsp_prod_ = 0;
  uint32_t rx_req_cons_ = 0, rx_rsp_prod_ = 0;

  // Per-burst scratch, allocated once.
  struct TxFrame {
    uint32_t pkt;
    uint16_t first_slot_index;
    uint16_t nslots;
    uint16_t flags;
    uint16_t size;
    int16_t status;
  };
  std::unique_ptr<TxFrame[]> tx_frames_;
  std::unique_ptr<uint16_t[]> tx_ids_;
  std::unique_ptr<GrantCopySeg[]> segs_;

  std::atomic<Fault> fault_{Fault::kNone};
  std::atomic<bool> running_{false};
  std::thread thread_;
  EngineCounters counters_;
  uint32_t idle_polls_ = 0, sleep_us_ = 10;
  bool notify_tx_ = false, notify_rx_ = false;
};

}  // namespace xsw::netif
