// The latency guest: two devices of one guest, A and B. A sends one frame to
// B's MAC; the switch delivers it into B; B sends it back (MACs swapped); the
// switch delivers it into A. The round trip crosses the back end twice, the
// same ring hops as guest → guest → guest. Both devices are polled by this
// one thread (pinned by the caller), so with the back end on the other CPU
// there are two pollers on two CPUs and no scheduler wait in the figure.
// Prints one JSON line: {"rtt_us": [...], "lost": N}.
// Usage (as a domain): node pinger.js COUNT WARMUP SIZE [GAP_US [PEER_MAC]]
// GAP_US: a pause before each ping (the back end and guests fall asleep).
// PEER_MAC: only A is opened and pings go to that MAC, where another guest
// (xsw-front --fwd macswap) sends them back: the wake-up round trip.
import { FrontDevice } from '../frontend/api';
import { benchFrame } from './frames';

const MAC_A = '02:00:00:00:0a:01';
const MAC_B = '02:00:00:00:0a:02';

function spinFor(dev: FrontDevice, seq: number, deadlineNs: bigint): Buffer | undefined {
  while (process.hrtime.bigint() < deadlineNs) {
    for (const f of dev.rxBurst(32)) if (f.length >= 18 && f.readUInt32BE(14) === seq) return f;
  }
  return undefined;
}

async function main(): Promise<void> {
  const [count, warmup, size, gapUs] = process.argv.slice(2, 6).map(Number);
  const peer = process.argv[6];
  const a = await FrontDevice.open({ mac: MAC_A, nbMbuf: 1024 });
  const b = peer ? undefined : await FrontDevice.open({ mac: MAC_B, nbMbuf: 1024 });
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const rtt: number[] = [];
  let lost = 0;
  let seq = 1;
  // Until the back end has attached both devices, pings are lost: wait (up to 20 s) for the first echo.
  const ready = Date.now() + 20000;
  const once = (timeoutNs: bigint): number | undefined => {
    const s = seq++;
    const ping = benchFrame(size, peer ?? MAC_B, MAC_A, undefined, s);
    if (gapUs > 0) Atomics.wait(pause, 0, 0, gapUs / 1000);
    const t0 = process.hrtime.bigint();
    if (a.txBurst([ping]) !== 1) return undefined;
    if (!b) return spinFor(a, s, t0 + timeoutNs) ? Number(process.hrtime.bigint() - t0) / 1000 : undefined;
    const there = spinFor(b, s, t0 + timeoutNs);
    if (!there) return undefined;
    const back = Buffer.from(there);
    there.copy(back, 0, 6, 12);
    there.copy(back, 6, 0, 6);
    if (b.txBurst([back]) !== 1) return undefined;
    if (!spinFor(a, s, t0 + timeoutNs)) return undefined;
    return Number(process.hrtime.bigint() - t0) / 1000;
  };
  while (once(100_000_000n) === undefined) {
    if (Date.now() > ready) throw new Error('no echo within 20 s: is xsw-backend running with --vm2vm?');
  }
  for (let i = 0; i < warmup; i++) once(50_000_000n);
  for (let i = 0; i < count; i++) {
    const us = once(50_000_000n);
    if (us === undefined) lost++;
    else rtt.push(us);
  }
  process.stdout.write(`${JSON.stringify({ rtt_us: rtt.map((x) => Math.round(x * 100) / 100), lost })}\n`);
  await a.close();
  await b?.close();
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`pinger: ${err.message}\n`);
    process.exit(1);
  },
);
