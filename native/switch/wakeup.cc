// The data thread's sleep and the guests' notifications (docs/dataplane.md#notifications).
//
// Sleeping: every attached device that can wake us is armed first (its TX
// ring's avail_event = what we popped, then avail->idx is read again: a
// chain that came meanwhile cancels the sleep), so a guest that publishes
// after our last poll either is seen by that re-read or reads our
// avail_event and kicks. Then ppoll on the control eventfd, the event
// channels' fd, each vhost-user kick eventfd and the NIC's fd; without a
// timeout unless a device (or the NIC) cannot notify: then a short timed
// sleep, doubling 10..500 µs while nothing comes, as the adaptive poll did.
// Nothing here runs per packet; it runs only after idle loops.
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "common/adaptive_poll.h"
#include "switch/switch.h"

namespace xsw {

void Switch::WakeDataThread() {
  const uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof one);
  (void)n;  // EAGAIN: already pending
}

void Switch::NotifyGuest(Device& d, VringDevice& ring) {
  if (events_ != nullptr && ring.CallNeeded()) events_->Notify(d.cfg.evtchn);
}

void Switch::Sleep() {
  const Snapshot* s = snap_.load(std::memory_order_seq_cst);
  uint32_t n = 0;
  pollfds_[n++] = pollfd{wake_fd_, POLLIN, 0};
  bool timed = false, evtchn = false;
  int nic_fd = -1;
  if (nic_) {
    nic_fd = nic_->WaitFd();
    if (nic_fd >= 0) {
      if (nic_->ArmWait()) return;  // frames came meanwhile: poll again
      pollfds_[n++] = pollfd{nic_fd, POLLIN, 0};
    } else {
      timed = true;
    }
  }
  for (uint16_t slot : s->slots) {
    Device& d = devices_[slot];
    if (d.state.load(std::memory_order_acquire) != DeviceState::kActive) continue;
    // Event channels are drained by thread 0 only: on other threads (--cores) such a device is polled.
    const bool by_evtchn = d.cfg.evtchn != 0 && events_ != nullptr && index_ == 0;
    if (!by_evtchn && d.cfg.kick_fd < 0) {
      timed = true;  // polled: DPDK's xenvirt keys, a netif vif's local rings, a vhost-user peer that polls
      continue;
    }
    if (d.tx->ArmAvailEvent()) return;  // frames came meanwhile: poll again
    if (by_evtchn) {
      evtchn = true;
    } else {
      pollfds_[n++] = pollfd{d.cfg.kick_fd, POLLIN, 0};
    }
  }
  const uint32_t events_at = n;
  if (evtchn) pollfds_[n++] = pollfd{events_->fd(), POLLIN, 0};

  timespec ts{};
  timespec* timeout = nullptr;
  if (timed) {
    ts.tv_nsec = long(fallback_us_) * 1000;
    timeout = &ts;
    fallback_us_ = std::min(fallback_us_ * 2, AdaptivePoll::kMaxSleepUs);
  }
  sleeps_.Add();
  if (ppoll(pollfds_.get(), n, timeout, nullptr) <= 0) return;

  // Consume what woke us; the loop then polls every device anyway.
  for (uint32_t i = 0; i < n; ++i) {
    if (!(pollfds_[i].revents & POLLIN) || pollfds_[i].fd == nic_fd) continue;
    if (evtchn && i == events_at) {
      uint32_t ports[64];
      uint32_t got;
      do {  // a short read means the fd is drained: no second read just to see EAGAIN
        got = events_->Pending(ports, 64);
        for (uint32_t k = 0; k < got; ++k) events_->Unmask(ports[k]);
      } while (got == 64);
    } else {
      uint64_t v;
      ssize_t r = ::read(pollfds_[i].fd, &v, sizeof v);  // an eventfd: resets its counter
      (void)r;
    }
  }
}

}  // namespace xsw
