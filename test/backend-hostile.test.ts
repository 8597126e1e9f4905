// Hostile guests end to end: a fake guest (domain 1) publishes bad keys or
// abuses its ring while a real xsw-front (domain 2) switches traffic. Each
// case: the offender is refused or quarantined with one log line naming
// domain, device and reason; its counter moves; guest 2 loses nothing; the
// back end keeps running.
import test, { ExecutionContext } from 'ava';
import type { Child } from '../harness/child';
import { FAKE_GUEST, Rig, statsUntil } from './fixtures/backend-rig';

const G2 = '00:00:00:00:00:22';
const G3 = '00:00:00:00:00:33';
const BAD = '00:00:00:00:00:44';
const GEN = '00:00:00:00:00:01';

interface Stats {
  devices: { domid: number; dev: number; state: string; tx_total: number; drops: Record<string, number> }[];
  refused?: Record<string, number>;
}

async function withVictim(t: ExecutionContext, hostile: (rig: Rig, be: Child) => Promise<void>): Promise<void> {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    await rig.createDomain(2);
    const be = rig.backend(['--vm2vm', '--stats', '1', '--json']);
    await be.waitLine('err', /watching/);
    rig.guest(2, ['--mac', G2, '--fwd', 'mac', '--eth-peer', G3, '--nb-mbuf', '512', '--log-level', 'warn']);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1000 registered/);
    await hostile(rig, be);
    const N = 200;
    const r = await rig.wire(['--dst', G2, '--src', GEN, '--vlan', '1000', '--count', String(N), '--gap-ms', '0.5']);
    t.is(r.frames.length, N, 'guest 2 lost no frame');
    t.true(r.frames.every((f) => f.dst === G3 && f.intact));
    t.is(be.child.exitCode, null, 'the back end is still running');
    t.false(be.err.some((l) => /"level":(50|60)/.test(l)), 'no error logged');
  } finally {
    await rig.close();
  }
}

const warnLines = (be: Child, re: RegExp) => be.logs().filter((l) => l.level === 40 && re.test(l.msg));

test.serial('a gref list naming an ungranted ref: refused as map_failed, once', async (t) => {
  await withVictim(t, async (rig, be) => {
    rig.guest(1, [JSON.stringify({ mac: BAD, ungrantedPoolRef: true })], FAKE_GUEST);
    const re = /^refused domain 1 device 0: 0_mempool_gref names pages domain 1 has not granted to dom0 writable \((EINVAL|EACCES)\)/;
    await be.waitLog(re);
    await statsUntil<Stats>(be, (s) => s.refused?.map_failed === 1);
    t.is(warnLines(be, re).length, 1);
    t.is(warnLines(be, re)[0].domid, 1);
  });
});

test.serial('garbage in each XenStore key: each refused with a line naming the key', async (t) => {
  const cases: [string, string][] = [
    ['0_rx_vring_gref', '12;13'],
    ['0_tx_vring_gref', ''],
    ['0_ether_addr', 'not-a-mac'],
    ['0_vring_flag', '0x10'],
    ['0_mempool_gref', '99999999999'],
    ['0_mempool_va', 'zz'],
  ];
  await withVictim(t, async (rig, be) => {
    for (const [key, value] of cases) {
      const fake = rig.guest(1, [JSON.stringify({ mac: BAD, override: { [key]: value } })], FAKE_GUEST);
      await be.waitLog(new RegExp(`^refused domain 1 device 0: ${key} `));
      fake.kill('SIGKILL');
      await fake.exited;
    }
    const s = await statsUntil<Stats>(be, (x) => x.refused?.bad_key === cases.length);
    t.is(s.refused!.bad_key, cases.length);
    t.is(warnLines(be, /refused domain 1 device 0: 0_mempool_va "zz" is not a hex address/).length, 1);
    t.false(s.devices.some((d) => d.domid === 1));
  });
});

test.serial('a MAC already registered by another guest is refused as mac_taken', async (t) => {
  await withVictim(t, async (rig, be) => {
    rig.guest(1, [JSON.stringify({ mac: G2 })], FAKE_GUEST);
    const re = /^refused domain 1 device 0: 0_ether_addr 00:00:00:00:00:22 is already registered by domain 2 device 0/;
    await be.waitLog(re);
    await statsUntil<Stats>(be, (s) => s.refused?.mac_taken === 1);
    t.is(warnLines(be, re).length, 1);
  });
});

test.serial('a ring whose avail index jumps: quarantined with one line, kept in stats', async (t) => {
  await withVictim(t, async (rig, be) => {
    rig.guest(1, [JSON.stringify({ mac: BAD, action: 'jump' })], FAKE_GUEST);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:44 and VLAN_TAG 1001 registered/);
    const re = /^quarantined domain 1 device 0: avail_idx_jump \(strike 1: /;
    await be.waitLog(re);
    const s = await statsUntil<Stats>(be, (x) => x.devices.some((d) => d.domid === 1 && d.state === 'quarantined'));
    t.true((s.devices.find((d) => d.domid === 1)!.drops.avail_idx_jump ?? 0) >= 1);
    await new Promise((r) => setTimeout(r, 300));
    t.is(warnLines(be, re).length, 1);
  });
});

test.serial('a guest spoofing its source MAC: frames dropped and counted, one warn line', async (t) => {
  await withVictim(t, async (rig, be) => {
    rig.guest(1, [JSON.stringify({ mac: BAD, action: 'spoof', spoofSrc: G2, dst: G3, frames: 10 })], FAKE_GUEST);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:44/);
    const re = /^domain 1 device 0 sends frames with a source MAC that is not its own 00:00:00:00:00:44/;
    await be.waitLog(re, 5000);
    const s = await statsUntil<Stats>(be, (x) => x.devices.some((d) => d.domid === 1 && d.drops.spoofed_src_mac === 10));
    t.is(s.devices.find((d) => d.domid === 1)!.tx_total, 10);
    t.is(warnLines(be, re).length, 1);
  });
});

test.serial('a guest frame carrying its own 802.1Q tag never reaches the wire: dropped once as guest_vlan_tag', async (t) => {
  await withVictim(t, async (rig, be) => {
    const cap = await rig.capture(['--listen-src', BAD, '--expect', '1', '--wait-ms', '15000']);
    // Frame 0: [dst GEN][src BAD][0x8100 VID 5][0x88b5 ...]; frame 1: the same, untagged.
    rig.guest(1, [JSON.stringify({ mac: BAD, action: 'tagged', vid: 5, dst: GEN })], FAKE_GUEST);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:44 and VLAN_TAG 1001 registered/);
    await cap.exited;
    const frames = (JSON.parse(cap.out.join('')) as { frames: { aux_vlan: number | null; tags: [number, number][] }[] }).frames;
    t.is(frames.length, 1, 'only the untagged frame left the NIC');
    const vids = frames.flatMap((f) => [...(f.aux_vlan === null ? [] : [f.aux_vlan]), ...f.tags.map(([, vid]) => vid)]);
    t.deepEqual(vids, [1001], "the frame that left carries the switch's tag and nothing else");
    const s = await statsUntil<Stats>(be, (x) => x.devices.some((d) => d.domid === 1 && d.tx_total === 2));
    t.is(s.devices.find((d) => d.domid === 1)!.drops.guest_vlan_tag, 1);
  });
});
