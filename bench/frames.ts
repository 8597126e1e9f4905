// Frames the bench's own generators send.
import { parseMac } from '../schema/mac';

/** A MAC the bench sends to or from (any address). */
function macBytes(mac: string): Buffer {
  const r = parseMac(mac, 'destination');
  if (!r.ok) throw new Error(`MAC '${mac}' ${r.reason}`);
  return r.value;
}

/**
 * An Ethernet frame of `size` bytes (no FCS): dst, src, an 802.1Q tag when
 * vlan is given, ethertype 0x88B5 (local experimental), then `seq` as a
 * big-endian u32 and zeros.
 */
export function benchFrame(size: number, dst: string, src: string, vlan?: number, seq = 0): Buffer {
  const f = Buffer.alloc(size);
  macBytes(dst).copy(f, 0);
  macBytes(src).copy(f, 6);
  let off = 12;
  if (vlan !== undefined) {
    f.writeUInt16BE(0x8100, off);
    f.writeUInt16BE(vlan & 0xfff, off + 2);
    off += 4;
  }
  f.writeUInt16BE(0x88b5, off);
  f.writeUInt32BE(seq >>> 0, off + 2);
  return f;
}
