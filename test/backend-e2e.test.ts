// End to end, with real processes on the simulated platform: xsw-backend with
// its NIC on a veth in a private network namespace, xsw-front guests, and a
// frame generator/capture on the veth's other end. Needs root (netns, veth,
// AF_PACKET).
import test from 'ava';
import { Child } from '../harness/child';
import { CLI } from '../harness/cli-paths';
import { lastJson, Rig } from './fixtures/backend-rig';

const G1 = '00:00:00:00:00:11';
const G2 = '00:00:00:00:00:22';
const G3 = '00:00:00:00:00:33';
const GEN = '00:00:00:00:00:01';
const FRONT = ['--nb-mbuf', '512', '--log-level', 'warn'];

interface BackendStats {
  devices: { domid: number; dev: number; mac: string; vlan: number; state: string; tx_total: number; rx_total: number; rx_dropped: number; tx_dropped: number; drops: Record<string, number> }[];
  nic: { rx: number; tx: number; dropped: number };
  refused?: Record<string, number>;
}

test.serial('loopback (the guide): N frames to guest 1 with VLAN 1000 come back to 00:..:22 with VLAN 1000, intact', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    const be = rig.backend(['--vm2vm', '--log-level', 'info']);
    await be.waitLine('err', /watching \/local\/domain/);
    const perms = await rig.dom0.getPerms('/local/domain/1/control/dpdk');
    t.deepEqual(perms.map((p) => [p.domid, p.access]), [[0, 'n'], [1, 'b']]);
    rig.guest(1, ['--mac', G1, '--fwd', 'mac', '--eth-peer', G2, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
    const N = 200;
    const r = await rig.wire(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', String(N), '--size', '300', '--gap-ms', '0.5']);
    t.is(r.frames.length, N);
    t.deepEqual(new Set(r.frames.map((f) => f.seq)).size, N);
    t.true(r.frames.every((f) => f.dst === G2 && f.vlan === 1000 && f.intact && f.len === 300));
  } finally {
    await rig.close();
  }
});

test.serial('inter-VM (the guide): guest 1 -> guest 2 -> NIC with dst 00:..:33; with --no-vm2vm they leave after guest 1', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    await rig.createDomain(2);
    const be = rig.backend(['--vm2vm', '--stats', '1', '--json']);
    await be.waitLine('err', /watching/);
    rig.guest(1, ['--mac', G1, '--fwd', 'mac', '--eth-peer', G2, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
    rig.guest(2, ['--mac', G2, '--fwd', 'mac', '--eth-peer', G3, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1001 registered/);
    const N = 200;
    const r = await rig.wire(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', String(N), '--size', '256', '--gap-ms', '0.5']);
    t.is(r.frames.length, N);
    t.true(r.frames.every((f) => f.dst === G3 && f.vlan === 1001 && f.intact));
    const lines = be.out.length;
    await be.waitLine('out', /"devices"/, { from: lines, timeoutMs: 3000 });
    const s = lastJson<BackendStats>(be)!;
    const g2 = s.devices.find((d) => d.domid === 2)!;
    t.is(g2.rx_total, N);
    t.is(g2.tx_total, N);
    be.kill('SIGTERM');
    t.is((await be.exited).code, 0);
    t.truthy(be.logs().find((l) => /stopped: every device detached/.test(l.msg)));

    const be2 = rig.backend(['--no-vm2vm', '--stats', '1', '--json']);
    await be2.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
    await be2.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1001 registered/);
    const r2 = await rig.wire(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', String(N), '--size', '256', '--gap-ms', '0.5', '--tag', '2']);
    t.is(r2.frames.length, N);
    t.true(r2.frames.every((f) => f.dst === G2 && f.vlan === 1000 && f.intact));
    const from = be2.out.length;
    await be2.waitLine('out', /"devices"/, { from: from, timeoutMs: 3000 });
    t.is(lastJson<BackendStats>(be2)!.devices.find((d) => d.domid === 2)!.rx_total, 0);
  } finally {
    await rig.close();
  }
});

test.serial('a jumbo frame (> 4 KB, chained) crosses vm2vm intact', async (t) => {
  const rig = await Rig.start({ mtu: 9000 });
  try {
    await rig.createDomain(1);
    await rig.createDomain(2);
    const be = rig.backend(['--vm2vm', '--mtu', '9000']);
    await be.waitLine('err', /watching/);
    const jumbo = ['--max-pkt-len', '9018'];
    rig.guest(1, ['--mac', G1, '--fwd', 'mac', '--eth-peer', G2, ...jumbo, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000/);
    rig.guest(2, ['--mac', G2, '--fwd', 'mac', '--eth-peer', G3, ...jumbo, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1001/);
    const r = await rig.wire(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', '20', '--size', '7000', '--gap-ms', '2']);
    t.is(r.frames.length, 20);
    t.true(r.frames.every((f) => f.dst === G3 && f.intact && f.len === 7000));
  } finally {
    await rig.close();
  }
});

test.serial('the CLI refuses a bad flag and a missing XenStore with one sentence and a non-zero exit', async (t) => {
  const rig = await Rig.start();
  try {
    const bad = rig.backend(['--stats', 'soon']);
    t.is((await bad.exited).code, 2);
    t.deepEqual(bad.err, ['xsw-backend: --stats takes a whole number from 0 to 86400, not "soon".']);
    const noXs = new Child(process.execPath, [CLI.backend, '--platform', 'sim'], {
      env: { ...rig.env(0), XENSTORED_PATH: `${rig.dir}/nothing.sock` },
    });
    t.is((await noXs.exited).code, 1);
    t.regex(noXs.err.at(-1)!, /^xsw-backend: Cannot connect to xenstored at .*nothing\.sock/);
    const noGntdev = new Child(process.execPath, [CLI.backend, '--platform', 'xen'], { env: rig.env(0) });
    t.is((await noGntdev.exited).code, 1);
    t.regex(noGntdev.err.at(-1)!, /\/dev\/xen\/gntdev is absent: run xsw-backend in a Xen dom0/);
    const noPort = rig.backend(['-p', 'nosuchif0'], { nic: false });
    t.is((await noPort.exited).code, 1);
    t.regex(noPort.err.at(-1)!, /^xsw-backend: Cannot open the port nosuchif0: /);
  } finally {
    await rig.close();
  }
});
