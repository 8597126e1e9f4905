#include "switch/vhostnet_port.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/errors.h"
#include "common/tap.h"

namespace xsw {

namespace {

// The kernel's vhost interface (uapi linux/vhost.h and vhost_types.h, whose
// virtio_ring.h does not compile as C++): the structures and ioctls we use.
struct VhostVringState {
  uint32_t index, num;
};
struct VhostVringFile {
  uint32_t index;
  int32_t fd;
};
struct VhostVringAddr {
  uint32_t index, flags;
  uint64_t desc_user_addr, used_user_addr, avail_user_addr, log_guest_addr;
};
struct VhostMemoryRegion {
  uint64_t guest_phys_addr, memory_size, userspace_addr, flags_padding;
};
struct VhostMemory {  // struct vhost_memory with room for one region
  uint32_t nregions, padding;
  VhostMemoryRegion regions[1];
};
constexpr unsigned kVhost = 0xAF;
constexpr unsigned long kGetFeatures = _IOR(kVhost, 0x00, uint64_t);
constexpr unsigned long kSetFeatures = _IOW(kVhost, 0x00, uint64_t);
constexpr unsigned long kSetOwner = _IO(kVhost, 0x01);
constexpr unsigned long kSetMemTable = _IOW(kVhost, 0x03, uint64_t);  // struct vhost_memory: 8 bytes + regions
constexpr unsigned long kSetVringNum = _IOW(kVhost, 0x10, VhostVringState);
constexpr unsigned long kSetVringAddr = _IOW(kVhost, 0x11, VhostVringAddr);
constexpr unsigned long kSetVringBase = _IOW(kVhost, 0x12, VhostVringState);
constexpr unsigned long kSetVringKick = _IOW(kVhost, 0x20, VhostVringFile);
constexpr unsigned long kSetVringCall = _IOW(kVhost, 0x21, VhostVringFile);
constexpr unsigned long kNetSetBackend = _IOW(kVhost, 0x30, VhostVringFile);
static_assert(sizeof(VhostVringAddr) == 40 && sizeof(VhostMemoryRegion) == 32 && sizeof(VhostVringFile) == 8,
              "vhost uapi layouts");
constexpr unsigned kVirtioFVersion1 = 32;  // VIRTIO_F_VERSION_1

constexpr uint16_t kUsedNoNotify = 1;  // VRING_USED_F_NO_NOTIFY: the device needs no kick now

uint64_t AlignUp64(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
uint64_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

[[noreturn]] void Fail(int err, const std::string& name, const std::string& what) {
  throw SysError(err, "-p vhost-net:" + name + ": " + what + " failed: " + std::strerror(err));
}

void Ioctl(int fd, unsigned long req, const void* arg, const std::string& name, const char* what) {
  if (ioctl(fd, req, arg) < 0) Fail(errno, name, what);
}

}  // namespace

int OpenVhostNetDevice(const std::string& name, const char* path) {
  const int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd >= 0) return fd;
  const int err = errno;
  const std::string p = "-p vhost-net:" + name;
  if (err == ENOENT || err == ENODEV || err == ENXIO) {
    throw SysError(ENOENT, p + " needs " + path + ", which this host lacks: load the vhost_net module (modprobe vhost_net) or use -p tap:" + name);
  }
  if (err == EACCES || err == EPERM) {
    throw SysError(EACCES, p + " cannot open " + path + " (permission denied): run xsw-backend as root or give its user read-write access to " + path);
  }
  Fail(err, name, std::string("opening ") + path);
}

VhostNetPort::VhostNetPort(const std::string& name, uint32_t max_frame) : name_(name), max_frame_(max_frame) {
  vhost_fd_ = OpenVhostNetDevice(name);
  try {
    if (ioctl(vhost_fd_, kSetOwner, nullptr) < 0) {
      if (errno == ENOTTY || errno == EINVAL) throw SysError(ENODEV, "-p vhost-net:" + name + ": /dev/vhost-net is not a vhost-net device (VHOST_SET_OWNER refused): check that the vhost_net module provides it");
      Fail(errno, name, "VHOST_SET_OWNER");
    }
    uint64_t offered = 0;
    Ioctl(vhost_fd_, kGetFeatures, &offered, name, "VHOST_GET_FEATURES");
    // The minimal set: VERSION_1 (a 12-byte header, little-endian rings) when
    // offered, else legacy; no offloads, no mergeable buffers, no event index.
    const uint64_t features = offered & (1ULL << kVirtioFVersion1);
    const uint32_t hdr_len = features ? kVirtioNetHdrLenV1 : kVirtioNetHdrLen;
    TapSetup setup;
    setup.mtu = max_frame - kEthHdrLen - kVlanHdrLen;
    setup.up = true;
    setup.vnet_hdr = hdr_len;  // the TAP reads and writes the header (the kernel's sock_hlen)
    tap_fd_ = OpenTap(name, setup);
    Ioctl(vhost_fd_, kSetFeatures, &features, name, "VHOST_SET_FEATURES");
    MapRings(hdr_len);
    StartKernel();
  } catch (...) {
    Close();
    throw;
  }
}

VhostNetPort::VhostNetPort(NoKernel, uint32_t max_frame, uint32_t hdr_len) : name_("(no kernel)"), max_frame_(max_frame) {
  try {
    MapRings(hdr_len);
  } catch (...) {
    Close();
    throw;
  }
}

std::unique_ptr<VhostNetPort> VhostNetPort::WithoutKernel(uint32_t max_frame, uint32_t net_hdr_len) {
  return std::unique_ptr<VhostNetPort>(new VhostNetPort(NoKernel{}, max_frame, net_hdr_len));
}

VhostNetPort::~VhostNetPort() { Close(); }

void VhostNetPort::Close() {
  // The kernel's worker stops (and lets go of the memory) when its fd closes.
  if (vhost_fd_ >= 0) close(vhost_fd_);
  if (tap_fd_ >= 0) close(tap_fd_);
  for (int q = 0; q < 2; ++q) {
    if (kick_fd_[q] >= 0) close(kick_fd_[q]);
    if (call_fd_[q] >= 0) close(call_fd_[q]);
    kick_fd_[q] = call_fd_[q] = -1;
  }
  vhost_fd_ = tap_fd_ = -1;
  rx_.reset();
  tx_.reset();
  if (mem_) munmap(mem_, mem_bytes_);
  mem_ = nullptr;
}

void VhostNetPort::MapRings(uint32_t hdr_len) {
  hdr_len_ = hdr_len;
  stride_ = uint32_t(AlignUp64(uint64_t(hdr_len) + max_frame_, 64));
  ring_bytes_ = AlignUp64(VringSize(kRingSize), kPageSize);
  mem_bytes_ = 2 * ring_bytes_ + 2 * uint64_t(kRingSize) * stride_;
  void* m = mmap(nullptr, mem_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (m == MAP_FAILED) Fail(errno, name_, "mapping the rings and buffers");
  mem_ = static_cast<uint8_t*>(m);  // zeroed: every TX header stays all zero
  rx_ = std::make_unique<VringDriver>(ring_base(kRxQueue), kRingSize);
  tx_ = std::make_unique<VringDriver>(ring_base(kTxQueue), kRingSize);
  rx_->Init();
  tx_->Init();
  for (int q = 0; q < 2; ++q) {
    kick_fd_[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    call_fd_[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (kick_fd_[q] < 0 || call_fd_[q] < 0) Fail(errno, name_, "eventfd");
    // We poll: no interrupts (calls) wanted on either ring.
    VringView v = VringView::At(ring_base(uint32_t(q)), kRingSize);
    v.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
  }
  for (uint32_t i = 0; i < kRingSize; ++i) {
    DriverBuf b{Addr(Buffer(i)), stride_};
    rx_->Add(&b, 0, 1, i);
    tx_free_[i] = kRingSize + i;
  }
  tx_free_n_ = kRingSize;
  rx_->Publish();
}

void VhostNetPort::StartKernel() {
  // One region: xsw's rings and buffers, "guest physical" = our own address.
  VhostMemory table{};
  table.nregions = 1;
  table.regions[0].guest_phys_addr = Addr(mem_);
  table.regions[0].memory_size = mem_bytes_;
  table.regions[0].userspace_addr = Addr(mem_);
  Ioctl(vhost_fd_, kSetMemTable, &table, name_, "VHOST_SET_MEM_TABLE");
  for (uint32_t q = 0; q < 2; ++q) {
    VringView v = VringView::At(ring_base(q), kRingSize);
    VhostVringState num{q, kRingSize};
    Ioctl(vhost_fd_, kSetVringNum, &num, name_, "VHOST_SET_VRING_NUM");
    VhostVringState base{q, 0};
    Ioctl(vhost_fd_, kSetVringBase, &base, name_, "VHOST_SET_VRING_BASE");
    VhostVringAddr addr{};
    addr.index = q;
    addr.desc_user_addr = Addr(v.desc);
    addr.avail_user_addr = Addr(v.avail);
    addr.used_user_addr = Addr(v.used);
    Ioctl(vhost_fd_, kSetVringAddr, &addr, name_, "VHOST_SET_VRING_ADDR");
    VhostVringFile kick{q, kick_fd_[q]};
    Ioctl(vhost_fd_, kSetVringKick, &kick, name_, "VHOST_SET_VRING_KICK");
    VhostVringFile call{q, call_fd_[q]};
    Ioctl(vhost_fd_, kSetVringCall, &call, name_, "VHOST_SET_VRING_CALL");
  }
  for (uint32_t q = 0; q < 2; ++q) {
    VhostVringFile backend{q, tap_fd_};
    Ioctl(vhost_fd_, kNetSetBackend, &backend, name_, "VHOST_NET_SET_BACKEND");
  }
}

void VhostNetPort::Kick(uint32_t q) {
  // Our avail index is out (release store); the kernel's flag must be read
  // after it, or a kernel going idle in between would miss both.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  const VringView v = VringView::At(ring_base(q), kRingSize);
  if (__atomic_load_n(&v.used->flags, __ATOMIC_ACQUIRE) & kUsedNoNotify) return;
  const uint64_t one = 1;
  if (write(kick_fd_[q], &one, sizeof one) == ssize_t(sizeof one)) ++kicks_;
}

bool VhostNetPort::ArmWait() {
  uint64_t v;
  ssize_t r = read(call_fd_[kRxQueue], &v, sizeof v);  // a call left from an earlier sleep
  (void)r;
  // Interrupts on; ArmUsedEvent's fence orders this store before its re-read
  // of used->idx, and the kernel stores used->idx, fences, then reads the
  // flags (vhost_notify): either we see its frame or it signals us. The
  // used_event word it also writes is ignored (no event index negotiated).
  const VringView v0 = VringView::At(ring_base(kRxQueue), kRingSize);
  __atomic_store_n(&v0.avail->flags, uint16_t(0), __ATOMIC_RELAXED);
  rx_armed_ = true;
  return rx_->ArmUsedEvent(0);
}

uint32_t VhostNetPort::RxBurst(NicRxFrame* out, uint32_t max) {
  if (rx_armed_) {  // awake again: no interrupts while we poll
    const VringView v0 = VringView::At(ring_base(kRxQueue), kRingSize);
    __atomic_store_n(&v0.avail->flags, uint16_t(VRING_AVAIL_F_NO_INTERRUPT), __ATOMIC_RELAXED);
    rx_armed_ = false;
  }
  if (max > kBurst) max = kBurst;
  if (max > kBurst - rx_held_n_) max = kBurst - rx_held_n_;  // RxRelease was skipped: hold no more than we can repost
  UsedEntry used[kBurst];
  const uint32_t got = rx_->Harvest(used, max);
  uint32_t n = 0;
  for (uint32_t i = 0; i < got; ++i) {
    const uint32_t buf = uint32_t(used[i].cookie);  // ours: Harvest returns only posted buffers' cookies
    rx_held_[rx_held_n_++] = buf;
    if (used[i].len < hdr_len_) {  // the kernel always writes the header first
      ++rx_short_;
      continue;
    }
    NicRxFrame& f = out[n++];
    f.data = Buffer(buf) + hdr_len_;
    f.len = used[i].len - hdr_len_;
    f.wire_len = f.len;  // longer frames are dropped by the kernel (the TAP's MTU fits the buffers)
    f.vlan_valid = false;  // the tun driver leaves tags in the frame
    f.vlan_tci = 0;
  }
  return n;
}

void VhostNetPort::RxRelease() {
  if (rx_held_n_ == 0) return;
  for (uint32_t i = 0; i < rx_held_n_; ++i) {
    DriverBuf b{Addr(Buffer(rx_held_[i])), stride_};
    rx_->Add(&b, 0, 1, rx_held_[i]);
  }
  rx_held_n_ = 0;
  rx_->Publish();
  Kick(kRxQueue);  // only if the kernel ran out of buffers and waits for more
}

uint32_t VhostNetPort::TxFree() {
  UsedEntry used[kBurst];
  uint32_t got;
  do {
    got = tx_->Harvest(used, kBurst);
    for (uint32_t i = 0; i < got; ++i) tx_free_[tx_free_n_++] = uint32_t(used[i].cookie);
  } while (got == kBurst);
  return tx_reserved_ ? tx_free_n_ - 1 : tx_free_n_;
}

uint8_t* VhostNetPort::TxReserve() {
  if (tx_free_n_ == 0) TxFree();
  if (tx_free_n_ == 0) return nullptr;
  tx_reserved_ = true;
  return Buffer(tx_free_[tx_free_n_ - 1]) + hdr_len_;
}

bool VhostNetPort::TxCommit(uint32_t len) {
  if (!tx_reserved_ || len > max_frame_) return false;
  tx_reserved_ = false;
  const uint32_t buf = tx_free_[tx_free_n_ - 1];
  DriverBuf b{Addr(Buffer(buf)), hdr_len_ + len};  // the zero header, then the frame
  if (tx_->Add(&b, 1, 0, buf) < 0) return false;  // never: one descriptor per buffer
  --tx_free_n_;
  ++tx_pending_;
  return true;
}

void VhostNetPort::TxFlush() {
  if (tx_pending_ == 0) return;
  tx_->Publish();
  tx_pending_ = 0;
  Kick(kTxQueue);
}

}  // namespace xsw
