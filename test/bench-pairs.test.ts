// The bench's paired-ratio estimator (bench/pairs.ts) and the verdicts the
// targets take from it: pure functions, no bench run.
import test from 'ava';
import { pairedRatios, roundOrder, Timed, verdictAtLeast } from '../bench/pairs';
import { median } from '../bench/stats';

const w = (at: number, value: number, placement = 'slow'): Timed => ({ at, value, placement });

test('paired ratios follow the pairs where the medians of the windows do not', (t) => {
  // The host swings 2× between windows: xsw's windows landed twice in the fast swing, the peer's once.
  const xsw = [w(0, 5), w(20, 10), w(40, 10), w(60, 5)];
  const peer = [w(10, 4), w(30, 8), w(50, 4), w(70, 4)];
  const medians = median(xsw.map((x) => x.value)) / median(peer.map((x) => x.value));
  t.is(medians, 7.5 / 4); // ≥ 1.5 by the medians…
  const [r] = pairedRatios(xsw, peer);
  t.is(r.placement, 'slow');
  t.deepEqual(r.ratios, [1.25, 1.25, 2.5, 1.25]);
  t.is(r.median, 1.25); // …but three pairs of four say 1.25
  t.is(r.min, 1.25);
  t.is(r.max, 2.5);
  t.is(r.n, 4);
  t.is(verdictAtLeast([r], 1.5), 'not settled');
  t.is(verdictAtLeast([r], 1.2), 'met');
  t.is(verdictAtLeast([r], 3), 'missed');
});

test('a window pairs with the nearest window of the same placement, each window once', (t) => {
  const xsw = [w(0, 6), w(20, 6, 'fast'), w(40, 6), w(60, 6, 'changed')];
  const peer = [w(41, 3), w(21, 2, 'fast'), w(1, 4), w(61, 1, 'changed'), w(2, 100)];
  const rs = pairedRatios(xsw, peer);
  t.deepEqual(rs.map((r) => r.placement), ['fast', 'slow']);
  t.deepEqual(rs[0].ratios, [3]); // 6 / the fast window at 21
  t.deepEqual(rs[1].ratios, [6 / 4, 6 / 3]); // 0 ↔ 1 (nearer than 2), 40 ↔ 41; the window at 2 stays unpaired, changed windows never pair
});

test('no pair when the placements never meet; empty or zero windows are skipped', (t) => {
  t.deepEqual(pairedRatios([w(0, 5, 'fast')], [w(1, 5, 'slow')]), []);
  t.deepEqual(pairedRatios([w(0, 5)], [w(1, 0)]), []);
  t.deepEqual(pairedRatios([w(0, NaN)], [w(1, 3)]), []);
  t.is(verdictAtLeast([], 1.5), undefined);
});

test('a placement that misses outweighs one that is not settled', (t) => {
  t.is(verdictAtLeast([{ min: 1.4, max: 1.6 }, { min: 0.5, max: 0.9 }], 1.5), 'missed');
  t.is(verdictAtLeast([{ min: 1.6, max: 1.9 }, { min: 1.4, max: 1.6 }], 1.5), 'not settled');
  t.is(verdictAtLeast([{ min: 1.5, max: 1.6 }], 1.5), 'met');
});

test('each round starts one system later, so over as many rounds as systems each holds every place once', (t) => {
  const systems = ['xsw', 'xsw (B)', 'DPDK'];
  t.deepEqual(roundOrder(systems, 0), ['xsw', 'xsw (B)', 'DPDK']);
  t.deepEqual(roundOrder(systems, 1), ['xsw (B)', 'DPDK', 'xsw']);
  t.deepEqual(roundOrder(systems, 2), ['DPDK', 'xsw', 'xsw (B)']);
  t.deepEqual(roundOrder(systems, 3), roundOrder(systems, 0));
  for (let place = 0; place < systems.length; place++) {
    t.deepEqual([0, 1, 2].map((r) => roundOrder(systems, r)[place]).sort(), [...systems].sort());
  }
  t.deepEqual(roundOrder(['only'], 5), ['only']);
});
