#include "switch/afpacket_port.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/errors.h"

namespace xsw {

namespace {

constexpr uint32_t kRingFrames = 256;
constexpr uint32_t kRingBlockMin = 4096;  // a block is at least a page
// Where a frame's data starts in a TX slot (no PACKET_TX_HAS_OFF), and the
// sockaddr_ll the kernel puts after the header of an RX slot.
constexpr uint32_t kTxDataOffset = TPACKET_ALIGN(sizeof(tpacket2_hdr));
// Room the kernel keeps before the MAC header in an RX slot (header, sockaddr_ll, alignment).
constexpr uint32_t kRxOverhead = TPACKET_ALIGN(TPACKET2_HDRLEN) + 64;

uint32_t NextPow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

uint32_t LoadStatus(const tpacket2_hdr* h) { return __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE); }
void StoreStatus(tpacket2_hdr* h, uint32_t s) { __atomic_store_n(&h->tp_status, s, __ATOMIC_RELEASE); }

[[noreturn]] void Fail(int err, const std::string& ifname, const std::string& what) {
  if (err == EPERM || err == EACCES) {
    throw SysError(EPERM, "cannot open AF_PACKET socket on " + ifname + ": needs CAP_NET_RAW: run as root");
  }
  if (err == ENODEV || err == ENXIO) {
    throw SysError(ENODEV, "cannot open AF_PACKET socket on " + ifname + ": no such interface (check `ip link`)");
  }
  throw SysError(err, "cannot open AF_PACKET socket on " + ifname + ": " + what + " failed: " + std::strerror(err));
}

}  // namespace

AfPacketPort::AfPacketPort(const std::string& ifname, uint32_t max_frame) : name_(ifname) {
  unsigned ifindex = if_nametoindex(ifname.c_str());
  if (ifindex == 0) Fail(ENODEV, ifname, "if_nametoindex");

  // Protocol 0: nothing is queued until the rings exist and bind() names ETH_P_ALL.
  fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd_ < 0) Fail(errno, ifname, "socket");
  try {
    int version = TPACKET_V2;
    if (setsockopt(fd_, SOL_PACKET, PACKET_VERSION, &version, sizeof version) < 0) Fail(errno, ifname, "PACKET_VERSION");
    int one = 1;
    // A malformed TX frame is dropped by the kernel instead of stalling the ring.
    if (setsockopt(fd_, SOL_PACKET, PACKET_LOSS, &one, sizeof one) < 0) Fail(errno, ifname, "PACKET_LOSS");
    // Optional (Linux >= 4.20 / 3.14): ignore our own and others' outgoing frames; bypass the qdisc.
    (void)setsockopt(fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    (void)setsockopt(fd_, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);

    frame_size_ = NextPow2(max_frame + kRxOverhead);
    uint32_t block_size = frame_size_ < kRingBlockMin ? kRingBlockMin : frame_size_;
    frame_nr_ = kRingFrames;
    tpacket_req req{};
    req.tp_block_size = block_size;
    req.tp_frame_size = frame_size_;
    req.tp_frame_nr = frame_nr_;
    req.tp_block_nr = uint32_t(uint64_t(frame_nr_) * frame_size_ / block_size);
    if (setsockopt(fd_, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) Fail(errno, ifname, "PACKET_RX_RING");
    if (setsockopt(fd_, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) < 0) Fail(errno, ifname, "PACKET_TX_RING");
    rx_bytes_ = uint64_t(req.tp_block_nr) * block_size;
    ring_bytes_ = 2 * rx_bytes_;
    void* m = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (m == MAP_FAILED) Fail(errno, ifname, "mmap of the packet rings");
    ring_ = static_cast<uint8_t*>(m);
    tx_capacity_ = frame_size_ - kTxDataOffset;

    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = int(ifindex);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) Fail(errno, ifname, "bind");

    packet_mreq mr{};
    mr.mr_ifindex = int(ifindex);
    mr.mr_type = PACKET_MR_PROMISC;
    if (setsockopt(fd_, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) Fail(errno, ifname, "promiscuous mode");
  } catch (...) {
    if (ring_) munmap(ring_, ring_bytes_);
    close(fd_);
    throw;
  }
}

AfPacketPort::~AfPacketPort() {
  if (ring_) munmap(ring_, ring_bytes_);
  if (fd_ >= 0) close(fd_);
}

uint32_t AfPacketPort::RxBurst(NicRxFrame* out, uint32_t max) {
  uint32_t n = 0;
  rx_taken_ = 0;
  while (n < max && rx_taken_ < frame_nr_) {
    uint8_t* frame = RxFrame((rx_head_ + rx_taken_) % frame_nr_);
    auto* h = reinterpret_cast<tpacket2_hdr*>(frame);
    uint32_t status = LoadStatus(h);
    if (!(status & TP_STATUS_USER)) break;
    ++rx_taken_;
    const auto* sll = reinterpret_cast<const sockaddr_ll*>(frame + TPACKET_ALIGN(sizeof(tpacket2_hdr)));
    if (sll->sll_pkttype == PACKET_OUTGOING) continue;
    if (h->tp_mac > frame_size_ || h->tp_snaplen > frame_size_ - h->tp_mac) continue;
    NicRxFrame& f = out[n++];
    f.data = frame + h->tp_mac;
    f.len = h->tp_snaplen;
    f.wire_len = h->tp_len;
    f.vlan_valid = (status & TP_STATUS_VLAN_VALID) != 0;
    f.vlan_tci = f.vlan_valid ? h->tp_vlan_tci : 0;
  }
  return n;
}

void AfPacketPort::RxRelease() {
  for (uint32_t i = 0; i < rx_taken_; ++i) {
    StoreStatus(reinterpret_cast<tpacket2_hdr*>(RxFrame(rx_head_)), TP_STATUS_KERNEL);
    rx_head_ = (rx_head_ + 1) % frame_nr_;
  }
  rx_taken_ = 0;
}

uint8_t* AfPacketPort::TxReserve() {
  auto* h = reinterpret_cast<tpacket2_hdr*>(TxFrame(tx_head_));
  uint32_t status = LoadStatus(h);
  if (status == TP_STATUS_WRONG_FORMAT) {
    StoreStatus(h, TP_STATUS_AVAILABLE);  // PACKET_LOSS dropped it; the slot is ours again
  } else if (status != TP_STATUS_AVAILABLE) {
    return nullptr;
  }
  tx_reserved_ = true;
  return TxFrame(tx_head_) + kTxDataOffset;
}

bool AfPacketPort::TxCommit(uint32_t len) {
  if (!tx_reserved_ || len > tx_capacity_) return false;
  tx_reserved_ = false;
  // A caller that never asks TxFree (NicPortProbe): the slot being filled was
  // handed back, so the count of slots in flight must not wrap the ring.
  if (tx_in_flight_ == frame_nr_) ReclaimTx();
  auto* h = reinterpret_cast<tpacket2_hdr*>(TxFrame(tx_head_));
  h->tp_len = len;
  h->tp_snaplen = len;
  StoreStatus(h, TP_STATUS_SEND_REQUEST);
  tx_head_ = (tx_head_ + 1) % frame_nr_;
  ++tx_pending_;
  ++tx_in_flight_;
  return true;
}

uint32_t AfPacketPort::TxFree() {
  ReclaimTx();
  return frame_nr_ - tx_in_flight_;
}

void AfPacketPort::ReclaimTx() {
  // The kernel hands slots back (AVAILABLE, or WRONG_FORMAT for one it
  // dropped) as it frees their packets: in order on one queue. Out of order,
  // the count below stays low until the oldest one is back; it never
  // counts a slot that is still the kernel's.
  while (tx_in_flight_ != 0) {
    uint32_t status = LoadStatus(reinterpret_cast<tpacket2_hdr*>(TxFrame(tx_tail_)));
    if (status != TP_STATUS_AVAILABLE && status != TP_STATUS_WRONG_FORMAT) break;
    tx_tail_ = (tx_tail_ + 1) % frame_nr_;
    --tx_in_flight_;
  }
}

void AfPacketPort::TxFlush() {
  if (tx_pending_ == 0) return;
  // Non-blocking kick: the kernel sends every SEND_REQUEST slot. A failure
  // (ENOBUFS, ENETDOWN...) leaves them pending and the next poll retries;
  // meanwhile a full ring shows as nic_tx_full.
  if (sendto(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0) tx_pending_ = 0;
}

}  // namespace xsw
