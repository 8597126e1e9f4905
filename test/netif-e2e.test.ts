// The netif back end end to end on the simulated platform: xsw-backend and an
// xsw-front PMD guest as processes, a fake Linux netfront in this process
// (harness/netfront-fake.ts) on a vif written as libxl writes it.
import test from 'ava';
import { statsUntil } from './fixtures/backend-rig';
import { ethFrame, FakeNetfront, NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED, udpChecksumValid, udpFrame } from '../harness/netfront-fake';
import { NetifRig } from './fixtures/netif-rig';
import { detachVif } from '../xenstore/sim/vif';

const PMD = '00:00:00:00:00:11';
const N1 = '00:16:3e:00:00:21';
const N2 = '00:16:3e:00:00:22';
const FRONT = ['--nb-mbuf', '512', '--log-level', 'warn'];

interface Stats {
  devices: { domid: number; dev: number; mac: string; vlan: number; state: string; kind: string; tx_total: number; rx_total: number; netif?: Record<string, number> }[];
}

/** Backend + PMD guest (domain 1, macswap) + vif domain 2; returns the connected netfront. */
async function setup(rig: NetifRig, extraArgs: string[] = []): Promise<{ be: ReturnType<NetifRig['backend']>; nf: FakeNetfront }> {
  await rig.createDomain(1);
  await rig.vifDomain(2, N1);
  const be = rig.backend(['--stats', '1', '--json', '--log-level', 'info', ...extraArgs]);
  await be.waitLine('err', /watching \/local\/domain/);
  rig.guest(1, ['--mac', PMD, '--fwd', 'macswap', ...FRONT]);
  await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG \d+ registered/);
  const nf = await rig.netfront(2);
  await nf.connect();
  await be.waitLine('err', /vif 2\/0 \(netif\) connected: MAC_ADDRESS 00:16:3e:00:00:21/);
  return { be, nf };
}

test.serial('a netfront guest and a PMD guest exchange frames both ways: multi-slot TX, csum_blank completed, kinds in the stats', async (t) => {
  const rig = await NetifRig.start();
  try {
    const { be, nf } = await setup(rig);
    // The back end advertised what netfront needs, and reached Connected.
    t.is(await rig.dom0.read('/local/domain/0/backend/vif/2/0/feature-rx-copy'), '1');
    t.is(await rig.dom0.read('/local/domain/0/backend/vif/2/0/state'), '4');
    nf.postRx(64);
    const frames = [
      ethFrame(PMD, N1, 60, 1),
      ethFrame(PMD, N1, 1000, 2),
      ethFrame(PMD, N1, 1514, 3),
    ];
    nf.queue(frames[0]);
    nf.queue(frames[1], [100, 300, 1, 500, 99], 0, 3000);
    nf.queue(frames[2], [1514 - 17 * 84, ...Array<number>(17).fill(84)], 0, 4000);
    const udp = udpFrame(PMD, N1, 333);
    t.false(udpChecksumValid(udp));
    nf.queue(udp, [200, 175], NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED);
    nf.pushTx();
    const got = await nf.receive(4);
    t.is(got.length, 4);
    // macswap: the PMD guest sent each frame back with the addresses swapped.
    for (const [i, f] of frames.entries()) {
      t.is(got[i].toString('hex', 0, 12), Buffer.concat([f.subarray(6, 12), f.subarray(0, 6)]).toString('hex'));
      t.true(got[i].subarray(12).equals(f.subarray(12)), `frame ${i} intact`);
    }
    t.true(udpChecksumValid(got[3]), 'the blank UDP checksum was completed by the back end');
    t.true(got[3].subarray(12, 40).equals(udp.subarray(12, 40)));
    const rsp = nf.txResponses();
    t.is(rsp.length, 1 + 5 + 18 + 2);
    t.true(rsp.every(([, status]) => status === 0));
    const s = await statsUntil<Stats>(be, (x) => x.devices.some((d) => d.kind === 'netif' && (d.netif?.rx_frames ?? 0) >= 4));
    const vif = s.devices.find((d) => d.kind === 'netif');
    const pmd = s.devices.find((d) => d.kind === 'pmd');
    t.truthy(pmd);
    t.is(vif?.domid, 2);
    t.is(vif?.mac, N1);
    t.is(vif?.netif?.tx_slots, 26);
    t.is(vif?.netif?.tx_csum_completed, 1);
    t.not(vif?.vlan, pmd?.vlan);
  } finally {
    await rig.close();
  }
});

test.serial('xl network-detach (online=0, state 5): the back end detaches and says Closed; the PMD guest keeps its device', async (t) => {
  const rig = await NetifRig.start();
  try {
    const { be } = await setup(rig);
    t.true(await detachVif(rig.dom0, 2, 0, 5000), 'the back end wrote state 6');
    await be.waitLine('err', /vif 2\/0 (going offline|removed)/);
    const s = await statsUntil<Stats>(be, (x) => !x.devices.some((d) => d.kind === 'netif') && x.devices.length > 0, 10_000);
    t.deepEqual(s.devices.map((d) => [d.kind, d.domid, d.state]), [['pmd', 1, 'active']]);
  } finally {
    await rig.close();
  }
});

test.serial('a guest that disappears is detached; a second netfront guest loses nothing', async (t) => {
  const rig = await NetifRig.start();
  try {
    const { be, nf } = await setup(rig);
    await rig.vifDomain(3, N2);
    const nf2 = await rig.netfront(3);
    await nf2.connect();
    nf2.postRx(64);
    nf.postRx(64);
    nf.dispose();
    rig.fronts.splice(rig.fronts.indexOf(nf), 1);
    await rig.destroyDomain(2);
    await be.waitLine('err', /vif 2\/0: its front end disappeared; detached/);
    for (let i = 0; i < 20; i++) nf2.queue(ethFrame(PMD, N2, 100 + i, i));
    nf2.pushTx();
    const got = await nf2.receive(20);
    t.is(got.length, 20);
    t.true(got.every((f, i) => f.subarray(12).equals(ethFrame(PMD, N2, 100 + i, i).subarray(12))));
  } finally {
    await rig.close();
  }
});

test.serial('a hostile netfront (19 slots) is quarantined with one log line; another netfront and the PMD guest lose nothing', async (t) => {
  const rig = await NetifRig.start();
  try {
    const { be, nf } = await setup(rig);
    await rig.vifDomain(3, N2);
    const bad = await rig.netfront(3);
    await bad.connect();
    nf.postRx(64);
    bad.queue(ethFrame(PMD, N2, 1000), [1000 - 18 * 50, ...Array<number>(18).fill(50)]);
    bad.pushTx();
    await be.waitLine('err', /quarantined vif 3\/0 \(netif\): tx_too_many_slots/);
    for (let i = 0; i < 50; i++) nf.queue(ethFrame(PMD, N1, 64 + i, i));
    nf.pushTx();
    const got = await nf.receive(50);
    t.is(got.length, 50);
    t.is(be.err.filter((l) => /quarantined vif/.test(l)).length, 1);
    const s = await statsUntil<Stats>(be, (x) => x.devices.some((d) => d.kind === 'netif' && d.state === 'quarantined'));
    t.is(s.devices.filter((d) => d.kind === 'netif' && d.state === 'active').length, 1);
  } finally {
    await rig.close();
  }
});

test.serial('a back end killed and restarted reconnects the vif: the guest keeps its rings and frames flow again', async (t) => {
  const rig = await NetifRig.start();
  try {
    const { be, nf } = await setup(rig);
    nf.postRx(32);
    nf.queue(ethFrame(PMD, N1, 100, 1));
    nf.pushTx();
    t.is((await nf.receive(1)).length, 1);
    be.kill('SIGKILL');
    await be.exited;
    const be2 = rig.backend(['--log-level', 'info']);
    await be2.waitLine('err', /vif 2\/0 \(netif\) connected/, { timeoutMs: 10_000 });
    t.is(await rig.dom0.read('/local/domain/0/backend/vif/2/0/state'), '4');
    for (let i = 0; i < 10; i++) nf.queue(ethFrame(PMD, N1, 100 + i, i));
    nf.pushTx();
    const got = await nf.receive(10, 10_000);
    t.is(got.length, 10);
    t.true(got.every((f, i) => f.subarray(12).equals(ethFrame(PMD, N1, 100 + i, i).subarray(12))));
    t.true(nf.txResponses().every(([, status]) => status === 0));
  } finally {
    await rig.close();
  }
});

test.serial('--no-netif leaves vifs alone: no InitWait, no features written', async (t) => {
  const rig = await NetifRig.start();
  try {
    await rig.vifDomain(2, N1);
    const be = rig.backend(['--no-netif', '--log-level', 'info']);
    await be.waitLine('err', /--no-netif: vifs/);
    await new Promise((r) => setTimeout(r, 300));
    t.is(await rig.dom0.read('/local/domain/0/backend/vif/2/0/state'), '1');
    t.is(await rig.dom0.tryRead('/local/domain/0/backend/vif/2/0/feature-rx-copy'), undefined);
  } finally {
    await rig.close();
  }
});
