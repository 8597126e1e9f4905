// Parsing testpmd's `show fwd stats all` with --record-burst-stats
// (bench/testpmd.ts), the source of the bench's empty-poll shares: pure, no testpmd run.
import test from 'ava';
import { parseBurstStats, parseCoreCycles } from '../bench/testpmd';
import { pollFacts } from '../bench/scenarios';

// As DPDK 22.11's testpmd prints it (two ports, io forwarding).
const SHOW_FWD_STATS = `
  ---------------------- Forward statistics for port 0  ----------------------
  RX-packets: 4000000        RX-dropped: 0             RX-total: 4000000
  RX-bursts : 6250000 [98% of 0 pkts + 2% of 32 pkts]
  TX-packets: 4000000        TX-dropped: 0             TX-total: 4000000
  TX-bursts : 125000 [100% of 32 pkts]
  ----------------------------------------------------------------------------

  ---------------------- Forward statistics for port 1  ----------------------
  RX-packets: 1000000        RX-dropped: 0             RX-total: 1000000
  RX-bursts : 3750000 [90% of 0 pkts + 6% of 32 pkts + 4% of other]
  TX-packets: 1000000        TX-dropped: 0             TX-total: 1000000
  TX-bursts : 31250 [100% of 32 pkts]
  ----------------------------------------------------------------------------
`.split('\n');

test('RX polls, empty polls and frames are summed over the ports', (t) => {
  const b = parseBurstStats(SHOW_FWD_STATS);
  t.is(b.rxBursts, 10_000_000);
  t.is(b.rxEmpty, 6_250_000 * 0.98 + 3_750_000 * 0.9);
  t.is(b.rxPackets, 5_000_000);
  const f = pollFacts('switch', b.rxBursts, b.rxEmpty, b.rxPackets);
  t.is(f.switch_empty_pct.toFixed(2), '95.00');
  t.is(f.switch_frames_per_poll, 0.5);
});

test('TX bursts and ports without RX bursts count nothing; no polls, no facts', (t) => {
  const b = parseBurstStats(['  RX-packets: 0   RX-dropped: 0   RX-total: 0', '  TX-bursts : 31250 [100% of 32 pkts]']);
  t.deepEqual(b, { rxBursts: 0, rxEmpty: 0, rxPackets: 0 });
  t.deepEqual(pollFacts('guest', b.rxBursts, b.rxEmpty, b.rxPackets), {});
  t.deepEqual(parseBurstStats(['  RX-bursts : 200 [100% of 0 pkts]']), { rxBursts: 200, rxEmpty: 200, rxPackets: 0 });
});

test('--record-core-cycles: the busy cycles and the TSC rate; a busy share when given', (t) => {
  const line = '  CPU cycles/packet=175.55 (total cycles=6076411848 / total mac packets=34612640) at 2450 MHz Clock';
  t.deepEqual(parseCoreCycles(line), { busyCycles: 6076411848, tscMhz: 2450 });
  t.is(parseCoreCycles('  CPU cycles/packet=nan'), undefined);
  t.deepEqual(pollFacts('guest', 0, undefined, undefined, 49.5), { guest_busy_pct: 49.5 });
  t.deepEqual(pollFacts('switch', 100, 50, 200, 97), { switch_busy_pct: 97, switch_empty_pct: 50, switch_frames_per_poll: 2 });
  t.deepEqual(pollFacts('switch', 100, 50, 200, NaN), { switch_empty_pct: 50, switch_frames_per_poll: 2 });
});

test('a side counted without empty polls reports frames per poll only', (t) => {
  t.deepEqual(pollFacts('switch', 1000, undefined, 250), { switch_frames_per_poll: 0.25 });
  t.deepEqual(pollFacts('guest', 1000, 990, undefined), { guest_empty_pct: 99 });
});
