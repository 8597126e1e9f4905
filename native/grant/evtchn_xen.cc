// Event channels through Linux's /dev/xen/evtchn: ioctls to bind, unbind and
// notify; read() yields the ports that fired (each masked by the driver
// until its number is written back).
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "grant/evtchn.h"

// The uapi header uses this Xen type without defining it.
typedef uint16_t domid_t;
#include <xen/evtchn.h>

namespace xsw {
namespace {

class XenEventChannels : public EventChannels {
 public:
  XenEventChannels() {
    fd_ = open(kEvtchnPath, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd_ >= 0) return;
    int err = errno;
    if (err == ENOENT)
      throw SysError(ENOENT, std::string(kEvtchnPath) +
                                 " is missing: load the xen-evtchn module (modprobe xen-evtchn) in this Xen domain");
    if (err == EACCES || err == EPERM)
      throw SysError(err, std::string("cannot open ") + kEvtchnPath + ": permission denied; run as root");
    throw SysError(err, std::string("cannot open ") + kEvtchnPath + " (" + ErrnoText(err) + ")");
  }
  ~XenEventChannels() override { close(fd_); }

  const char* kind() const override { return "xen"; }

  evtchn_port_t AllocateUnbound(domid_t remote) override {
    ioctl_evtchn_bind_unbound_port req{};
    req.remote_domain = remote;
    int rc = ioctl(fd_, IOCTL_EVTCHN_BIND_UNBOUND_PORT, &req);
    if (rc < 0) {
      int err = errno;
      throw SysError(err, "cannot allocate an event channel for domain " + std::to_string(remote) + " (" +
                              ErrnoText(err) + ")");
    }
    return evtchn_port_t(rc);
  }

  evtchn_port_t BindInterdomain(domid_t remote, evtchn_port_t remote_port) override {
    ioctl_evtchn_bind_interdomain req{};
    req.remote_domain = remote;
    req.remote_port = remote_port;
    int rc = ioctl(fd_, IOCTL_EVTCHN_BIND_INTERDOMAIN, &req);
    if (rc < 0) {
      int err = errno;
      throw SysError(err, "cannot bind event channel " + std::to_string(remote_port) + " of domain " +
                              std::to_string(remote) + " (" + ErrnoText(err) +
                              "): check that the domain offered that port to this one");
    }
    return evtchn_port_t(rc);
  }

  void Unbind(evtchn_port_t port) override {
    ioctl_evtchn_unbind req{};
    req.port = port;
    ioctl(fd_, IOCTL_EVTCHN_UNBIND, &req);
  }

  bool Notify(evtchn_port_t port) override {
    ioctl_evtchn_notify req{};
    req.port = port;
    return ioctl(fd_, IOCTL_EVTCHN_NOTIFY, &req) == 0;
  }

  int fd() const override { return fd_; }

  uint32_t Pending(evtchn_port_t* ports, uint32_t max) override {
    ssize_t n = read(fd_, ports, size_t(max) * sizeof(evtchn_port_t));
    return n > 0 ? uint32_t(size_t(n) / sizeof(evtchn_port_t)) : 0;
  }

  void Unmask(evtchn_port_t port) override {
    if (write(fd_, &port, sizeof(port)) != ssize_t(sizeof(port))) {
      // The port was unbound meanwhile: nothing to re-arm.
    }
  }

 private:
  int fd_ = -1;
};

}  // namespace

std::unique_ptr<EventChannels> OpenXenEventChannels() { return std::make_unique<XenEventChannels>(); }

std::unique_ptr<EventChannels> OpenEventChannels(const GrantOptions& options) {
  std::string platform = options.platform.empty() || options.platform == "auto" ? DetectPlatform() : options.platform;
  if (platform == "xen") return OpenXenEventChannels();
  if (platform == "sim") return OpenSimEventChannels(options.sim_dir, options.self_domid);
  throw SysError(EINVAL, "unknown platform '" + options.platform + "': use auto, xen or sim");
}

}  // namespace xsw
