// One vhost-user port of the switch: its unix socket (xsw listens, or with
// `client` connects and keeps retrying) and the session of the peer
// connected to it, one at a time. The owner watches WatchFd() for
// readability and calls OnReadable(), calls Tick() every ~100 ms, and closes
// the fds handed back by TakeRetiredFds() once it has stopped watching them
// (so a watched fd number is never reused under it). Log lines wait in
// DrainLog(). Control path only; nothing here blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "switch/switch.h"
#include "vhost/message.h"
#include "vhost/session.h"

namespace xsw::vhost {

struct PortConfig {
  std::string path;
  bool client = false;  // connect to the peer's socket (virtio_user server=1) instead of listening
  uint64_t mac = 0;     // 0: learned from the first frame
  uint16_t domid = 0;   // the switch's fairness group for this port
};

struct LogLine {
  bool info;  // false: a warning
  std::string text;
};

class Port {
 public:
  // Listening ports bind now; throws SysError with one sentence naming the
  // path and the fix (in use by a live listener, an unusable directory).
  Port(Switch* sw, const PortConfig& cfg);
  ~Port();  // detaches the device, closes every fd, removes a listening socket's file
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  int WatchFd() const { return conn_ >= 0 ? conn_ : listen_; }
  void OnReadable();
  void Tick();
  std::vector<int> TakeRetiredFds();
  std::vector<LogLine> DrainLog();

  int slot() const { return session_ ? session_->slot() : -1; }
  bool connected() const { return conn_ >= 0; }
  const PortConfig& config() const { return cfg_; }

 private:
  void Accept();
  void TryConnect();
  void Drop(const std::string& why, bool warn);
  void Log(bool info, const std::string& text) { log_.push_back(LogLine{info, text}); }
  void StartSession();

  Switch* sw_;
  PortConfig cfg_;
  int listen_ = -1;
  int conn_ = -1;
  std::unique_ptr<MessageReader> reader_;
  std::unique_ptr<Message> msg_;
  std::unique_ptr<Session> session_;
  std::vector<int> retired_;
  std::vector<LogLine> log_;
  bool waiting_logged_ = false;
  int skip_ticks_ = 0;  // client: ticks to wait before reconnecting after a refusal (1 s)
};

}  // namespace xsw::vhost
