#include "bench/blaster.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bench/pin.h"
#include "common/errors.h"

namespace xsw::bench {
namespace {
constexpr unsigned kBurst = 32;
}

Blaster::Blaster(const std::string& ifname, const std::vector<uint8_t>& frame, int cpu) : cpu_(cpu), frame_(frame) {
  if (frame_.size() < 14 || frame_.size() > 9018) {
    throw SysError(EINVAL, "the generator's frame must be 14 to 9018 bytes, not " + std::to_string(frame_.size()));
  }
  unsigned index = if_nametoindex(ifname.c_str());
  if (index == 0) throw SysError(ENODEV, "no interface named " + ifname + " in this network namespace: check `ip link`");
  fd_ = socket(AF_PACKET, SOCK_RAW, 0);  // protocol 0: send only, receive nothing
  if (fd_ < 0) {
    int e = errno;
    throw SysError(e, "cannot open an AF_PACKET socket on " + ifname + ": the generator needs CAP_NET_RAW, run as root");
  }
  int one = 1;
  setsockopt(fd_, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));  // best effort: older kernels lack it
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_ifindex = int(index);
  addr.sll_protocol = 0;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int e = errno;
    close(fd_);
    throw SysError(e, "cannot bind the generator's socket to " + ifname + ": " + std::strerror(e));
  }
}

Blaster::~Blaster() {
  Stop();
  if (fd_ >= 0) close(fd_);
}

void Blaster::Start() {
  if (thread_.joinable()) return;
  stop_.store(false);
  thread_ = std::thread([this] { Run(); });
}

uint64_t Blaster::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  return sent();
}

void Blaster::Run() {
  if (cpu_ >= 0) (void)PinThisThread(cpu_);  // best effort: an unpinned sender still sends
  iovec iov[kBurst];
  mmsghdr msgs[kBurst];
  std::memset(msgs, 0, sizeof(msgs));
  for (unsigned i = 0; i < kBurst; i++) {
    iov[i].iov_base = frame_.data();
    iov[i].iov_len = frame_.size();
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  uint64_t sent = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    int n = sendmmsg(fd_, msgs, kBurst, MSG_DONTWAIT);
    if (n > 0) {
      sent += unsigned(n);
      sent_.store(sent, std::memory_order_relaxed);
    } else if (n < 0 && errno != EAGAIN && errno != ENOBUFS && errno != EINTR) {
      break;  // the interface went away: the count says how far we got
    }
  }
}

}  // namespace xsw::bench
