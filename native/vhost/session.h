// One vhost-user connection's protocol state, and the switch device it
// becomes once both rings are ready. Every message is validated before it
// changes anything (sizes, fd counts, queue indexes, ring sizes, ring
// addresses inside the memory table, feature bits offered); any fault
// returns false with one sentence and the caller drops the connection,
// which detaches the device and unmaps its memory. Control path only: the
// switch's data thread never sees this object, only the DeviceConfig.
//
// A message that changes a live device's configuration (memory table, ring
// size, address, base, fds, enable 0, GET_VRING_BASE) first takes the device
// out of the switch; it re-enters once everything is ready again.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "switch/switch.h"
#include "vhost/memory.h"
#include "vhost/message.h"

namespace xsw::vhost {

struct SessionConfig {
  std::string name;   // for log lines: the socket path
  uint64_t mac = 0;   // 0: learn it from the source of the peer's first frame
  uint16_t domid = 0; // the switch's fairness group for this port
};

// info=false means a warning.
using LogFn = std::function<void(bool info, const std::string& line)>;

class Session {
 public:
  Session(Switch* sw, const SessionConfig& cfg, LogFn log);
  ~Session();  // detaches the device, unmaps the memory, closes the fds
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Handles one message and sends its reply on `fd`. False: the peer broke
  // the protocol (*why says how); the device is already detached.
  bool Handle(int fd, Message& m, std::string* why);
  // Periodic work: learns the MAC while waiting for it, and notices a
  // quarantine by the switch. False with *why: drop the connection.
  bool Tick(std::string* why);

  int slot() const { return slot_; }
  uint64_t mac() const { return mac_; }

 private:
  // kOfferedFeatures, plus VIRTIO_F_IN_ORDER while the switch keeps rings in order.
  uint64_t OfferedFeatures() const;
  struct Queue {
    uint32_t num = 0;
    bool addr_set = false;
    VringAddr addr{};
    uint32_t base = 0;
    int kick = -1, call = -1, err = -1;
    bool started = false;  // a kick (fd or "polling") arrived since the last stop
    bool enabled = false;
  };

  bool Dispatch(int fd, Message& m, std::string* why);
  bool TakeQueueFd(Message& m, int* slot_fd, bool* started, std::string* why);
  bool TryAttach(std::string* why);
  bool Views(VringView* rx, VringView* tx, std::string* why) const;
  bool LearnMac(const VringView& tx, std::string* why);
  void Detach();

  Switch* sw_;
  SessionConfig cfg_;
  LogFn log_;
  bool owner_ = false;
  bool features_set_ = false;
  uint64_t features_ = 0;
  uint64_t protocol_features_ = 0;
  uint64_t status_ = 0;
  GuestMemory mem_;
  Queue q_[kQueues];
  uint64_t mac_ = 0;
  bool warned_mac_ = false;
  int slot_ = -1;
};

}  // namespace xsw::vhost
