// Issue 11, finding 10: one back end per host. A second xsw-backend on the
// same platform used to attach the same devices and poll the same rings
// (duplicated and reordered frames, a receiver falsely quarantined); now it
// exits with one sentence naming the running one's pid. The lock is the
// kernel's (flock), so a SIGKILLed back end leaves nothing stale behind.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { lockFileFor, takeInstanceLock } from '../backend/instance-lock';
import { exitStatus } from '../harness/child';
import { Rig } from './fixtures/backend-rig';

const G1 = '00:00:00:00:00:11';

test.serial('a second back end on one sim exits with one sentence; after a SIGKILL of the first, a new one starts', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    const be1 = rig.backend(['--vm2vm'], { nic: false });
    await be1.waitLine('err', /watching/);
    rig.guest(1, ['--mac', G1, '--fwd', 'io', '--nb-mbuf', '512', '--log-level', 'warn']);
    await be1.waitLog(/MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);

    const be2 = rig.backend(['--vm2vm'], { nic: false });
    t.is(exitStatus(await be2.exited), 1);
    const sentence = `xsw-backend: Another xsw-backend (pid ${be1.pid}) is already running on this sim platform and holds ${path.join(rig.dir, 'backend.lock')}: stop it first, or wait for it to exit.`;
    t.deepEqual(be2.err.filter((l) => !l.startsWith('{')), [sentence]);
    t.false(be2.err.some((l) => /registered|watching/.test(l)), 'it attached nothing');
    t.is(fs.readFileSync(path.join(rig.dir, 'backend.lock'), 'utf8'), `${be1.pid}\n`);

    be1.kill('SIGKILL');
    await be1.exited;
    const be3 = rig.backend(['--vm2vm'], { nic: false });
    await be3.waitLog(/MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
    t.is(fs.readFileSync(path.join(rig.dir, 'backend.lock'), 'utf8'), `${be3.pid}\n`);
    await be3.waitLine('err', /watching/);
    // No pause: a SIGTERM right after the line still ends it cleanly (backend/cli.ts).
    be3.kill('SIGTERM');
    t.is(exitStatus(await be3.exited), 0);
    // A clean exit lets go too.
    const be4 = rig.backend(['--vm2vm'], { nic: false });
    await be4.waitLine('err', /watching/);
  } finally {
    await rig.close();
  }
});

test('the lock file is per platform: the sim directory, or /run/xsw on Xen', async (t) => {
  t.is(lockFileFor('xen'), '/run/xsw/backend.lock');
  t.is(lockFileFor('sim', { XSW_SIM_DIR: '/tmp/some-sim' }), '/tmp/some-sim/backend.lock');
  const dir = fs.mkdtempSync('/tmp/xsw-lock-test-');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sub', 'backend.lock');
  const first = await takeInstanceLock(file);
  t.true('release' in first);
  const second = await takeInstanceLock(file);
  t.deepEqual(second, { file, holder: process.pid });
  if ('release' in first) first.release();
  const third = await takeInstanceLock(file);
  t.true('release' in third, 'released: the lock can be taken again');
  if ('release' in third) third.release();
});
