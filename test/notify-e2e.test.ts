// Notifications end to end on the simulated platform (docs/dataplane.md#notifications):
// xsw-backend and two xsw-front guests in interrupt mode sleep between frames
// and are woken through the sim's event channels and the NIC's fd; a guest
// started with --no-notify (DPDK's keys: no V_event_channel) stays polled and
// is switched all the same. Needs root (netns, veth, AF_PACKET).
import test from 'ava';
import { Rig } from './fixtures/backend-rig';

const G1 = '00:00:00:00:00:11';
const G2 = '00:00:00:00:00:22';
const G3 = '00:00:00:00:00:33';
const GEN = '00:00:00:00:00:01';
const FRONT = ['--nb-mbuf', '512', '--log-level', 'warn'];

interface Registered { msg: string; slot?: number; wakeup?: string }

function registered(logs: Registered[], mac: string): Registered | undefined {
  return logs.find((l) => l.msg.includes(`MAC_ADDRESS ${mac} `) && l.msg.includes('registered'));
}

for (const { title, g2Args, g2Wakeup } of [
  { title: 'both guests notify', g2Args: [] as string[], g2Wakeup: 'evtchn' },
  { title: 'guest 2 is polled (--no-notify)', g2Args: ['--no-notify'], g2Wakeup: 'polled' },
]) {
  test.serial(`interrupt mode, ${title}: each frame, sent after everything fell asleep, crosses NIC -> guest 1 -> guest 2 -> NIC`, async (t) => {
    const rig = await Rig.start();
    try {
      await rig.createDomain(1);
      await rig.createDomain(2);
      const be = rig.backend(['--vm2vm', '--poll', 'interrupt', '--log-level', 'info']);
      await be.waitLine('err', /watching/);
      rig.guest(1, ['--mac', G1, '--fwd', 'mac', '--eth-peer', G2, '--poll', 'interrupt', ...FRONT]);
      await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
      rig.guest(2, ['--mac', G2, '--fwd', 'mac', '--eth-peer', G3, '--poll', 'interrupt', ...g2Args, ...FRONT]);
      await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1001 registered/);
      const logs = be.logs() as unknown as Registered[];
      t.is(registered(logs, G1)?.wakeup, 'evtchn');
      t.is(registered(logs, G2)?.wakeup, g2Wakeup);
      t.truthy(logs.find((l) => /poll mode interrupt, guests notify through sim event channels/.test(l.msg)));

      // 20 ms apart: the back end sleeps after one idle loop, the guests too,
      // so every frame needs three wake-ups (NIC fd, guest 1, guest 2's kick or poll).
      const N = 60;
      const r = await rig.wire(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', String(N), '--size', '128', '--gap-ms', '20']);
      t.is(r.frames.length, N);
      t.is(new Set(r.frames.map((f) => f.seq)).size, N);
      t.true(r.frames.every((f) => f.dst === G3 && f.vlan === 1001 && f.intact && f.len === 128));
    } finally {
      await rig.close();
    }
  });
}
