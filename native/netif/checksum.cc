#include "netif/checksum.h"

#include <cstring>

namespace xsw::netif {

uint32_t AddBytes(uint32_t sum, const uint8_t* p, uint32_t len) {
  uint64_t s = sum;
  uint32_t i = 0;
  for (; i + 1 < len; i += 2) s += uint32_t(p[i]) << 8 | p[i + 1];
  if (i < len) s += uint32_t(p[i]) << 8;
  while (s >> 32) s = (s & 0xFFFFFFFFu) + (s >> 32);
  return uint32_t(s);
}

uint16_t FoldSum(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return uint16_t(sum);
}

bool CompleteChecksum(uint8_t* f, uint32_t len) {
  constexpr uint32_t kEth = 14;
  if (len < kEth) return false;
  uint16_t type = uint16_t(f[12] << 8 | f[13]);
  uint8_t proto = 0;
  uint32_t l4 = 0, l4_len = 0, sum = 0;
  if (type == 0x0800) {
    if (len < kEth + 20) return false;
    const uint8_t* ip = f + kEth;
    uint32_t ihl = uint32_t(ip[0] & 0x0F) * 4;
    uint32_t total = uint32_t(ip[2] << 8 | ip[3]);
    if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl || kEth + total > len) return false;
    if ((ip[6] & 0x3F) != 0 || ip[7] != 0) return false;  // MF or a fragment offset
    proto = ip[9];
    l4 = kEth + ihl;
    l4_len = total - ihl;
    sum = AddBytes(0, ip + 12, 8);  // source and destination
  } else if (type == 0x86DD) {
    if (len < kEth + 40) return false;
    const uint8_t* ip = f + kEth;
    uint32_t payload = uint32_t(ip[4] << 8 | ip[5]);
    if ((ip[0] >> 4) != 6 || kEth + 40 + payload > len) return false;
    proto = ip[6];
    l4 = kEth + 40;
    l4_len = payload;
    sum = AddBytes(0, ip + 8, 32);
  } else {
    return false;
  }
  uint32_t field = 0;
  if (proto == 6 && l4_len >= 20) field = 16;
  else if (proto == 17 && l4_len >= 8) field = 6;
  else return false;
  sum += proto;
  sum += l4_len;
  f[l4 + field] = 0;
  f[l4 + field + 1] = 0;
  sum = AddBytes(sum, f + l4, l4_len);
  uint16_t c = uint16_t(~FoldSum(sum));
  if (proto == 17 && c == 0) c = 0xFFFF;  // UDP: 0 means "no checksum"
  f[l4 + field] = uint8_t(c >> 8);
  f[l4 + field + 1] = uint8_t(c);
  return true;
}

}  // namespace xsw::netif
