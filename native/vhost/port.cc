#include "vhost/port.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/errors.h"

namespace xsw::vhost {

namespace {

bool FillAddr(const std::string& path, sockaddr_un* a) {
  std::memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a->sun_path) return false;
  std::memcpy(a->sun_path, path.data(), path.size());
  return true;
}

int NewSocket() { return ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

}  // namespace

Port::Port(Switch* sw, const PortConfig& cfg) : sw_(sw), cfg_(cfg), msg_(new Message()) {
  sockaddr_un a;
  if (!FillAddr(cfg.path, &a)) {
    throw SysError(EINVAL, "the vhost-user socket path '" + cfg.path + "' is empty or longer than " +
                               std::to_string(sizeof a.sun_path - 1) + " bytes: give a shorter path");
  }
  if (cfg.client) return;  // Tick connects
  // A socket file left by an earlier run is replaced; one with a live listener is not.
  struct stat st {};
  if (::lstat(cfg.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      throw SysError(EEXIST, cfg.path + " exists and is not a socket: remove it or give another path for --vhost-user");
    }
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live = probe >= 0 && ::connect(probe, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (probe >= 0) ::close(probe);
    if (live) {
      throw SysError(EADDRINUSE, "another process listens on the vhost-user socket " + cfg.path +
                                     ": stop it or give another path");
    }
    ::unlink(cfg.path.c_str());
  }
  listen_ = NewSocket();
  if (listen_ < 0) throw SysError(errno, "cannot create a unix socket for " + cfg.path);
  if (::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_, 4) != 0) {
    int e = errno;
    ::close(listen_);
    listen_ = -1;
    throw SysError(e, "cannot listen on the vhost-user socket " + cfg.path + " (" + std::strerror(e) +
                          "): check that its directory exists and is writable");
  }
  Log(true, "vhost-user " + cfg.path + ": listening (start the peer with virtio_user path=" + cfg.path + ")");
}

Port::~Port() {
  session_.reset();  // detaches and unmaps first
  if (conn_ >= 0) ::close(conn_);
  if (listen_ >= 0) {
    ::close(listen_);
    ::unlink(cfg_.path.c_str());
  }
  for (int f : retired_) ::close(f);
}

std::vector<int> Port::TakeRetiredFds() {
  std::vector<int> out;
  out.swap(retired_);
  return out;
}

std::vector<LogLine> Port::DrainLog() {
  std::vector<LogLine> out;
  out.swap(log_);
  return out;
}

void Port::StartSession() {
  SessionConfig sc;
  sc.name = cfg_.path;
  sc.mac = cfg_.mac;
  sc.domid = cfg_.domid;
  session_ = std::make_unique<Session>(sw_, sc, [this](bool info, const std::string& line) { Log(info, line); });
  reader_ = std::make_unique<MessageReader>();  // nothing of the last connection's bytes or fds
}

void Port::Accept() {
  int c = ::accept4(listen_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c < 0) return;  // EAGAIN, or the peer gave up already
  conn_ = c;
  StartSession();
  Log(true, "vhost-user " + cfg_.path + ": a peer connected");
}

void Port::TryConnect() {
  sockaddr_un a;
  FillAddr(cfg_.path, &a);
  int c = NewSocket();
  if (c < 0) return;
  if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    int e = errno;
    ::close(c);
    if (!waiting_logged_) {
      Log(true, "vhost-user " + cfg_.path + ": waiting for the peer's socket (" + std::strerror(e) +
                    "); retrying every 100 ms");
      waiting_logged_ = true;
    }
    return;
  }
  waiting_logged_ = false;
  conn_ = c;
  StartSession();
  Log(true, "vhost-user " + cfg_.path + ": connected to the peer");
}

void Port::Drop(const std::string& why, bool warn) {
  session_.reset();  // the device leaves the switch, its memory is unmapped
  if (warn) skip_ticks_ = 10;  // a refused peer reconnecting at once would refill the log
  if (conn_ >= 0) retired_.push_back(conn_);
  conn_ = -1;
  Log(!warn, "vhost-user " + cfg_.path + ": " + why + "; device detached and its memory unmapped" +
                 (cfg_.client ? (warn ? ", reconnecting in 1 s" : ", reconnecting") : ", waiting for a new connection"));
}

void Port::OnReadable() {
  if (conn_ < 0) {
    if (listen_ >= 0) Accept();
    return;
  }
  // A bounded number of messages per call, so that one chatty peer cannot hold the loop.
  for (int i = 0; i < 64 && conn_ >= 0; ++i) {
    std::string why;
    MessageReader::Status s = reader_->Read(conn_, msg_.get(), &why);
    if (s == MessageReader::Status::kAgain) return;
    if (s == MessageReader::Status::kClosed) return Drop("the peer closed the connection", false);
    if (s == MessageReader::Status::kLost) return Drop(why, true);
    if (s == MessageReader::Status::kError) return Drop("refused " + why, true);
    if (!session_->Handle(conn_, *msg_, &why)) return Drop("refused " + why, true);
    msg_->CloseFds();
  }
}

void Port::Tick() {
  if (conn_ < 0) {
    if (skip_ticks_ > 0) {
      --skip_ticks_;
    } else if (cfg_.client) {
      TryConnect();
    }
    return;
  }
  std::string why;
  if (!session_->Tick(&why)) Drop(why, true);
}

}  // namespace xsw::vhost
