// Issue 11, finding 4, end to end with real processes: xsw-backend with a NIC
// on a veth pair, a real xsw-front as the victim (domain 2, forwarding what it
// receives to --eth-peer), and a fake guest as the attacker (domain 1). dom0
// assigns identities by writing /local/domain/0/backend/xsw/<domid>/<dev>/mac
// as a toolstack would.
import test from 'ava';
import type { Child } from '../harness/child';
import { FAKE_GUEST, Rig, statsUntil } from './fixtures/backend-rig';

const G2 = '00:00:00:00:00:22';
const G3 = '00:00:00:00:00:33';
const GATEWAY = '00:00:00:00:00:fe';
const FRONT = ['--nb-mbuf', '512', '--log-level', 'warn'];

interface Stats { refused?: Record<string, number> }

async function assign(rig: Rig, domid: number, dev: number, mac: string): Promise<void> {
  const dir = `/local/domain/0/backend/xsw/${domid}`;
  await rig.dom0.write(`${dir}/${dev}/mac`, mac);
  for (const p of [dir, `${dir}/${dev}`, `${dir}/${dev}/mac`]) await rig.dom0.setPerms(p, ['n0', `r${domid}`]);
}

const warnLines = (be: Child, re: RegExp) => be.logs().filter((l) => l.level === 40 && re.test(l.msg));

test.serial('a guest publishing the MAC of a host on the NIC side is refused; the host keeps getting its frames', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    await rig.createDomain(2);
    const be = rig.backend(['--vm2vm', '--stats', '1', '--json']);
    await be.waitLine('err', /watching/);
    // Guest 2 sends everything it receives to the gateway, a host on the NIC side.
    rig.guest(2, ['--mac', G2, '--fwd', 'mac', '--eth-peer', GATEWAY, ...FRONT]);
    await be.waitLog(/MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1000 registered/);
    const before = await rig.wire(['--dst', G2, '--src', GATEWAY, '--vlan', '1000', '--count', '20', '--gap-ms', '1']);
    t.is(before.frames.length, 20, 'the gateway talks to guest 2 (the switch sees its MAC on the NIC side)');
    // The attacker claims the gateway's MAC, to receive what guest 2 sends it.
    rig.guest(1, [JSON.stringify({ mac: GATEWAY })], FAKE_GUEST);
    const re = /^refused domain 1 device 0: 0_ether_addr 00:00:00:00:00:fe is the MAC of a host on the NIC side/;
    await be.waitLog(re);
    await statsUntil<Stats>(be, (s) => s.refused?.mac_on_nic === 1);
    const N = 200;
    const r = await rig.wire(['--dst', G2, '--src', GATEWAY, '--vlan', '1000', '--count', String(N), '--gap-ms', '0.5']);
    t.is(r.frames.length, N, 'every frame guest 2 sent to the gateway left through the NIC');
    t.true(r.frames.every((f) => f.dst === GATEWAY && f.intact));
    t.is(warnLines(be, re).length, 1);
    t.false(be.logs().some((l) => /MAC_ADDRESS 00:00:00:00:00:fe/.test(l.msg)));
    t.is(be.child.exitCode, null);
  } finally {
    await rig.close();
  }
});

test.serial('--mac-policy dom0: a guest lying about its MAC is refused, the assigned guest works', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    await rig.createDomain(2);
    await assign(rig, 1, 0, '00:00:00:00:00:44');
    await assign(rig, 2, 0, G2);
    const be = rig.backend(['--vm2vm', '--stats', '1', '--json', '--mac-policy', 'dom0']);
    await be.waitLog(/MAC policy dom0/);
    rig.guest(2, ['--mac', G2, '--fwd', 'mac', '--eth-peer', G3, ...FRONT]);
    await be.waitLog(/MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1000 registered/);
    // Domain 1 was assigned :44 but publishes the victim's MAC.
    rig.guest(1, [JSON.stringify({ mac: G2 })], FAKE_GUEST);
    const re = /^refused domain 1 device 0: 0_ether_addr 00:00:00:00:00:22 is not the MAC dom0 assigned to this device \(00:00:00:00:00:44 in \/local\/domain\/0\/backend\/xsw\/1\/0\/mac\)/;
    await be.waitLog(re);
    await statsUntil<Stats>(be, (s) => s.refused?.mac_mismatch === 1);
    // A third guest without any assignment is refused too.
    await rig.createDomain(3);
    rig.guest(3, [JSON.stringify({ mac: '00:00:00:00:00:55' })], FAKE_GUEST);
    await be.waitLog(/^refused domain 3 device 0: 0_ether_addr 00:00:00:00:00:55 was not assigned by dom0 and --mac-policy is dom0/);
    const N = 200;
    const r = await rig.wire(['--dst', G2, '--src', '00:00:00:00:00:01', '--vlan', '1000', '--count', String(N), '--gap-ms', '0.5']);
    t.is(r.frames.length, N, 'guest 2 lost no frame');
    t.true(r.frames.every((f) => f.dst === G3 && f.intact));
    t.is(warnLines(be, re).length, 1);
  } finally {
    await rig.close();
  }
});

test.serial('the mac_taken lock-out fails against a dom0-assigned guest: the squatter is detached', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    await rig.createDomain(2);
    await assign(rig, 2, 0, G2);
    const be = rig.backend(['--vm2vm', '--stats', '1', '--json']);
    await be.waitLine('err', /watching/);
    // The victim is down; the attacker registers its MAC.
    rig.guest(1, [JSON.stringify({ mac: G2 })], FAKE_GUEST);
    await be.waitLog(/^\(0\) MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1000 registered/);
    // The victim starts: it gets its MAC, the squatter goes.
    rig.guest(2, ['--mac', G2, '--fwd', 'mac', '--eth-peer', G3, ...FRONT]);
    await be.waitLog(/^detached domain 1 device 0: its MAC 00:00:00:00:00:22 is assigned by dom0 to domain 2 device 0$/);
    const byVictim = () => be.logs().some((l) => l.domid === 2 && /MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1000 registered/.test(l.msg));
    for (let i = 0; i < 100 && !byVictim(); i++) await new Promise((r) => setTimeout(r, 50));
    t.true(byVictim(), 'the victim registered its MAC');
    const N = 200;
    const r = await rig.wire(['--dst', G2, '--src', '00:00:00:00:00:01', '--vlan', '1000', '--count', String(N), '--gap-ms', '0.5']);
    t.is(r.frames.length, N, 'the victim receives all its frames');
    t.true(r.frames.every((f) => f.dst === G3 && f.intact));
  } finally {
    await rig.close();
  }
});
