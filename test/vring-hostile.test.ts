// Through N-API: the device reports every hostile ring as its named violation
// and consumes nothing; the driver and device agree on well-formed chains;
// regions translate only ranges wholly inside one region.
import test from 'ava';
import { VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, vringLayout } from '../native/abi';
import { RingDirection, ViolationName, vringNative } from '../native/vring';
import { RawRing, alignedMemory } from './fixtures/vring-ring';

const native = vringNative();
const F_INDIRECT = 4;
const POOL_GVA = 0x7f0000000000n;
const POOL_BYTES = 64 * 4096;
const RO_GVA = POOL_GVA + BigInt(POOL_BYTES);
const MAX_SEGMENT_LEN = 65536;

function setup(num: number, maxChain = 16, direction: RingDirection = 'any') {
  const ringMem = alignedMemory(vringLayout(num).pages * 4096);
  const pool = alignedMemory(POOL_BYTES);
  const ro = alignedMemory(4096);
  const ring = new RawRing(ringMem.buffer, num);
  const regions = [
    { gva: POOL_GVA, buffer: pool.buffer, writable: true },
    { gva: RO_GVA, buffer: ro.buffer, writable: false },
  ];
  const device = new native.VringDevice(ringMem.buffer, num, regions, maxChain, direction);
  return { ring, ringMem, pool, ro, device, regions };
}

function popOne(device: InstanceType<ReturnType<typeof vringNative>['VringDevice']>) {
  const heads = new Uint16Array(32);
  const outLens = new Uint32Array(32);
  const inLens = new Uint32Array(32);
  const first = new BigUint64Array(32);
  const nsegs = new Uint8Array(32);
  const r = device.popBurst(32, heads, outLens, inLens, first, nsegs);
  return { ...r, heads, outLens, inLens, first, nsegs };
}

interface Row {
  what: string;
  num?: number;
  maxChain?: number;
  direction?: RingDirection;
  build: (r: RawRing) => void;
  want: ViolationName;
}

const G = POOL_GVA;
const rows: Row[] = [
  { what: 'avail idx jumps past the ring size', build: (r) => (r.availIdx = 9), want: 'avail_idx_jump' },
  { what: 'head index >= ring size', build: (r) => r.post(8), want: 'desc_index' },
  { what: 'next index >= ring size', build: (r) => (r.desc(0, G, 64, VRING_DESC_F_NEXT, 200), r.post(0)), want: 'desc_index' },
  { what: 'a NEXT loop', build: (r) => (r.desc(0, G, 64, VRING_DESC_F_NEXT, 1), r.desc(1, G, 64, VRING_DESC_F_NEXT, 0), r.post(0)), want: 'chain_loop' },
  {
    what: 'a chain longer than the ring (it must come back round)',
    build: (r) => {
      for (let i = 0; i < 8; i++) r.desc(i, G, 64, VRING_DESC_F_NEXT, (i + 1) % 8);
      r.post(3);
    },
    want: 'chain_loop',
  },
  {
    what: 'a chain longer than the accepted maximum',
    num: 32,
    maxChain: 4,
    build: (r) => {
      for (let i = 0; i < 5; i++) r.desc(i, G, 64, i < 4 ? VRING_DESC_F_NEXT : 0, i + 1);
      r.post(0);
    },
    want: 'chain_too_long',
  },
  { what: 'an address outside every region', build: (r) => (r.desc(0, 0x1000n, 64, 0, 0), r.post(0)), want: 'addr_outside_region' },
  { what: 'a buffer running off the end of its region', build: (r) => (r.desc(0, RO_GVA + 4090n, 64, 0, 0), r.post(0)), want: 'addr_outside_region' },
  { what: 'addr + len wraps', build: (r) => (r.desc(0, 0xffff_ffff_ffff_fff0n, 64, 0, 0), r.post(0)), want: 'len_overflow' },
  { what: 'len too big', build: (r) => (r.desc(0, G, MAX_SEGMENT_LEN + 1, 0, 0), r.post(0)), want: 'len_overflow' },
  { what: 'a device-writable buffer in a read-only region', build: (r) => (r.desc(0, RO_GVA, 64, VRING_DESC_F_WRITE, 0), r.post(0)), want: 'write_to_readonly' },
  { what: 'an RX descriptor the device may not write', direction: 'device-writes', build: (r) => (r.desc(0, G, 64, 0, 0), r.post(0)), want: 'write_to_readonly' },
  { what: 'a TX descriptor marked device-writable', direction: 'device-reads', build: (r) => (r.desc(0, G, 64, VRING_DESC_F_WRITE, 0), r.post(0)), want: 'read_from_writeonly' },
  {
    what: 'an out buffer after an in buffer',
    build: (r) => (r.desc(0, G, 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1), r.desc(1, G, 64, 0, 0), r.post(0)),
    want: 'out_after_in',
  },
  { what: 'an INDIRECT descriptor (not negotiated)', build: (r) => (r.desc(0, G, 64, F_INDIRECT, 0), r.post(0)), want: 'indirect_desc' },
];

for (const row of rows) {
  test(`hostile ring: ${row.what} is reported as ${row.want}`, (t) => {
    const { ring, device } = setup(row.num ?? 8, row.maxChain ?? 16, row.direction ?? 'any');
    row.build(ring);
    const r = popOne(device);
    t.is(r.violation, row.want);
    t.is(r.count, 0);
    t.is(device.lastAvail, 0, 'nothing consumed');
    t.is(ring.usedIdx, 0, 'nothing published');
  });
}

test('good chains before a bad one are popped; the bad one stops the burst', (t) => {
  const { ring, device } = setup(8);
  ring.desc(0, G, 100, 0, 0);
  ring.post(0);
  ring.desc(1, G + 4096n, 200, 0, 0);
  ring.post(1);
  ring.desc(2, G, 64, F_INDIRECT, 0);
  ring.post(2);
  const r = popOne(device);
  t.is(r.count, 2);
  t.is(r.violation, 'indirect_desc');
  t.deepEqual([...r.outLens.subarray(0, 2)], [100, 200]);
  t.is(device.lastAvail, 2);
});

test('violation names are the stable stats keys', (t) => {
  t.deepEqual(native.violationNames(), [
    'none',
    'avail_idx_jump',
    'desc_index',
    'chain_loop',
    'chain_too_long',
    'addr_outside_region',
    'len_overflow',
    'write_to_readonly',
    'read_from_writeonly',
    'out_after_in',
    'indirect_desc',
    'memory_truncated',
  ]);
});

test('driver and device agree on chains with out and in buffers, and the device resumes from the shared indexes', (t) => {
  const num = 16;
  const { ringMem, pool, regions } = setup(num);
  const driver = new native.VringDriver(ringMem.buffer, num);
  driver.init();
  // Chain A: header (10 bytes) + data (1500) out. Chain B: two 2048-byte in buffers.
  const gvas = BigUint64Array.from([G, G + 4096n, G + 8192n, G + 12288n]);
  const lens = Uint32Array.from([10, 1500, 2048, 2048]);
  const added = driver.addBurst(2, gvas, lens, Uint8Array.from([2, 0]), Uint8Array.from([0, 2]), BigUint64Array.from([111n, 222n]));
  t.is(added, 2);
  t.is(driver.freeDescs, num - 4);
  const device = new native.VringDevice(ringMem.buffer, num, regions, 16);
  t.is(popOne(device).count, 0, 'not visible before publish');
  driver.publish();
  const r = popOne(device);
  t.is(r.violation, null);
  t.is(r.count, 2);
  t.deepEqual([r.outLens[0], r.inLens[0], r.nsegs[0]], [1510, 0, 2]);
  t.deepEqual([r.outLens[1], r.inLens[1], r.nsegs[1]], [0, 4096, 2]);
  t.is(r.first[0], pool.addr);
  t.is(r.first[1], pool.addr + 8192n);
  // Complete only the first, then "restart" the back end.
  device.pushUsedBurst(1, r.heads, Uint32Array.from([0]));
  device.publishUsed();
  const restarted = new native.VringDevice(ringMem.buffer, num, regions, 16);
  t.is(restarted.lastAvail, 1);
  const again = popOne(restarted);
  t.is(again.count, 1, 'the unfinished chain is still there');
  t.is(again.heads[0], r.heads[1]);
  restarted.pushUsedBurst(1, again.heads, Uint32Array.from([3000]));
  restarted.publishUsed();
  const cookies = new BigUint64Array(8);
  const usedLens = new Uint32Array(8);
  t.is(driver.harvest(cookies, usedLens), 2);
  t.deepEqual([...cookies.subarray(0, 2)], [111n, 222n]);
  t.deepEqual([...usedLens.subarray(0, 2)], [0, 3000]);
  t.is(driver.freeDescs, num);
  t.is(driver.badUsed, 0);
});

test('the driver counts and skips used entries it never handed out', (t) => {
  const num = 8;
  const { ring, ringMem } = setup(num);
  const driver = new native.VringDriver(ringMem.buffer, num);
  driver.init();
  t.is(driver.addBurst(1, BigUint64Array.from([G]), Uint32Array.from([64]), null, null, BigUint64Array.from([7n])), 1);
  driver.publish();
  ring.setUsedElem(0, 5, 0); // never a head
  ring.setUsedElem(1, 0, 0); // the real one
  ring.usedIdx = 2; // claims 2 while 1 is in flight
  const cookies = new BigUint64Array(4);
  const lens = new Uint32Array(4);
  t.is(driver.harvest(cookies, lens), 0);
  t.is(driver.badUsed, 2); // the index claim and the bogus id
  t.is(driver.harvest(cookies, lens), 1);
  t.is(cookies[0], 7n);
  t.is(driver.freeDescs, num);
});

test('bad ring arguments are refused with a reason', (t) => {
  const mem = alignedMemory(3 * 4096);
  t.throws(() => new native.VringDriver(mem.buffer, 100), { instanceOf: RangeError, message: /power of two/ });
  t.throws(() => new native.VringDriver(mem.buffer, 1024), { instanceOf: RangeError, message: /too small/ });
  t.throws(() => new native.VringDriver(mem.buffer.subarray(64), 8), { instanceOf: RangeError, message: /aligned/ });
  t.throws(() => new native.VringDevice(mem.buffer, 8, [{ gva: 0n, buffer: mem.buffer, writable: true }, { gva: 16n, buffer: mem.buffer, writable: true }], 16), {
    instanceOf: RangeError,
    message: /regions\[1\]/,
  });
  t.throws(() => new native.VringDevice(mem.buffer, 8, [], 16, 'sideways' as RingDirection), { instanceOf: RangeError, message: /direction/ });
  t.throws(() => new native.VringDriver('nope' as unknown as Buffer, 8), { instanceOf: TypeError });
});

test('regionTranslate: a range is valid only wholly inside one region', (t) => {
  const a = 0x10000n;
  const regions = [
    { gva: 0x1000n, hva: a, len: 8192, writable: true },
    { gva: 0x3000n, hva: 0x90000n, len: 4096, writable: false },
  ];
  const table: Array<[bigint, number | bigint, boolean, bigint | null, string | null]> = [
    [0x1000n, 8192, true, a, null],
    [0x2fffn, 1, false, a + 0x1fffn, null],
    [0x2fffn, 2, false, null, 'addr_outside_region'],
    [0x2800n, 0x1000, false, null, 'addr_outside_region'],
    [0x3000n, 0, false, 0x90000n, null],
    [0x4000n, 0, false, null, 'addr_outside_region'],
    [0x3000n, 16, true, null, 'write_to_readonly'],
    [0xffff_ffff_ffff_fff0n, 64, false, null, 'len_overflow'],
  ];
  for (const [gva, len, write, hva, violation] of table) {
    t.deepEqual(native.regionTranslate(regions, gva, len, write), { hva, violation }, `gva ${gva} len ${len}`);
  }
  t.throws(() => native.regionTranslate([{ gva: 0n, hva: 1n, len: 0, writable: true }], 0n, 0, false), { instanceOf: RangeError });
});
