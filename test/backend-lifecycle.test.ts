// Lifecycle end to end: a back end killed and restarted under traffic, a
// guest killed under traffic, and 200 attach/detach cycles leaving nothing
// behind in the back end (mappings, fds, threads).
import test from 'ava';
import fs from 'node:fs';
import { PAGE_SIZE, VRING_FLAG_LIVE, vringLayout } from '../native/abi';
import { Grants } from '../native/grants';
import { vringNative } from '../native/vring';
import { XenStoreClient } from '../xenstore/client';
import { sleep, type Child } from '../harness/child';
import { Rig, type WireFlow, type WireProgress } from './fixtures/backend-rig';

const G1 = '00:00:00:00:00:11';
const G2 = '00:00:00:00:00:22';
const G3 = '00:00:00:00:00:33';
const GEN = '00:00:00:00:00:01';
const FRONT = ['--nb-mbuf', '512', '--log-level', 'warn', '--json'];

interface FrontStats { devices: { rx_packets: number; tx_packets: number; tx_dropped: number; rx_dropped: number }[] }

async function finalFrontStats(p: Child): Promise<FrontStats['devices'][0]> {
  p.kill('SIGTERM');
  await p.exited;
  const line = p.out.filter((l) => l.startsWith('{')).at(-1);
  if (!line) throw new Error(`xsw-front printed no stats: ${p.err.join('\n')}`);
  return (JSON.parse(line) as FrontStats).devices[0];
}

const count = (p: Child, re: RegExp): number => p.logs().filter((l) => re.test(l.msg)).length;

async function waitCount(p: Child, re: RegExp, n: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (count(p, re) < n) {
    if (Date.now() > deadline) throw new Error(`expected ${n} log lines matching ${re}, saw ${count(p, re)}`);
    await sleep(5);
  }
}

/**
 * Waits until `done` holds for the generator's progress. Tied to progress, not
 * to time: it fails only when the frames captured stop growing for STALL_MS,
 * however slowly they grow on a loaded machine.
 */
const STALL_MS = 20000;
async function flowUntil(flow: WireFlow, what: string, done: (p: WireProgress) => boolean): Promise<WireProgress> {
  let seen = -1;
  let movedAt = Date.now();
  for (;;) {
    const p = await flow.progress();
    if (done(p)) return p;
    if (p.captured !== seen) {
      seen = p.captured;
      movedAt = Date.now();
    } else if (Date.now() - movedAt > STALL_MS) {
      throw new Error(`waiting for ${what}: no frame came back for ${STALL_MS / 1000} s (sent ${p.sent}, captured ${p.captured})`);
    }
    await sleep(20);
  }
}

test.serial('kill -9 of the back end under traffic: guests keep their devices, nothing vanishes from a guest ring', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    await rig.createDomain(2);
    const be = rig.backend(['--vm2vm']);
    await be.waitLine('err', /watching/);
    const f1 = rig.guest(1, ['--mac', G1, '--fwd', 'mac', '--eth-peer', G2, ...FRONT]);
    await be.waitLog(/MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
    const f2 = rig.guest(2, ['--mac', G2, '--fwd', 'mac', '--eth-peer', G3, ...FRONT]);
    await be.waitLog(/MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1001 registered/);
    // The wire -> guest 1 -> guest 2 -> the wire, 1 frame a millisecond for as
    // long as the steps below take.
    const flow = rig.wireUntilStopped(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', '1000000', '--gap-ms', '1', '--wait-ms', '2000']);
    // Kill once frames have made the whole trip through the first back end.
    const before = await flowUntil(flow, 'frames through the first back end', (p) => p.captured >= 20);
    be.kill('SIGKILL');
    await be.exited;
    const be2 = rig.backend(['--vm2vm']);
    await be2.waitLog(/MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
    await be2.waitLog(/MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1001 registered/);
    // Frames sent from here on can only pass through the second back end.
    const restarted = await flow.progress();
    await flowUntil(flow, 'frames sent after the restart', (p) => p.last_seq >= restarted.sent + 20);
    const r = await flow.stop();
    t.is(f1.child.exitCode, null, 'guest 1 never restarted');
    t.is(f2.child.exitCode, null, 'guest 2 never restarted');
    const seqs = r.frames.map((f) => f.seq);
    t.log(`sent ${r.sent}, captured ${seqs.length}: ${before.captured} before the kill (of ${before.sent} sent), ` +
      `the restart done after ${restarted.sent} sent; first ${seqs.slice(0, 3)} last ${seqs.slice(-3)}`);
    t.true(seqs.some((s) => s < before.sent), 'frames before the restart were delivered');
    t.true(seqs.some((s) => s >= restarted.sent), 'frames after the restart were delivered');
    t.true(r.frames.every((f) => f.dst === G3 && f.intact));
    const s1 = await finalFrontStats(f1);
    const s2 = await finalFrontStats(f2);
    // Every frame a guest took in, it forwarded; every frame guest 2 put in its TX ring left the NIC.
    t.is(s1.tx_packets, s1.rx_packets);
    t.is(s2.tx_packets, s2.rx_packets);
    t.is(r.frames.length, s2.tx_packets);
    t.true(r.frames.length <= r.sent);
  } finally {
    await rig.close();
  }
});

test.serial('a guest SIGKILLed under traffic is detached within 1 s and its pages unmapped', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    const be = rig.backend(['--vm2vm']);
    await be.waitLine('err', /watching/);
    const f1 = rig.guest(1, ['--mac', G1, '--fwd', 'mac', '--eth-peer', G2, ...FRONT]);
    await be.waitLog(/MAC_ADDRESS 00:00:00:00:00:11/);
    const framesFile = `${rig.dir}/dom1/frames`;
    const mapped = () => fs.readFileSync(`/proc/${be.pid}/maps`, 'utf8').split('\n').filter((l) => l.includes(framesFile)).length;
    t.true(mapped() > 0);
    const traffic = rig.wire(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', '600', '--gap-ms', '1', '--wait-ms', '200']);
    await sleep(300);
    const killedAt = Date.now();
    f1.kill('SIGKILL');
    const detached = await be.waitLog(/^detached domain 1 device 0: /, 3000);
    t.true(detached.time - killedAt <= 1000, `detached after ${detached.time - killedAt} ms`);
    t.is(mapped(), 0);
    await traffic;
    t.is(be.child.exitCode, null);
  } finally {
    await rig.close();
  }
});

test.serial('200 attach/detach cycles leave no mapping, fd or thread behind', async (t) => {
  const rig = await Rig.start();
  let grants: Grants | undefined;
  let xs: XenStoreClient | undefined;
  try {
    await rig.createDomain(3);
    const be = rig.backend(['--vm2vm'], { nic: false });
    await be.waitLine('err', /watching/);
    // This test process plays domain 3's front end.
    grants = Grants.open({ platform: 'sim', simDir: rig.dir, domid: 3 });
    xs = await XenStoreClient.connect({ path: rig.xenstored.domainSocketPath(3) });
    const v = vringNative();
    const list = (refs: number[]) => {
      const pages = v.encodeGrefList(Uint32Array.from(refs), null);
      const a = grants!.alloc(0, pages.length / PAGE_SIZE);
      new Uint8Array(a.buffer).set(pages);
      return a.grefs.join(',');
    };
    const ring = () => list(grants!.alloc(0, vringLayout(256).pages).grefs);
    const flag = grants.alloc(0, 1);
    const pool = grants.alloc(0, 4);
    const keys: Record<string, string> = {
      '0_mempool_gref': list(pool.grefs),
      '0_mempool_va': `0x${pool.addr.toString(16)}`,
      '0_rx_vring_gref': ring(),
      '0_tx_vring_gref': ring(),
      '0_ether_addr': '00:00:00:00:00:55',
      '0_vring_flag': String(flag.grefs[0]),
    };
    for (const [k, val] of Object.entries(keys)) await xs.write(`control/dpdk/${k}`, val);
    const flagByte = new Uint8Array(flag.buffer);
    const registered = /MAC_ADDRESS 00:00:00:00:00:55 and VLAN_TAG 1000 registered/;
    const detached = /^detached domain 3 device 0: /;
    const cycle = async (i: number) => {
      flagByte[0] = VRING_FLAG_LIVE;
      await xs!.write('control/dpdk/event_type_start_0', '1');
      await waitCount(be, registered, i);
      flagByte[0] = 0;
      await waitCount(be, detached, i);
    };
    const framesFile = `${rig.dir}/dom3/frames`;
    const census = () => ({
      maps: fs.readFileSync(`/proc/${be.pid}/maps`, 'utf8').split('\n').filter((l) => l.includes(rig.dir)).length,
      fds: fs.readdirSync(`/proc/${be.pid}/fd`).length,
      threads: fs.readdirSync(`/proc/${be.pid}/task`).length,
      guestMaps: fs.readFileSync(`/proc/${be.pid}/maps`, 'utf8').split('\n').filter((l) => l.includes(framesFile)).length,
    });
    await cycle(1);
    const before = census();
    t.is(before.guestMaps, 0);
    for (let i = 2; i <= 201; i++) await cycle(i);
    const after = census();
    t.is(after.guestMaps, 0);
    t.is(after.maps, before.maps);
    t.is(after.fds, before.fds);
    t.true(after.threads <= before.threads, `threads ${before.threads} -> ${after.threads}`);
    t.is(count(be, registered), 201);
  } finally {
    xs?.close();
    grants?.close();
    await rig.close();
  }
});
