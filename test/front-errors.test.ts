// Everything that stops xsw-front before it runs ends in one sentence on
// stderr naming the problem and the fix, a non-zero exit, and nothing left
// published.
import test from 'ava';
import { FrontSim } from './fixtures/front-sim';

async function withSim(fn: (sim: FrontSim) => Promise<void>, opts?: { gntallocLimit?: number }): Promise<void> {
  const sim = await FrontSim.start(opts);
  try {
    await fn(sim);
  } finally {
    await sim.stop();
  }
}

// [title, args, expected stderr]
const badFlags: [string, string[], RegExp][] = [
  ['a bad MAC', ['--mac', '00:11:22:33:44'], /--mac '00:11:22:33:44' is not six hex byte pairs/],
  ['a multicast MAC', ['--mac', '01:00:5e:00:00:01'], /multicast address/],
  ['the zero MAC', ['--mac', '00:00:00:00:00:00'], /--mac '00:00:00:00:00:00' is the zero MAC address, which no device may have/],
  ['an unknown option', ['--mac', '00:00:00:00:00:11', '--bogus'], /unknown option '--bogus'/],
  ['an unknown mode', ['--mac', '00:00:00:00:00:11', '--fwd', 'flowgen'], /argument 'flowgen' is invalid.*io, mac, macswap, rxonly, txonly, tap/],
  ['a ring size that is not a power of two', ['--mac', '00:00:00:00:00:11', '--ring-size', '300'], /--ring-size must be a power of two/],
  ['a ring size below 256 (the back end could not tell it from its page count)', ['--mac', '00:00:00:00:00:11', '--ring-size', '128'], /--ring-size.*256 to 32768/],
  ['no device at all', [], /no device to create: give --mac/],
  ['tap without --tap', ['--mac', '00:00:00:00:00:11', '--fwd', 'tap'], /--fwd tap needs the TAP interface to use: add --tap NAME/],
  ['--tap with another mode', ['--mac', '00:00:00:00:00:11', '--fwd', 'io', '--tap', 'x0'], /--tap only works with --fwd tap/],
  ['--verify outside rxonly', ['--mac', '00:00:00:00:00:11', '--verify'], /--verify checks received test frames in rxonly mode/],
  ['an eth-peer for a missing device', ['--mac', '00:00:00:00:00:11', '--eth-peer', '3,00:00:00:00:00:22'], /names device 3 but there are only 1/],
  ['a bad eth-peer', ['--mac', '00:00:00:00:00:11', '--eth-peer', 'x,00:00:00:00:00:22'], /does not start with a device number/],
  ['a txonly frame above the largest frame', ['--mac', '00:00:00:00:00:11', '--fwd', 'txonly', '--txpkts', '3000'], /raise --max-pkt-len to at least 3000/],
  ['the same MAC twice', ['--mac', '00:00:00:00:00:11', '--mac', '00:00:00:00:00:11'], /the same --mac is given twice/],
  ['a burst above 32', ['--mac', '00:00:00:00:00:11', '--burst', '64'], /--burst must be a whole number from 1 to 32/],
];

for (const [title, args, want] of badFlags) {
  test(`${title} is refused with a sentence`, async (t) => {
    await withSim(async (sim) => {
      await sim.createDomain(1);
      const front = sim.spawnFront(1, args);
      const exit = await front.wait();
      t.not(exit.code, 0);
      t.regex(front.stderr, want);
      t.is(front.stderr.trim().split('\n').length, 1, front.stderr);
      t.deepEqual(await sim.keys(1), {});
    });
  });
}

async function refused(t: import('ava').ExecutionContext, sim: FrontSim, domid: number, args: string[], want: RegExp): Promise<void> {
  const front = sim.spawnFront(domid, args);
  const exit = await front.wait();
  t.is(exit.code, 1);
  const lines = front.stderr.trim().split('\n').filter((l) => !l.startsWith('{'));  // pino lines are JSON
  t.is(lines.length, 1, front.stderr);
  t.regex(lines[0] ?? '', want);
}

test('no domid key: says to run inside a guest or under xsw-sim exec', async (t) => {
  await withSim(async (sim) => {
    await sim.createDomain(2, { domidKey: false });
    await refused(t, sim, 2, ['--mac', '00:00:00:00:00:11'], /^xsw-front: cannot find this guest's domain id .*xsw-sim exec/);
  });
});

test('control/dpdk missing: says that the back end provisions it', async (t) => {
  await withSim(async (sim) => {
    await sim.createDomain(2, { provision: false });
    await refused(t, sim, 2, ['--mac', '00:00:00:00:00:11'],
      /^xsw-front: control\/dpdk in domain 2's XenStore \(\/local\/domain\/2\/control\/dpdk\) is missing or not writable by this guest: dom0's xsw-backend provisions it/);
  });
});

test('control/dpdk read-only to the guest: the same sentence, and nothing was granted', async (t) => {
  await withSim(async (sim) => {
    await sim.createDomain(2, { provision: false });
    await sim.dom0.mkdir('/local/domain/2/control/dpdk');
    await sim.dom0.setPerms('/local/domain/2/control/dpdk', ['n0', 'r2']);
    await refused(t, sim, 2, ['--mac', '00:00:00:00:00:11'], /is missing or not writable by this guest: dom0's xsw-backend provisions it/);
    t.deepEqual(await sim.keys(2), {});
  });
});

test('an exhausted gntalloc limit says how to raise it and publishes nothing', async (t) => {
  await withSim(async (sim) => {
    await sim.createDomain(2);
    await refused(t, sim, 2, ['--mac', '00:00:00:00:00:11'],
      /^xsw-front: the gntalloc limit was reached while granting 8192 pages for the mempool: start the simulation with a higher limit \(xsw-sim up --gntalloc-limit N\)/);
    t.deepEqual(await sim.keys(2), {});
    // Within the limit it works.
    const ok = sim.spawnFront(2, ['--mac', '00:00:00:00:00:11', '--nb-mbuf', '512', '--ring-size', '256', '--duration', '0.3']);
    t.is((await ok.wait()).code, 0, ok.stderr);
  }, { gntallocLimit: 1000 });
});

test('too few mbufs for the ring says what to change', async (t) => {
  await withSim(async (sim) => {
    await sim.createDomain(2);
    await refused(t, sim, 2, ['--mac', '00:00:00:00:00:11', '--nb-mbuf', '100'],
      /needs at least 288 mbufs but has 100: raise --nb-mbuf or lower --ring-size/);
    t.deepEqual(await sim.keys(2), {});
  });
});
