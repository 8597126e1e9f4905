// The back end and its xenstored, end to end with real processes: a guest
// attacking xenstored (issue 11 finding 1) and a lost XenStore connection,
// both while two guests switch frames (NIC -> guest 1 -> guest 2 -> NIC).
// Guest processes are xsw-front; xenstored runs in this test process
// (test/fixtures/backend-rig.ts), so a test can reach into it.
import test from 'ava';
import fs from 'node:fs';
import { XenStoreClient } from '../xenstore/client';
import type { Connection } from '../xenstore/server/connection';
import { Child, exitStatus, sleep } from '../harness/child';
import { Rig } from './fixtures/backend-rig';

const G1 = '00:00:00:00:00:11';
const G2 = '00:00:00:00:00:22';
const G3 = '00:00:00:00:00:33';
const G4 = '00:00:00:00:00:44';
const G5 = '00:00:00:00:00:55';
const GEN = '00:00:00:00:00:01';
const FRONT = ['--nb-mbuf', '512', '--log-level', 'warn'];

const logs = (p: Child, level: number, re: RegExp) => p.logs().filter((l) => l.level === level && re.test(l.msg));

/** Two guests forwarding: NIC -> guest 1 -> (vm2vm) guest 2 -> NIC. */
async function twoGuests(rig: Rig, be: Child): Promise<void> {
  await rig.createDomain(1);
  await rig.createDomain(2);
  rig.guest(1, ['--mac', G1, '--fwd', 'mac', '--eth-peer', G2, ...FRONT]);
  await be.waitLog(/MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
  rig.guest(2, ['--mac', G2, '--fwd', 'mac', '--eth-peer', G3, ...FRONT]);
  await be.waitLog(/MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1001 registered/);
}

/** S frames through both guests, spread over about `ms`. */
function traffic(rig: Rig, S: number, ms: number) {
  return rig.wire(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', String(S), '--gap-ms', String(ms / S), '--wait-ms', '3000']);
}

/** The back end's connection as xenstored sees it: the privileged one with its three watches. */
function backendConnection(rig: Rig): Connection {
  const c = [...rig.xenstored.core.connections].find((x) => x.privileged && rig.xenstored.core.watches.countOf(x) >= 3);
  if (!c) throw new Error('the back end is not connected to xenstored');
  return c;
}

/** A domain whose control/dpdk the toolstack provisions itself (so it can announce with no back end around). */
async function provisionedDomain(rig: Rig, domid: number): Promise<void> {
  await rig.createDomain(domid);
  await rig.dom0.mkdir(`/local/domain/${domid}/control/dpdk`);
  await rig.dom0.setPerms(`/local/domain/${domid}/control/dpdk`, ['n0', `b${domid}`]);
}

test.serial('finding 1 end to end: a guest flooding xenstored with a huge commit neither stops the back end nor costs a frame', async (t) => {
  const rig = await Rig.start();
  try {
    const be = rig.backend(['--vm2vm']);
    await be.waitLine('err', /watching/);
    await twoGuests(rig, be);
    await rig.createDomain(3);
    const attacker = await XenStoreClient.connect({ path: rig.xenstored.domainSocketPath(3) });
    await rig.dom0.write('/local/domain/3/data', '');
    await rig.dom0.setPerms('/local/domain/3/data', ['n3']);
    const beConn = backendConnection(rig);

    const S = 3000;
    const frames = traffic(rig, S, 6000);
    await sleep(300);
    // The reported attack: a 2,000-byte node name written 1,000 times in one transaction.
    const name = `data/${'A'.repeat(2000)}`;
    await attacker.transaction(async (tx) => {
      for (let i = 0; i < 1000; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => tx.write(name, String(i + j))));
    });
    // Its strongest form: 850 nodes with ~1.9 KB paths, committed five times (8 MB of events to dom0).
    const paths: string[] = [];
    for (const parent of ['data/a', 'data/b']) for (let i = 0; i < 425; i++) paths.push(`${parent}/${parent.slice(-1).repeat(1900)}/c${i}`);
    for (let i = 0; i < paths.length; i += 200) await Promise.all(paths.slice(i, i + 200).map((p) => attacker.write(p, '')));
    for (let round = 0; round < 5; round++) {
      await attacker.transaction(async (tx) => {
        for (let i = 0; i < paths.length; i += 200) await Promise.all(paths.slice(i, i + 200).map((p) => tx.write(p, String(round))));
      });
    }
    const r = await frames;
    t.is(r.frames.length, S, 'the guests lost no frame');
    t.true(r.frames.every((f) => f.dst === G3 && f.intact));
    t.is(be.child.exitCode, null, 'the back end is still running');
    t.false(beConn.closed, 'xenstored kept the back end\'s connection');
    t.is(logs(be, 40, /lost the connection to XenStore/).length, 0);
    t.is(logs(be, 50, /./).length, 0, 'no error logged');
    // The control plane still works: a guest arriving now is attached.
    await rig.createDomain(4);
    rig.guest(4, ['--mac', G4, ...FRONT]);
    await be.waitLog(/MAC_ADDRESS 00:00:00:00:00:44 and VLAN_TAG 1002 registered/);
    t.log(`${r.frames.length}/${S} frames; xenstored sent the back end ${beConn.events.sent} events, collapsed ${beConn.events.collapsed}`);
    attacker.close();
  } finally {
    await rig.close();
  }
});

test.serial('XenStore lost under traffic: devices keep switching, the back end reconnects and reconciles', async (t) => {
  const rig = await Rig.start();
  try {
    const be = rig.backend(['--vm2vm', '--xenstore-retry', '30']);
    await be.waitLine('err', /watching/);
    await twoGuests(rig, be);
    await rig.createDomain(4);
    rig.guest(4, ['--mac', G4, ...FRONT]);
    await be.waitLog(/MAC_ADDRESS 00:00:00:00:00:44 and VLAN_TAG 1002 registered/);

    const S = 3000;
    const frames = traffic(rig, S, 6000);
    await sleep(500);
    // xenstored goes away for the back end: its socket file vanishes and its connection is cut.
    const sock = rig.xenstored.socketPath;
    fs.renameSync(sock, `${sock}.away`);
    backendConnection(rig).close();
    await be.waitLog(/lost the connection to XenStore at .*: the 3 attached devices keep switching; reconnecting for up to 30 s/);
    // Meanwhile a guest arrives (the toolstack provisions its node) and domain 4 goes away.
    await provisionedDomain(rig, 5);
    rig.guest(5, ['--mac', G5, ...FRONT]);
    for (let i = 0; i < 400 && (await rig.dom0.tryRead('/local/domain/5/control/dpdk/event_type_start_0')) !== '1'; i++) await sleep(10);
    await rig.dom0.rm('/local/domain/4');
    await rig.dom0.release(4);
    await sleep(1500);
    fs.renameSync(`${sock}.away`, sock);
    await be.waitLog(/reconnected to XenStore at .* after [0-9.]+ s: watching again and reconciled/, 15000);
    await be.waitLog(/MAC_ADDRESS 00:00:00:00:00:55 and VLAN_TAG \d+ registered/);
    await be.waitLog(/detached domain 4 device 0: the domain was released/);
    const r = await frames;
    t.is(r.frames.length, S, 'no frame lost while XenStore was away');
    t.true(r.frames.every((f) => f.dst === G3 && f.intact));
    t.is(be.child.exitCode, null);
    t.is(logs(be, 40, /lost the connection/).length, 1, 'one line when it went away');
    t.is(logs(be, 30, /reconnected/).length, 1, 'one line when it came back');
    t.is(logs(be, 50, /./).length, 0, 'no error logged');
    // Guests 1 and 2 kept their devices throughout: registered once each.
    t.is(be.logs().filter((l) => /MAC_ADDRESS 00:00:00:00:00:11 and/.test(l.msg)).length, 1);
    t.is(be.logs().filter((l) => /MAC_ADDRESS 00:00:00:00:00:22 and/.test(l.msg)).length, 1);
  } finally {
    await rig.close();
  }
});

test.serial('XenStore gone for good: after --xenstore-retry the back end says so in one sentence and exits 1', async (t) => {
  const rig = await Rig.start();
  try {
    const be = rig.backend(['--vm2vm', '--xenstore-retry', '2']);
    await be.waitLine('err', /watching/);
    await rig.createDomain(1);
    rig.guest(1, ['--mac', G1, ...FRONT]);
    await be.waitLog(/MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
    const t0 = Date.now();
    fs.rmSync(rig.xenstored.socketPath);
    backendConnection(rig).close();
    const code = exitStatus(await be.exited);
    const took = Date.now() - t0;
    t.is(code, 1);
    t.true(took >= 1500 && took < 10000, `gave up after ${took} ms`);
    const errors = logs(be, 50, /./);
    t.is(errors.length, 1);
    t.regex(errors[0].msg, /^XenStore at .* did not come back within 2 s \(.*\): detaching every device and exiting; restart xsw-backend once xenstored is back$/);
    t.truthy(be.logs().find((l) => /stopped: every device detached/.test(l.msg)));
  } finally {
    await rig.close();
  }
});
