// xsw-backend --cores 0,1 end to end on the simulated platform: two data
// threads, devices spread over them (the NIC counts as one device on thread
// 0), frames crossing threads intact, in order and without loss at a steady
// rate; a hostile guest on one thread quarantined while guests on the other
// keep switching; a guest detached while frames cross threads. Needs root
// (netns, veth, AF_PACKET) and two CPUs. Correctness only: nothing timed.
import test from 'ava';
import { FAKE_GUEST, lastJson, Rig, statsUntil } from './fixtures/backend-rig';

const G1 = '00:00:00:00:00:11';
const G2 = '00:00:00:00:00:22';
const G3 = '00:00:00:00:00:33';
const BAD = '00:00:00:00:00:44';
const GEN = '00:00:00:00:00:01';
const FRONT = ['--nb-mbuf', '512', '--log-level', 'warn'];
const CORES = ['--cores', '0,1'];

interface Stats {
  devices: { domid: number; mac: string; state: string; thread?: number; tx_total: number; tx_dropped: number; rx_total: number; rx_dropped: number; drops: Record<string, number> }[];
  threads?: { thread: number; cpu: number | null; devices: number; handed_out: number; handed_in: number; handoff_dropped: number }[];
}

const inOrder = (seqs: number[]): boolean => seqs.every((s, i) => i === 0 || s > seqs[i - 1]);

test.serial('--cores 0,1: NIC -> guest 1 (thread 1) -> guest 2 (thread 0) -> NIC, every frame intact and in order', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    await rig.createDomain(2);
    const be = rig.backend([...CORES, '--stats', '1', '--json']);
    await be.waitLog(/2 data threads, pinned to CPUs 0,1/);
    rig.guest(1, ['--mac', G1, '--fwd', 'mac', '--eth-peer', G2, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
    rig.guest(2, ['--mac', G2, '--fwd', 'mac', '--eth-peer', G3, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1001 registered/);
    const N = 1500;
    const r = await rig.wire(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', String(N), '--size', '700', '--gap-ms', '0.3']);
    t.is(r.frames.length, N, 'no frame lost');
    t.true(r.frames.every((f) => f.dst === G3 && f.vlan === 1001 && f.intact && f.len === 700));
    t.true(inOrder(r.frames.map((f) => f.seq)), 'in the order sent');
    const s = await statsUntil<Stats>(be, (x) => (x.devices.find((d) => d.domid === 2)?.tx_total ?? 0) >= N);
    const g1 = s.devices.find((d) => d.domid === 1)!;
    const g2 = s.devices.find((d) => d.domid === 2)!;
    t.is(g1.thread, 1);
    t.is(g2.thread, 0);
    t.is(g1.rx_total, N);
    t.is(g2.rx_total, N);
    t.is(g1.tx_dropped + g2.tx_dropped + g1.rx_dropped + g2.rx_dropped, 0);
    t.deepEqual(s.threads!.map((x) => [x.thread, x.cpu, x.devices]), [[0, 0, 2], [1, 1, 1]]);
    // NIC -> guest 1 and guest 1 -> guest 2 cross from one thread to the other.
    t.true(s.threads![0].handed_out >= N && s.threads![1].handed_out >= N);
    t.is(s.threads![0].handoff_dropped + s.threads![1].handoff_dropped, 0);
  } finally {
    await rig.close();
  }
});

test.serial('--cores 0,1: a hostile guest on thread 0 is quarantined while guest 2 on thread 1 loses nothing', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    await rig.createDomain(2);
    const be = rig.backend([...CORES, '--stats', '1', '--json']);
    await be.waitLine('err', /watching/);
    rig.guest(2, ['--mac', G2, '--fwd', 'mac', '--eth-peer', G3, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1000 registered/);
    const flow = rig.wireUntilStopped(['--dst', G2, '--src', GEN, '--vlan', '1000', '--count', '3000', '--gap-ms', '0.5']);
    while ((await flow.progress()).captured < 100) await new Promise((r) => setTimeout(r, 50));
    rig.guest(1, [JSON.stringify({ mac: BAD, action: 'jump' })], FAKE_GUEST);
    await be.waitLog(/^quarantined domain 1 device 0: avail_idx_jump/);
    const before = (await flow.progress()).captured;
    while ((await flow.progress()).captured < before + 200) await new Promise((r) => setTimeout(r, 50));
    const r = await flow.stop();
    t.is(r.frames.length, r.sent, 'guest 2 lost no frame');
    t.true(r.frames.every((f) => f.dst === G3 && f.intact));
    t.true(inOrder(r.frames.map((f) => f.seq)));
    const s = await statsUntil<Stats>(be, (x) => x.devices.some((d) => d.domid === 1 && d.state === 'quarantined'));
    t.is(s.devices.find((d) => d.domid === 1)!.thread, 0);
    t.is(s.devices.find((d) => d.domid === 2)!.thread, 1);
    t.is(be.child.exitCode, null, 'the back end is still running');
    t.false(be.err.some((l) => /"level":(50|60)/.test(l)), 'no error logged');
  } finally {
    await rig.close();
  }
});

test.serial('--cores 0,1: guest 2 killed while guest 1 forwards to it across threads; switching goes on', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    await rig.createDomain(2);
    const be = rig.backend([...CORES, '--stats', '1', '--json']);
    await be.waitLine('err', /watching/);
    rig.guest(1, ['--mac', G1, '--fwd', 'mac', '--eth-peer', G2, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
    const g2 = rig.guest(2, ['--mac', G2, '--fwd', 'mac', '--eth-peer', G3, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1001 registered/);
    const flow = rig.wireUntilStopped(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', '4000', '--gap-ms', '0.3']);
    while ((await flow.progress()).captured < 200) await new Promise((r) => setTimeout(r, 50));
    g2.kill('SIGKILL');
    await statsUntil<Stats>(be, (x) => !x.devices.some((d) => d.domid === 2 && d.state === 'active'), 10000);
    // With guest 2 gone its MAC is unknown: guest 1's frames leave by the NIC, still addressed to it.
    const after = (await flow.progress()).sent;
    let p = await flow.progress();
    for (const from = p.captured; p.captured < from + 200; p = await flow.progress()) await new Promise((res) => setTimeout(res, 50));
    const r = await flow.stop();
    const late = r.frames.filter((f) => f.seq >= after + 50);
    t.true(late.length > 0, 'frames still flow after the detach');
    t.true(late.every((f) => f.dst === G2 && f.vlan === 1000 && f.intact));
    t.true(r.frames.every((f) => f.intact));
    t.true(inOrder(r.frames.map((f) => f.seq)));
    t.is(be.child.exitCode, null, 'the back end is still running');
    t.false(be.err.some((l) => /"level":(50|60)/.test(l)), 'no error logged');
    const s = lastJson<Stats>(be)!;
    t.is(s.devices.find((d) => d.domid === 1)!.state, 'active');
  } finally {
    await rig.close();
  }
});

test.serial('--cores with a CPU this process may not use: one sentence, exit 1', async (t) => {
  const rig = await Rig.start();
  try {
    const be = rig.backend(['--cores', '0,4095']);
    const e = await be.exited;
    t.is(e.code, 1);
    t.regex(be.stderr, /CPU 4095 in --cores is not one this process may run on: give CPUs from [0-9,]+/);
  } finally {
    await rig.close();
  }
});
