#include "shm/chain_copy.h"

#include <algorithm>
#include <cstring>

namespace xsw {

namespace {
// Moves (*i, *off) to the segment holding chain byte `offset`.
void Seek(const Segment* seg, uint32_t nseg, uint32_t offset, uint32_t* i, uint32_t* off) {
  uint32_t k = 0;
  while (k < nseg && offset >= seg[k].len) {
    offset -= seg[k].len;
    ++k;
  }
  *i = k;
  *off = offset;
}
}  // namespace

uint32_t GatherFromChain(const Segment* seg, uint32_t nseg, uint32_t offset, uint8_t* out, uint32_t len) {
  uint32_t i, off, done = 0;
  Seek(seg, nseg, offset, &i, &off);
  for (; i < nseg && done < len; ++i, off = 0) {
    uint32_t n = std::min(seg[i].len - off, len - done);
    std::memcpy(out + done, seg[i].hva + off, n);
    done += n;
  }
  return done;
}

uint32_t ScatterToChain(const Segment* seg, uint32_t nseg, uint32_t offset, const uint8_t* in, uint32_t len) {
  uint32_t i, off, done = 0;
  Seek(seg, nseg, offset, &i, &off);
  for (; i < nseg && done < len; ++i, off = 0) {
    uint32_t n = std::min(seg[i].len - off, len - done);
    std::memcpy(seg[i].hva + off, in + done, n);
    done += n;
  }
  return done;
}

uint32_t CopyChains(const Segment* src, uint32_t src_n, uint32_t src_off, const Segment* dst, uint32_t dst_n,
                    uint32_t dst_off, uint32_t len) {
  uint32_t si, so, di, dof, done = 0;
  Seek(src, src_n, src_off, &si, &so);
  Seek(dst, dst_n, dst_off, &di, &dof);
  while (si < src_n && di < dst_n && done < len) {
    uint32_t n = std::min({src[si].len - so, dst[di].len - dof, len - done});
    std::memmove(dst[di].hva + dof, src[si].hva + so, n);
    done += n;
    so += n;
    dof += n;
    if (so == src[si].len) ++si, so = 0;
    if (dof == dst[di].len) ++di, dof = 0;
  }
  return done;
}

}  // namespace xsw
