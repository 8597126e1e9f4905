// The data path's capture hooks: the one copy of a frame into a capture
// session's ring (capture.h), made only while a session captures the port
// (datapath.cc checks one pointer per frame). Data thread only: no
// allocation, lock, log or throw; a full ring counts a drop and switching
// goes on.
#include <algorithm>
#include <cstring>

#include "common/ethernet.h"
#include "shm/chain_copy.h"
#include "switch/switch.h"

namespace xsw {

// What the guest put on its TX ring (after the virtio_net_hdr), whatever the
// switch then does with it: a dropped frame is captured too.
void Switch::CaptureGuestTx(CaptureRing& cap, const Device& d, const Chain& c, uint32_t frame_len) {
  uint8_t* out = cap.Reserve();
  if (out == nullptr) return;
  uint32_t n = std::min(frame_len, cap.snaplen());
  n = GatherFromSegments(c.seg, c.nseg, d.cfg.net_hdr_len, out, n);
  cap.Commit(d.capture_if, CaptureDir::kInbound, frame_len, n);
}

// A frame as the switch delivered it: the header copy, then the body.
void Switch::CaptureFrame(CaptureRing& cap, uint16_t iface, CaptureDir dir, const uint8_t* hdr, const FrameBody& body) {
  uint8_t* out = cap.Reserve();
  if (out == nullptr) return;
  const uint32_t len = kEthHdrLen + body.len;
  const uint32_t n = std::min(len, cap.snaplen());
  std::memcpy(out, hdr, kEthHdrLen);
  GatherFromSegments(body.seg, body.nseg, body.offset, out + kEthHdrLen, n - kEthHdrLen);
  cap.Commit(iface, dir, len, n);
}

void Switch::CaptureBytes(CaptureRing& cap, uint16_t iface, CaptureDir dir, const uint8_t* data, uint32_t len) {
  uint8_t* out = cap.Reserve();
  if (out == nullptr) return;
  const uint32_t n = std::min(len, cap.snaplen());
  std::memcpy(out, data, n);
  cap.Commit(iface, dir, len, n);
}

// A frame from the NIC as it was on the wire: a tag the kernel stripped into
// the port's metadata is put back after the MAC addresses.
void Switch::CaptureNicRx(CaptureRing& cap, const NicRxFrame& f) {
  if (!f.vlan_valid || f.len < 12) return CaptureBytes(cap, nic_capture_if_, CaptureDir::kInbound, f.data, f.len);
  uint8_t* out = cap.Reserve();
  if (out == nullptr) return;
  const uint32_t len = f.wire_len + kVlanHdrLen;
  const uint32_t n = std::min(f.len + kVlanHdrLen, cap.snaplen());
  std::memcpy(out, f.data, std::min<uint32_t>(12, n));
  if (n >= 16) {
    PutBe16(out + 12, kEthPVlan);
    PutBe16(out + 14, f.vlan_tci);
    std::memcpy(out + 16, f.data + 12, n - 16);
  } else if (n > 12) {
    uint8_t tag[4];
    PutBe16(tag, kEthPVlan);
    PutBe16(tag + 2, f.vlan_tci);
    std::memcpy(out + 12, tag, n - 12);
  }
  cap.Commit(nic_capture_if_, CaptureDir::kInbound, len, n);
}

}  // namespace xsw
