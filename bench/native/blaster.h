// A frame generator for `npm run bench`: one thread pinned to a CPU sends the
// same frame over and over on an interface through an AF_PACKET socket
// (qdisc bypassed, 32 frames per sendmmsg), the way a traffic generator on
// the far end of a NIC would. It plays the wire for the NIC→guest figure and
// the sender of the kernel veth peer.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace xsw::bench {

class Blaster {
 public:
  // Opens and binds the socket (throws SysError with a sentence: no such
  // interface, needs CAP_NET_RAW...). frame: the bytes to send (14..9018).
  Blaster(const std::string& ifname, const std::vector<uint8_t>& frame, int cpu);
  ~Blaster();
  Blaster(const Blaster&) = delete;
  Blaster& operator=(const Blaster&) = delete;

  void Start();
  // Stops the thread; returns the frames the kernel accepted.
  uint64_t Stop();
  uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }

 private:
  void Run();

  int fd_ = -1;
  int cpu_;
  std::vector<uint8_t> frame_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> sent_{0};
  std::thread thread_;
};

}  // namespace xsw::bench
