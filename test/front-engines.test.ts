// The forwarding engines of xsw-front, each run as a process in a simulated
// domain while the test plays the back end on the shared rings.
import test from 'ava';
import { buildTestFrame, checkTestFrame } from '../frontend/frame';
import { Dom0Device } from './fixtures/front-dom0';
import { sleep, type Child } from '../harness/child';
import { FrontSim } from './fixtures/front-sim';

const OWN = Buffer.from([0, 0, 0, 0, 0, 0x11]);
const PEER = Buffer.from([0, 0, 0, 0, 0, 0x22]);
const OTHER = Buffer.from([0x02, 0, 0, 0, 0, 0x99]);

function frame(dst: Buffer, src: Buffer, len: number, fill: number): Buffer {
  const f = Buffer.alloc(len);
  dst.copy(f, 0);
  src.copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  for (let i = 14; i < len; i++) f[i] = (fill + i) & 0xff;
  return f;
}


async function collect(dev: Dom0Device, want: number, timeoutMs = 10000): Promise<Buffer[]> {
  return exchange(dev, [], want, timeoutMs);
}

/**
 * Plays the back end: delivers `frames` to the guest's RX ring, keeping at
 * most 128 in flight so that the guest's 256-entry TX ring never overflows,
 * and collects what the guest sends until `want` frames arrived.
 */
async function exchange(dev: Dom0Device, frames: Buffer[], want: number, timeoutMs = 10000): Promise<Buffer[]> {
  const got: Buffer[] = [];
  const deadline = Date.now() + timeoutMs;
  let next = 0;
  while ((got.length < want || next < frames.length) && Date.now() < deadline) {
    while (next < frames.length && next - got.length < 128 && dev.deliver(frames[next])) next++;
    got.push(...dev.takeTx());
    await sleep(1);
  }
  if (next < frames.length) throw new Error(`only ${next} of ${frames.length} frames could be delivered`);
  return got;
}

/** Waits until the guest has taken every delivered frame (its RX ring is full again). */
async function drained(dev: Dom0Device, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (dev.rx.pending() < dev.rx.num && Date.now() < deadline) await sleep(5);
}

async function withFront(args: string[], fn: (dev: Dom0Device, front: Child) => Promise<void>): Promise<Child> {
  const sim = await FrontSim.start();
  try {
    await sim.createDomain(1);
    const front = sim.spawnFront(1, ['--mac', '00:00:00:00:00:11', '--nb-mbuf', '1024', ...args]);
    try {
      await sim.waitPublished(1);
      const dev = await Dom0Device.attach(sim.grants, sim.dom0, 1);
      try {
        await fn(dev, front);
      } finally {
        front.kill('SIGTERM');
        const exit = await front.wait();
        if (exit.code !== 0) throw new Error(`xsw-front exited with ${JSON.stringify(exit)}: ${front.stderr}`);
        dev.detach();
      }
    } finally {
      front.kill('SIGKILL');
      await front.wait();
    }
    return front;
  } finally {
    await sim.stop();
  }
}

function finalJson(front: Child): { devices: Record<string, number | string>[] } {
  const last = front.stdout.trim().split('\n').pop() ?? '';
  const obj = JSON.parse(last);
  if (!obj.final) throw new Error(`not the final stats line: ${last}`);
  return obj;
}

test.serial('txonly: frames arrive intact and in sequence, exactly --count of them', async (t) => {
  const front = await withFront(['--fwd', 'txonly', '--count', '300', '--txpkts', '128', '--eth-peer', '00:00:00:00:00:22', '--json'], async (dev) => {
    const got = await collect(dev, 300);
    t.is(got.length, 300);
    got.forEach((f, i) => {
      const c = checkTestFrame(f);
      t.is(c.check, 'ok');
      t.is(c.seq, BigInt(i));
      t.is(f.length, 128);
      t.true(f.subarray(0, 6).equals(PEER) && f.subarray(6, 12).equals(OWN));
    });
    await sleep(200);
    t.is(dev.takeTx().length, 0, 'nothing after --count');
  });
  const s = finalJson(front).devices[0];
  t.is(s.tx_packets, 300);
  t.is(s.tx_bytes, 300 * 128);
  t.is(s.tx_done, 1);
  t.is(s.tx_dropped, 0);
});

// [mode, extra args, expected dst, expected src] for frames that arrive dst = OWN, src = OTHER
const forwarding: [string, string[], Buffer, Buffer][] = [
  ['mac', ['--eth-peer', '00:00:00:00:00:22'], PEER, OWN],
  ['mac', ['--eth-peer', '0,00:00:00:00:00:22'], PEER, OWN],  // testpmd's N,MAC form
  ['macswap', [], OTHER, OWN],
  ['io', [], OWN, OTHER],
];

for (const [mode, extra, dst, src] of forwarding) {
  test.serial(`${mode} ${extra.join(' ')}: received frames go back with dst ${dst.toString('hex')} and src ${src.toString('hex')}`, async (t) => {
    const sent = Array.from({ length: 600 }, (_, i) => frame(OWN, OTHER, 60 + (i % 1400), i));
    const front = await withFront(['--fwd', mode, ...extra], async (dev) => {
      const got = await exchange(dev, sent, sent.length);
      t.is(got.length, sent.length);
      got.forEach((f, i) => {
        const want = Buffer.from(sent[i]);
        dst.copy(want, 0);
        src.copy(want, 6);
        if (!f.equals(want)) t.fail(`frame ${i} differs`);
      });
    });
    t.regex(front.stdout, /^dev 0 00:00:00:00:00:11  RX pkts 600 bytes \d+ drops 0  TX pkts 600 bytes \d+ drops 0$/m);
  });
}

test.serial('rxonly --verify counts frames, and bad and out-of-order ones; --stats --json prints intervals', async (t) => {
  const front = await withFront(['--fwd', 'rxonly', '--verify', '--stats', '0.2', '--json'], async (dev) => {
    const frames = [];
    for (let seq = 0; seq < 20; seq++) if (seq !== 10) frames.push(buildTestFrame(100, OWN, PEER, BigInt(seq)));
    const bad = buildTestFrame(100, OWN, PEER, 20n);
    bad[50] ^= 0xff;
    frames.push(bad);
    await exchange(dev, frames, 0);
    await drained(dev);
    await sleep(500);  // at least one interval line
    t.is(dev.takeTx().length, 0, 'rxonly sends nothing');
  });
  const lines = front.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.true(lines.length >= 2);
  for (const l of lines) {
    t.false(Number.isNaN(Date.parse(l.time)));
    t.deepEqual(Object.keys(l.devices[0]).slice(0, 8), ['dev', 'mac', 'rx_packets', 'rx_bytes', 'rx_dropped', 'tx_packets', 'tx_bytes', 'tx_dropped']);
  }
  const s = finalJson(front).devices[0];
  t.is(s.mac, '00:00:00:00:00:11');
  t.is(s.rx_packets, 20);
  t.is(s.rx_bytes, 2000);
  t.is(s.rx_bad, 1);
  t.is(s.rx_out_of_order, 1);
  t.is(s.tx_packets, 0);
});

test.serial('--poll busy forwards too', async (t) => {
  await withFront(['--fwd', 'macswap', '--poll', 'busy'], async (dev) => {
    const got = await exchange(dev, Array.from({ length: 50 }, (_, i) => frame(OWN, OTHER, 64, i)), 50);
    t.is(got.length, 50);
  });
});
