// vhost-user ports with the real DPDK: dpdk-testpmd (Debian's dpdk-dev 22.11)
// with a virtio_user port on a socket of xsw-backend, next to Xen guests on
// the simulated platform. Both socket modes (xsw listens; testpmd listens
// with server=1 and xsw connects), both directions, two testpmds through the
// switch, the NIC with --no-vm2vm, and xsw killed and restarted under
// traffic. testpmd missing is a failure with one sentence, never a skip.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Child } from '../harness/child';
import { lastJson, Rig, statsUntil } from './fixtures/backend-rig';
import { requireTestpmd, stopTestpmd, testpmd as startTestpmd, testpmdCounts, TestpmdOptions } from './fixtures/testpmd';

const CHECKER = path.join(__dirname, 'fixtures', 'testpmd-frame-checker.js');
const X = '02:00:00:00:00:11'; // the Xen guest
const TPA = '02:00:00:00:01:01';
const TPB = '02:00:00:00:01:02';
const FRONT = ['--nb-mbuf', '2048', '--log-level', 'warn'];

interface Dev { slot: number; domid: number; mac: string; vlan: number; state: string; kind: string; path?: string; tx_total: number; tx_dropped: number; rx_total: number; rx_dropped: number; drops: Record<string, number> }
interface Stats { devices: Dev[]; nic: { rx: number; tx: number; dropped: number } }

const dev = (s: Stats, mac: string): Dev | undefined => s.devices.find((d) => d.mac === mac);
const delivered = (d: Dev | undefined): number => (d ? d.rx_total - d.rx_dropped : 0);
let n = 0;
const prefix = (): string => `xswvh${process.pid}x${n++}`;
const tmpSock = (dir: string, name: string): string => path.join(dir, name);

async function checkerResult(c: Child): Promise<{ rx: number; good: number; bad: number; firstBad: string }> {
  c.kill('SIGTERM');
  await c.exited;
  const line = c.out.find((l) => l.startsWith('{'));
  if (!line) throw new Error(`the frame checker printed no result${c.tail()}`);
  return JSON.parse(line) as { rx: number; good: number; bad: number; firstBad: string };
}

test.before(() => {
  requireTestpmd();
});

/** testpmds of the running test, killed when it ends whatever happened. */
const running: Child[] = [];
const testpmd = (o: TestpmdOptions): Child => {
  const p = startTestpmd(o);
  running.push(p);
  return p;
};
test.afterEach.always(async () => {
  for (const p of running.splice(0)) {
    p.kill('SIGKILL');
    await p.exited;
  }
});

let dir = '';
test.beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xsw-vhost-'));
});

test.serial('xsw listens: testpmd txonly -> xsw -> a Xen guest receives exactly what testpmd sent, every frame checked', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    const sock = tmpSock(dir, 'a.sock');
    const be = rig.backend(['--vhost-user', sock, '--stats', '1', '--json'], { nic: false });
    await be.waitLine('err', /listening/);
    const checker = rig.guest(1, [X, TPA, '64'], CHECKER);
    await be.waitLine('err', /MAC_ADDRESS 02:00:00:00:00:11 and VLAN_TAG 1000 registered/);
    await checker.waitLine('out', /^ready$/);
    const tp = testpmd({ sock, fwd: 'txonly', mac: TPA, peer: X, txpkts: 64, prefix: prefix() });
    // Its MAC is learned from its first frame; the registration line is the guide's.
    await be.waitLine('err', /MAC_ADDRESS 02:00:00:00:01:01 and VLAN_TAG 1001 registered \(vhost-user/, { timeoutMs: 30000 });
    await statsUntil<Stats>(be, (s) => delivered(dev(s, X)) > 5000, 20000);
    const sent = await stopTestpmd(tp);
    // The peer left: its device is detached, its last counters stay in the stats.
    await be.waitLine('err', /device detached and its memory unmapped/);
    const s = await statsUntil<Stats>(be, (x) => dev(x, TPA)?.state === 'removed', 5000);
    const r = await checkerResult(checker);
    const vh = dev(s, TPA)!;
    const g = dev(s, X)!;
    t.is(vh.kind, 'vhost-user');
    t.is(vh.path, sock);
    t.is(g.kind, 'pmd');
    // testpmd keeps its ring full; when it stops its port (ENABLE 0) the switch lets go at once,
    // so at most one ring (256) of what it counted as sent is left unread, and never more is read.
    t.true(vh.tx_total <= sent.tx && sent.tx - vh.tx_total <= 256, `switch took ${vh.tx_total}, testpmd sent ${sent.tx}`);
    t.is(r.bad, 0, r.firstBad);
    t.true(r.rx > 5000);
    t.is(r.rx, delivered(g), 'what the switch delivered is what the guest received');
    t.is(vh.tx_total - vh.tx_dropped, delivered(g));
    t.deepEqual(Object.keys(g.drops).filter((k) => k !== 'rx_no_buffer'), [], JSON.stringify(g.drops));
  } finally {
    await rig.close();
  }
});

test.serial('xsw connects (testpmd server=1): xsw-front txonly -> xsw -> testpmd rxonly counts every frame and byte', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    const sock = tmpSock(dir, 'b.sock');
    const tp = testpmd({ sock, server: true, fwd: 'rxonly', mac: TPB, prefix: prefix() });
    // rxonly never sends, so its MAC cannot be learned: it is given.
    const be = rig.backend(['--vhost-user', `${sock},client,mac=${TPB}`, '--stats', '1', '--json'], { nic: false });
    await be.waitLine('err', /MAC_ADDRESS 02:00:00:00:01:02 and VLAN_TAG 1000 registered/, { timeoutMs: 30000 });
    // testpmd fills its receive ring once it starts forwarding.
    await tp.waitLine('out', /rxonly packet forwarding - ports=1/, { timeoutMs: 30000 });
    const N = 4000;
    rig.guest(1, ['--mac', X, '--fwd', 'txonly', '--eth-peer', TPB, '--txpkts', '100', '--count', String(N), '--rate', '10000', ...FRONT]);
    const s = await statsUntil<Stats>(be, (x) => (dev(x, X)?.tx_total ?? 0) >= N, 20000);
    const got = delivered(dev(s, TPB));
    t.true(got > N / 4, `only ${got} of ${N} delivered: ${JSON.stringify(s)}`);
    t.is(dev(s, X)!.tx_total - dev(s, X)!.tx_dropped, got);
    // testpmd's own port counters (printed every second) agree, frames and bytes.
    await tp.waitFor('testpmd to count every frame', () => (testpmdCounts(tp)?.rx === got ? true : undefined), 5000);
    const c = testpmdCounts(tp)!;
    t.is(c.rxBytes, got * 100);
    const fwd = await stopTestpmd(tp);
    t.is(fwd.rx, got);
  } finally {
    await rig.close();
  }
});

test.serial('two testpmds exchange through xsw: txonly (xsw listens) -> rxonly (xsw connects)', async (t) => {
  const rig = await Rig.start();
  try {
    const sa = tmpSock(dir, 'a.sock');
    const sb = tmpSock(dir, 'b.sock');
    const b = testpmd({ sock: sb, server: true, fwd: 'rxonly', mac: TPB, prefix: prefix() });
    const be = rig.backend(['--vhost-user', sa, '--vhost-user', `${sb},client,mac=${TPB}`, '--stats', '1', '--json'], { nic: false });
    await be.waitLine('err', /MAC_ADDRESS 02:00:00:00:01:02 and VLAN_TAG 1000 registered/, { timeoutMs: 30000 });
    const a = testpmd({ sock: sa, fwd: 'txonly', mac: TPA, peer: TPB, txpkts: 128, prefix: prefix() });
    await be.waitLine('err', /MAC_ADDRESS 02:00:00:00:01:01 and VLAN_TAG 1001 registered/, { timeoutMs: 30000 });
    await statsUntil<Stats>(be, (s) => delivered(dev(s, TPB)) > 5000, 20000);
    const sent = await stopTestpmd(a);
    const s = await statsUntil<Stats>(be, (x) => dev(x, TPA)?.state === 'removed', 5000);
    const got = delivered(dev(s, TPB));
    const took = dev(s, TPA)!.tx_total;
    t.true(took <= sent.tx && sent.tx - took <= 256, `switch took ${took}, testpmd sent ${sent.tx}`);
    await b.waitFor('testpmd B to count every frame', () => (testpmdCounts(b)?.rx === got ? true : undefined), 5000);
    t.is(testpmdCounts(b)!.rxBytes, got * 128);
    t.is((await stopTestpmd(b)).rx, got);
  } finally {
    await rig.close();
  }
});

test.serial('--no-vm2vm: testpmd frames leave through the NIC tagged with the port\'s VLAN (1000 + slot)', async (t) => {
  const rig = await Rig.start();
  try {
    const sock = tmpSock(dir, 'a.sock');
    const be = rig.backend(['--no-vm2vm', '--vhost-user', `${sock},mac=${TPA}`]);
    await be.waitLine('err', /listening/);
    const cap = await rig.capture(['--listen-src', TPA, '--expect', '200', '--wait-ms', '20000']);
    const tp = testpmd({ sock, fwd: 'txonly', mac: TPA, peer: '02:00:00:00:00:99', txpkts: 80, prefix: prefix() });
    await be.waitLine('err', /MAC_ADDRESS 02:00:00:00:01:01 and VLAN_TAG 1000 registered/, { timeoutMs: 30000 });
    await cap.exited;
    await stopTestpmd(tp);
    const frames = (JSON.parse(cap.out.join('')) as { frames: { dst: string; src: string; aux_vlan: number | null; tags: [number, number][]; len: number }[] }).frames;
    t.true(frames.length >= 200, `${frames.length} frames captured`);
    for (const f of frames) {
      const vlan = f.aux_vlan ?? f.tags[0]?.[1];
      t.is(vlan, 1000);
      t.is(f.dst, '02:00:00:00:00:99');
      t.is(f.len - (f.aux_vlan === null ? 4 : 0), 80);
    }
  } finally {
    await rig.close();
  }
});

test.serial('xsw SIGKILLed under testpmd traffic (server=1) and restarted: traffic resumes, testpmd untouched, nothing repeated', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    const sock = tmpSock(dir, 'a.sock');
    const tp = testpmd({ sock, server: true, fwd: 'txonly', mac: TPA, peer: X, txpkts: 64, prefix: prefix() });
    const args = ['--vhost-user', `${sock},client`, '--stats', '1', '--json'];
    const be1 = rig.backend(args, { nic: false });
    await be1.waitLine('err', /watching/);
    const checker = rig.guest(1, [X, TPA, '64'], CHECKER);
    await checker.waitLine('out', /^ready$/);
    await be1.waitLine('err', /MAC_ADDRESS 02:00:00:00:01:01 and VLAN_TAG 100\d registered/, { timeoutMs: 30000 });
    await statsUntil<Stats>(be1, (s) => delivered(dev(s, X)) > 5000, 20000);
    be1.kill('SIGKILL');
    await be1.exited;
    const before = delivered(dev(lastJson<Stats>(be1)!, X));
    const be2 = rig.backend(args, { nic: false });
    await be2.waitLine('err', /MAC_ADDRESS 02:00:00:00:00:11 and VLAN_TAG 100\d registered/);
    await be2.waitLine('err', /MAC_ADDRESS 02:00:00:00:01:01 and VLAN_TAG 100\d registered/, { timeoutMs: 30000 });
    await statsUntil<Stats>(be2, (s) => delivered(dev(s, X)) > 5000, 20000);
    t.true(tp.running, 'testpmd was not restarted');
    const sent = await stopTestpmd(tp);
    const r = await checkerResult(checker);
    t.is(r.bad, 0, r.firstBad);
    t.true(r.rx > before + 5000, `${r.rx} received, ${before} before the kill`);
    t.true(r.rx <= sent.tx, `${r.rx} received but testpmd sent ${sent.tx}: frames were repeated`);
  } finally {
    await rig.close();
  }
});
