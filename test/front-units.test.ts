// The front end's pure pieces, table-driven: MACs, eth-peers, the
// permission rule for control/dpdk, key order, test frames, stats lines.
import test from 'ava';
import { buildTestFrame, checkTestFrame, crc32 } from '../frontend/frame';
import { deriveMac, formatMac, parseDeviceMac, parseEthPeer } from '../frontend/mac';
import { buildProgram, checkConfig, defaultRingSize, peerFor } from '../frontend/options';
import { canWrite } from '../frontend/publish';
import { deviceEntries, mempoolEntries } from '../schema/dpdk';
import { parseStatsJson, statsJson, statsLine } from '../frontend/stats';
import type { Perm } from '../xenstore/client';

test('MACs parse in either case, print lower-case, and bad ones are refused', (t) => {
  t.is(formatMac(parseDeviceMac('00:16:3E:0a:Bc:01')), '00:16:3e:0a:bc:01');
  for (const bad of ['', '00:11:22:33:44', '00:11:22:33:44:55:66', '00-11-22-33-44-55', '0:11:22:33:44:55', 'zz:11:22:33:44:55', '01:00:5e:00:00:01', '00:00:00:00:00:00']) {
    t.throws(() => parseDeviceMac(bad), { name: 'FrontError' }, bad);
  }
  t.is(formatMac(deriveMac(0x1234, 7)), '00:16:3e:12:34:07');
});

test("eth-peer takes MAC or testpmd's N,MAC", (t) => {
  t.deepEqual(parseEthPeer('00:00:00:00:00:22'), { mac: Buffer.from([0, 0, 0, 0, 0, 0x22]) });
  t.deepEqual(parseEthPeer('1,ff:ff:ff:ff:ff:ff'), { device: 1, mac: Buffer.alloc(6, 0xff) });
  t.throws(() => parseEthPeer('a,00:00:00:00:00:22'));
  t.throws(() => parseEthPeer('1,00:00:00:00:22'));
});

test('peerFor: a device-specific peer beats the common one, which beats the default', (t) => {
  const program = buildProgram();
  program.parse(['node', 'x', '--mac', '00:00:00:00:00:11', '--mac', '00:00:00:00:00:12', '--eth-peer', '00:00:00:00:00:aa', '--eth-peer', '1,00:00:00:00:00:bb']);
  const cfg = checkConfig(program.opts(), false);
  t.is(formatMac(peerFor(cfg, 0)), '00:00:00:00:00:aa');
  t.is(formatMac(peerFor(cfg, 1)), '00:00:00:00:00:bb');
  const solo = buildProgram();
  solo.parse(['node', 'x', '--mac', '00:00:00:00:00:11']);
  t.is(formatMac(peerFor(checkConfig(solo.opts(), false), 0)), '02:00:00:00:00:00');
});

test('the default ring size: the largest power of two up to 4096 that each device\'s mbufs fill with a burst, at least 256', (t) => {
  t.is(defaultRingSize(8192, 1), 4096);
  t.is(defaultRingSize(8192, 2), 2048);
  t.is(defaultRingSize(8192, 8), 512);
  t.is(defaultRingSize(8192, 32), 256);
  t.is(defaultRingSize(1024, 1), 512, '1024 mbufs hold 512 + 32, not 1024 + 32');
  t.is(defaultRingSize(4128, 1), 4096);
  t.is(defaultRingSize(4127, 1), 2048);
  t.is(defaultRingSize(4256, 1, 9018), 4096, 'jumbo: a burst is 5 buffers a frame');
  t.is(defaultRingSize(4255, 1, 9018), 2048);
  const config = (...args: string[]) => {
    const program = buildProgram();
    program.parse(['node', 'x', '--mac', '00:00:00:00:00:11', ...args]);
    return checkConfig(program.opts(), false);
  };
  t.is(config('--nb-mbuf', '2048').ringSize, 1024);
  t.is(config('--ring-size', '256').ringSize, 256, 'an explicit size is kept');
});

test('--tap alone selects tap mode', (t) => {
  const program = buildProgram();
  program.parse(['node', 'x', '--mac', '00:00:00:00:00:11', '--tap', 'xsw0']);
  t.is(checkConfig(program.opts(), false).fwd, 'tap');
});

const p = (access: Perm['access'], domid: number): Perm => ({ access, domid });
// [perms, domid, may write]
const permRows: [Perm[], number, boolean][] = [
  [[p('n', 0), p('b', 3)], 3, true],
  [[p('n', 0), p('w', 3)], 3, true],
  [[p('n', 0), p('r', 3)], 3, false],
  [[p('n', 0)], 3, false],
  [[p('b', 0)], 3, true], // the owner's letter is everyone's default
  [[p('r', 0), p('n', 3)], 3, false],
  [[p('n', 3)], 3, true], // the owner may always write
  [[p('n', 0), p('b', 4)], 3, false],
];
for (const [perms, domid, want] of permRows) {
  test(`canWrite(${perms.map((x) => x.access + x.domid).join(',')}) for domain ${domid} is ${want}`, (t) => {
    t.is(canWrite(perms, domid), want);
  });
}

test("keys come in the guide's order with event_type_start last", (t) => {
  t.deepEqual(mempoolEntries(2, { gref: '10,11', va: '0x7f00' }), [
    ['2_mempool_gref', '10,11'],
    ['2_mempool_va', '0x7f00'],
  ]);
  t.deepEqual(
    deviceEntries(1, { rxGref: '20', txGref: '21', mac: '00:00:00:00:00:11', flagGref: 22 }).map(([k]) => k),
    ['1_rx_vring_gref', '1_tx_vring_gref', '1_ether_addr', '1_vring_flag', 'event_type_start_1'],
  );
});

test('test frames: zlib CRC, round trip, and damage detected', (t) => {
  t.is(crc32(Buffer.from('123456789')), 0xcbf43926);
  const f = buildTestFrame(64, Buffer.alloc(6, 0xff), Buffer.from([0, 0, 0, 0, 0, 1]), 42n);
  t.deepEqual(checkTestFrame(f), { check: 'ok', seq: 42n });
  const g = Buffer.from(f);
  g[40] ^= 1;
  t.is(checkTestFrame(g).check, 'bad-checksum');
  t.is(checkTestFrame(f.subarray(0, 63)).check, 'bad-length');
  t.is(checkTestFrame(Buffer.alloc(60)).check, 'not-test-frame');
  t.throws(() => buildTestFrame(20, Buffer.alloc(6), Buffer.alloc(6), 0n));
});

test('stats: the human line and the JSON object', (t) => {
  const stats = { rx_packets: 1, rx_bytes: 64, rx_dropped: 2, tx_packets: 3, tx_bytes: 192, tx_dropped: 4, rx_nombuf: 0, rx_bad: 0, rx_out_of_order: 0, tx_done: 0 };
  t.is(statsLine({ dev: 0, mac: '00:00:00:00:00:11', stats }), 'dev 0 00:00:00:00:00:11  RX pkts 1 bytes 64 drops 2  TX pkts 3 bytes 192 drops 4');
  const obj = JSON.parse(statsJson([{ dev: 0, mac: '00:00:00:00:00:11', stats }], new Date(0)));
  t.deepEqual(obj, { time: '1970-01-01T00:00:00.000Z', devices: [{ dev: 0, mac: '00:00:00:00:00:11', ...stats }] });
});

test('stats: a JSON line reads back as it was written; other lines do not', (t) => {
  const stats = { rx_packets: 1, rx_bytes: 64, rx_dropped: 2, tx_packets: 3, tx_bytes: 192, tx_dropped: 4, rx_nombuf: 5, rx_bad: 6, rx_out_of_order: 7, tx_done: 1 };
  const line = statsJson([{ dev: 0, mac: '00:00:00:00:00:11', stats }, { dev: 1, mac: '00:00:00:00:00:12', stats }], new Date(5000), true);
  t.deepEqual(parseStatsJson(line), {
    time: 5000,
    final: true,
    devices: [{ dev: 0, mac: '00:00:00:00:00:11', ...stats }, { dev: 1, mac: '00:00:00:00:00:12', ...stats }],
  });
  t.is(parseStatsJson(statsJson([], new Date(0)))?.devices.length, 0);
  for (const other of ['dev 0 00:00:00:00:00:11  RX pkts 1', '{"level":30,"msg":"x"}', '{"time":', '']) t.is(parseStatsJson(other), undefined, other);
});
