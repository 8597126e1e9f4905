// Event channels: one contract, two implementations (Linux's /dev/xen/evtchn
// and the simulated platform), like the grant interface (provider.h).
//
// A channel joins two domains that agreed on it: one side allocates an
// unbound port naming the other domain (a guest, for its back end), the
// other binds to it (dom0, with the port the guest published in XenStore).
// Events are edges: a notification makes the peer's port pending and wakes
// whoever polls fd(); Pending() reads the ports that fired, and each stays
// masked (no second wake-up) until Unmask(), as with the kernel's device.
//
// Bind/Allocate/Unbind are control path (they may allocate and throw
// SysError); Notify, Pending and Unmask are data path: no allocation, no
// exception, no lock of this process.
#pragma once

#include <cstdint>
#include <memory>

#include "abi/abi.h"
#include "grant/provider.h"

namespace xsw {

using evtchn_port_t = uint32_t;

class EventChannels {
 public:
  virtual ~EventChannels() = default;
  virtual const char* kind() const = 0;  // "xen" or "sim"

  // IOCTL_EVTCHN_BIND_UNBOUND_PORT: a fresh port that only `remote` may bind.
  virtual evtchn_port_t AllocateUnbound(domid_t remote) = 0;
  // IOCTL_EVTCHN_BIND_INTERDOMAIN: EINVAL when `remote_port` of `remote` is
  // not an unbound port offered to this domain, ESRCH for a missing domain.
  virtual evtchn_port_t BindInterdomain(domid_t remote, evtchn_port_t remote_port) = 0;
  virtual void Unbind(evtchn_port_t port) = 0;

  // Signals the peer of a bound local port; false when the port is not bound.
  virtual bool Notify(evtchn_port_t port) = 0;
  // Readable (poll/epoll) while a port has fired and was not read yet.
  virtual int fd() const = 0;
  // Non-blocking: the ports that fired since the last call, up to max.
  virtual uint32_t Pending(evtchn_port_t* ports, uint32_t max) = 0;
  // Re-arms a port read from Pending (fires again if an event came meanwhile).
  virtual void Unmask(evtchn_port_t port) = 0;
};

constexpr const char* kEvtchnPath = "/dev/xen/evtchn";

// The same choice as OpenGrantProvider ("auto": xen when /dev/xen/ exists).
std::unique_ptr<EventChannels> OpenEventChannels(const GrantOptions& options);
std::unique_ptr<EventChannels> OpenXenEventChannels();
std::unique_ptr<EventChannels> OpenSimEventChannels(const std::string& sim_dir, domid_t self_domid);

}  // namespace xsw
