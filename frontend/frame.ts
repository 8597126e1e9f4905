// The txonly test frame in TypeScript, byte-identical to native/pmd/test_frame.h,
// so a test or a tool can build frames a receiver verifies, or check what a
// txonly sender produced.
//
//   0 dst(6)  6 src(6)  12 ethertype 0x88B5  14 magic "XSWF"  18 seq u64
//   26 frame length u32  30 pattern: byte k = (seq*7 + k) & 0xff
//   len-4 CRC-32 (IEEE) of bytes [14, len-4)        (integers big-endian)
export const TEST_ETHERTYPE = 0x88b5;
export const TEST_FRAME_MAGIC = 0x58535746;
export const TEST_FRAME_MIN_LEN = 34;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (zlib's), continuing from `crc` (0 to start). */
export function crc32(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

export function buildTestFrame(len: number, dst: Uint8Array, src: Uint8Array, seq: bigint): Buffer {
  if (!Number.isInteger(len) || len < TEST_FRAME_MIN_LEN) {
    throw new RangeError(`Expected a test frame length of at least ${TEST_FRAME_MIN_LEN}, got ${len}`);
  }
  const f = Buffer.alloc(len);
  f.set(dst.subarray(0, 6), 0);
  f.set(src.subarray(0, 6), 6);
  f.writeUInt16BE(TEST_ETHERTYPE, 12);
  f.writeUInt32BE(TEST_FRAME_MAGIC, 14);
  f.writeBigUInt64BE(BigInt.asUintN(64, seq), 18);
  f.writeUInt32BE(len, 26);
  const start = Number(BigInt.asUintN(8, seq * 7n));
  for (let k = 0; 30 + k < len - 4; k++) f[30 + k] = (start + k) & 0xff;
  f.writeUInt32BE(crc32(f.subarray(14, len - 4)), len - 4);
  return f;
}

export type FrameCheck = 'ok' | 'not-test-frame' | 'too-short' | 'bad-magic' | 'bad-length' | 'bad-checksum';

export function checkTestFrame(f: Uint8Array): { check: FrameCheck; seq?: bigint } {
  const b = Buffer.from(f.buffer, f.byteOffset, f.byteLength);
  if (b.length < 14 || b.readUInt16BE(12) !== TEST_ETHERTYPE) return { check: 'not-test-frame' };
  if (b.length < TEST_FRAME_MIN_LEN) return { check: 'too-short' };
  if (b.readUInt32BE(14) !== TEST_FRAME_MAGIC) return { check: 'bad-magic' };
  if (b.readUInt32BE(26) !== b.length) return { check: 'bad-length' };
  const seq = b.readBigUInt64BE(18);
  if (crc32(b.subarray(14, b.length - 4)) !== b.readUInt32BE(b.length - 4)) return { check: 'bad-checksum', seq };
  return { check: 'ok', seq };
}
