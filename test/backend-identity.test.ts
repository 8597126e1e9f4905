// Issue 11, finding 4: a device's identity may come from dom0. A guest that
// claims the MAC of a host on the NIC side, lies about its assigned MAC, or
// squats on a MAC dom0 assigned to another guest gets nowhere. On the
// in-memory fakes; backend-identity-e2e.test.ts does it with real processes.
import test from 'ava';
import { checkIdentity } from '../backend/identity';
import { PublishedDevice, Refusal } from '../backend/attach';
import { assignmentKeys, matchAssignmentPath, parseAssignedVlan } from '../schema/assignment';
import { control } from './fixtures/backend-control';

const GATEWAY = '00:00:00:00:00:fe';
const G1 = '00:00:00:00:00:11';
const G2 = '00:00:00:00:00:22';

test('guest policy: a guest may not register a MAC the switch has seen on the NIC side', async (t) => {
  const s = control();
  await s.disc.start();
  s.createDomain(1);
  s.createDomain(2);
  await s.disc.idle();
  s.dp.nicMacs.add(GATEWAY);
  s.publish(1, 0, GATEWAY);
  await s.disc.idle();
  t.deepEqual(s.attached(), []);
  t.deepEqual(s.registry.refused, { mac_on_nic: 1 });
  t.true(s.warns().includes(
    'refused domain 1 device 0: 0_ether_addr 00:00:00:00:00:fe is the MAC of a host on the NIC side (seen as a frame\'s source there); a guest may not register it',
  ));
  t.is(s.grants.livePages(), 0);
  // dom0 may still give that MAC to a guest deliberately (it is trusted).
  s.assign(2, 0, { mac: GATEWAY });
  s.publish(2, 0, GATEWAY);
  await s.disc.idle();
  t.deepEqual(s.attached(), ['2/0']);
});

test('a published MAC that differs from its assignment is refused in either policy', async (t) => {
  for (const macPolicy of ['guest', 'dom0'] as const) {
    const s = control({ macPolicy });
    await s.disc.start();
    s.createDomain(1);
    await s.disc.idle();
    s.assign(1, 0, { mac: G1 });
    s.publish(1, 0, '00:00:00:00:00:99');
    await s.disc.idle();
    t.deepEqual(s.attached(), [], macPolicy);
    t.deepEqual(s.registry.refused, { mac_mismatch: 1 });
    t.true(s.warns().includes(
      'refused domain 1 device 0: 0_ether_addr 00:00:00:00:00:99 is not the MAC dom0 assigned to this device (00:00:00:00:00:11 in /local/domain/0/backend/xsw/1/0/mac); the guest must use the assigned MAC',
    ));
  }
});

test('dom0 policy: only assigned MACs attach; the assigned VLAN replaces 1000 + slot', async (t) => {
  const s = control({ macPolicy: 'dom0' });
  await s.disc.start();
  s.createDomain(1);
  s.createDomain(2);
  await s.disc.idle();
  s.publish(1, 0, G1);
  await s.disc.idle();
  t.deepEqual(s.registry.refused, { mac_unassigned: 1 });
  t.true(s.warns().includes(
    'refused domain 1 device 0: 0_ether_addr 00:00:00:00:00:11 was not assigned by dom0 and --mac-policy is dom0; assign it with xenstore-write /local/domain/0/backend/xsw/1/0/mac 00:00:00:00:00:11',
  ));
  // dom0 assigns it: the assignment event re-checks the device, which attaches.
  s.assign(1, 0, { mac: G1 });
  await s.disc.idle();
  t.deepEqual(s.attached(), ['1/0']);
  t.is(s.dp.specs.get(0)!.vlan, 1000);
  s.assign(2, 0, { mac: G2, vlan: '42' });
  s.publish(2, 0, G2);
  await s.disc.idle();
  t.is(s.registry.find(2, 0)!.vlan, 42);
  t.is([...s.dp.specs.values()].find((x) => x.domid === 2)!.vlan, 42);
  t.true(s.registry.find(2, 0)!.assigned);
  t.is([...s.dp.specs.values()].find((x) => x.domid === 2)!.network, 42, 'and it is switched only within network 42');
  t.true(s.msgs().includes('(1) MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 42 registered (network 42 from dom0)'));
});

test('dom0 changing an attached device\'s assignment re-checks it', async (t) => {
  const s = control();
  await s.disc.start();
  s.createDomain(1);
  await s.disc.idle();
  s.assign(1, 0, { mac: G1 });
  s.publish(1, 0, G1);
  await s.disc.idle();
  t.deepEqual(s.attached(), ['1/0']);
  s.assign(1, 0, { mac: '00:00:00:00:00:12' });
  await s.disc.idle();
  t.deepEqual(s.attached(), []);
  t.deepEqual(s.registry.refused, { mac_mismatch: 1 });
  t.is(s.grants.livePages(), 0);
});

test('the mac_taken lock-out no longer works against a device dom0 assigned: the squatter is detached', async (t) => {
  const s = control();
  await s.disc.start();
  s.createDomain(1);
  s.createDomain(2);
  await s.disc.idle();
  s.assign(2, 0, { mac: G2 });
  // The victim (domain 2) is down; the attacker registers its MAC first.
  s.publish(1, 0, G2);
  await s.disc.idle();
  t.deepEqual(s.attached(), ['1/0']);
  // The victim comes up: it wins, the squatter goes.
  s.publish(2, 0, G2);
  await s.disc.idle();
  t.deepEqual(s.attached(), ['2/0']);
  t.true(s.warns().includes('detached domain 1 device 0: its MAC 00:00:00:00:00:22 is assigned by dom0 to domain 2 device 0'));
  t.is(s.registry.pagesOf(1), 0);
  // The squatter re-announces: refused, the victim keeps its MAC.
  s.startEvent(1, 0, '0');
  s.startEvent(1, 0, '1');
  await s.disc.idle();
  t.deepEqual(s.attached(), ['2/0']);
  t.is(s.registry.refused.mac_taken, 1);
  // Without an assignment the old rule stands: first come, first served.
  s.createDomain(3);
  await s.disc.idle();
  s.publish(3, 0, G2);
  await s.disc.idle();
  t.deepEqual(s.attached(), ['2/0']);
  t.is(s.registry.refused.mac_taken, 2);
});

test('two devices dom0 assigned the same MAC: the first keeps it', async (t) => {
  const s = control();
  await s.disc.start();
  s.createDomain(1);
  s.createDomain(2);
  await s.disc.idle();
  s.assign(1, 0, { mac: G1 });
  s.assign(2, 0, { mac: G1 });
  s.publish(1, 0, G1);
  await s.disc.idle();
  s.publish(2, 0, G1);
  await s.disc.idle();
  t.deepEqual(s.attached(), ['1/0']);
  t.is(s.registry.refused.mac_taken, 1);
});

test('a bad assignment is refused with a line naming the node', async (t) => {
  const s = control();
  await s.disc.start();
  s.createDomain(1);
  s.createDomain(2);
  await s.disc.idle();
  s.assign(1, 0, { mac: 'ff:ff:ff:ff:ff:ff' });
  s.publish(1, 0, 'ff:ff:ff:ff:ff:ff');
  s.assign(2, 0, { mac: G2, vlan: '1005' });
  s.publish(2, 0, G2);
  await s.disc.idle();
  t.deepEqual(s.attached(), []);
  t.true(s.warns().some((m) => m.startsWith('refused domain 1 device 0: 0_ether_addr "ff:ff:ff:ff:ff:ff" is a multicast MAC address')));
  t.true(s.warns().includes(
    'refused domain 2 device 0: /local/domain/0/backend/xsw/2/0/vlan 1005 is in the range the switch gives devices itself (1000-1063); dom0 must assign another VLAN',
  ));
  s.startEvent(1, 0, '0');
  void s.store.write('/local/domain/1/control/dpdk/0_ether_addr', G1);
  s.assign(1, 0, { mac: 'not a mac' });
  s.startEvent(1, 0, '1');
  await s.disc.idle();
  t.true(s.warns().some((m) => m.startsWith('refused domain 1 device 0: /local/domain/0/backend/xsw/1/0/mac "not a mac" is not six hex byte pairs')));
  t.is(s.registry.refused.bad_assignment, 2);
});

test('checkIdentity alone: the rules in order', (t) => {
  const dev = (mac: string, assigned: PublishedDevice['assigned']): PublishedDevice => ({
    domid: 5, dev: 1, mac, assigned, rxList: [], txList: [], flagRef: 8, pools: [], fingerprint: '',
  });
  const seen = (m: string) => m === GATEWAY;
  const code = (f: () => void) => (t.throws(f, { instanceOf: Refusal }) as Refusal).code;
  t.notThrows(() => checkIdentity(dev(G1, {}), 'guest', seen));
  t.is(code(() => checkIdentity(dev(GATEWAY, {}), 'guest', seen)), 'mac_on_nic');
  t.notThrows(() => checkIdentity(dev(GATEWAY, { mac: GATEWAY }), 'guest', seen));
  t.is(code(() => checkIdentity(dev(G1, {}), 'dom0', seen)), 'mac_unassigned');
  t.is(code(() => checkIdentity(dev(G1, { mac: G2 }), 'dom0', seen)), 'mac_mismatch');
  t.is(code(() => checkIdentity(dev(G1, { vlan: 1063 }), 'guest', seen)), 'bad_assignment');
  t.notThrows(() => checkIdentity(dev(G1, { vlan: 1064 }), 'guest', seen));
});

test('assignment paths and values are parsed strictly', (t) => {
  t.deepEqual(assignmentKeys(3, 1), {
    dir: '/local/domain/0/backend/xsw/3/1', mac: '/local/domain/0/backend/xsw/3/1/mac', vlan: '/local/domain/0/backend/xsw/3/1/vlan',
  });
  t.deepEqual(matchAssignmentPath('/local/domain/0/backend/xsw/3/1/mac'), { domid: 3, dev: 1 });
  t.deepEqual(matchAssignmentPath('/local/domain/0/backend/xsw/3/1'), { domid: 3, dev: 1 });
  t.deepEqual(matchAssignmentPath('/local/domain/0/backend/xsw/3'), { domid: 3 });
  for (const p of ['/local/domain/0/backend/xsw/0/1', '/local/domain/0/backend/xsw/03/1', '/local/domain/0/backend/xsw/3/1/other',
    '/local/domain/0/backend/xsw/32752/0', '/local/domain/1/backend/xsw/3/1', '/local/domain/0/backend/xsw']) {
    t.is(matchAssignmentPath(p), null, p);
  }
  t.deepEqual(parseAssignedVlan('42'), { ok: true, value: 42 });
  t.deepEqual(parseAssignedVlan('4094'), { ok: true, value: 4094 });
  for (const v of ['0', '4095', '042', '-1', '1e3', '', ' 5', '99999']) t.false(parseAssignedVlan(v).ok, v);
});
