// xsw-sim as a process: up, create, list, exec, destroy, down, and the
// one-sentence errors. The grant layer is reached through the addon; the
// first test points XSW_ADDON at a recording stand-in to check exactly what
// the toolstack asks of it, the last one uses the real addon.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Child, run } from '../harness/child';
import { CLI } from '../harness/cli-paths';
import { XenStoreClient } from '../xenstore/client';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function sim(env: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> {
  const r = await run(process.execPath, [CLI.sim, ...args], { env: { ...process.env, ...env }, timeoutMs: 30_000 });
  return { code: r.code, stdout: r.out, stderr: r.err };
}

/** `xsw-sim down` when the test ends, awaited: the tempDir teardown after it removes the directory down needs. */
function downAtEnd(t: { teardown(fn: () => Promise<void>): void }, env: NodeJS.ProcessEnv): void {
  t.teardown(async () => {
    await sim(env, 'down');
  });
}

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xsw-sim-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A stand-in addon that records the sim grant calls, one line each. */
function recordingAddon(dir: string): { file: string; calls: () => string[] } {
  const file = path.join(dir, 'fake-addon.js');
  const log = path.join(dir, 'calls.log');
  fs.writeFileSync(file, `const fs = require('fs');
const rec = (s) => fs.appendFileSync(${JSON.stringify(log)}, s + '\\n');
module.exports = {
  grant: {
    simInit: (dir, limit) => rec('simInit ' + dir + ' ' + limit),
    simDestroyDomain: (dir, domid) => rec('simDestroyDomain ' + dir + ' ' + domid),
  },
};
`);
  return { file, calls: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trimEnd().split('\n') : []) };
}

test('up / create / list / exec / destroy / down round trip', async (t) => {
  const root = tempDir(t);
  const dir = path.join(root, 'sim');
  const addon = recordingAddon(root);
  const env = { XSW_SIM_DIR: dir, XSW_ADDON: addon.file };
  downAtEnd(t, env);

  const up = await sim(env, 'up', '--gntalloc-limit', '4096');
  t.is(up.code, 0, up.stderr);
  const socket = path.join(dir, 'xenstored', 'socket');
  t.is(up.stdout, `export XSW_SIM_DIR=${dir}\nexport XENSTORED_PATH=${socket}\n`);
  const again = await sim(env, 'up');
  t.is(again.code, 0);
  t.is(again.stdout, up.stdout);
  t.regex(again.stderr, /already up/);
  t.deepEqual(addon.calls(), [`simInit ${dir} 4096`]);

  const dom0 = await XenStoreClient.connect({ path: socket });
  const events: string[] = [];
  dom0.on('watch', (p: string) => events.push(p));
  await dom0.watch('@introduceDomain', 'i');
  await dom0.watch('@releaseDomain', 'r');

  t.deepEqual(await sim(env, 'create', 'd1'), { code: 0, stdout: '1\n', stderr: '' });
  t.deepEqual(await sim(env, 'create', 'd2'), { code: 0, stdout: '2\n', stderr: '' });
  const dup = await sim(env, 'create', 'd1');
  t.is(dup.code, 1);
  t.is(dup.stderr, 'xsw-sim: a domain named d1 already exists: pick another name or destroy it first\n');
  t.is(await dom0.read('/local/domain/2/name'), 'd2');
  t.is(await dom0.read('/local/domain/2/domid'), '2');
  t.deepEqual(await dom0.getPerms('/local/domain/2/control'), [{ access: 'n', domid: 0 }, { access: 'r', domid: 2 }]);
  t.deepEqual(await dom0.getPerms('/local/domain/2/data'), [{ access: 'n', domid: 2 }]);
  t.is(await dom0.tryRead('/local/domain/2/control/dpdk'), undefined);

  const list = await sim(env, 'list');
  t.deepEqual(list.stdout.trimEnd().split('\n').map((l) => l.trim().split(/\s+/)), [['Name', 'ID'], ['Domain-0', '0'], ['d1', '1'], ['d2', '2']]);

  const ex = await sim(env, 'exec', 'd1', '--', 'sh', '-c',
    'echo "$XENSTORED_PATH $XSW_SIM_DOMID $XSW_PLATFORM $XSW_SIM_DIR"; xenstore-read domid; xenstore-write data/hello hi; exit 7');
  t.is(ex.code, 7);
  t.is(ex.stdout, `${path.join(dir, 'xenstored', 'dom1.sock')} 1 sim ${dir}\n1\n`);
  t.is(await dom0.read('/local/domain/1/data/hello'), 'hi');
  const refused = await sim(env, 'exec', 'd1', '--', 'xenstore-write', 'control/dpdk', 'x');
  t.not(refused.code, 0);

  // A process running as d2 is killed by destroy, like xl destroy kills a VM.
  const long = new Child(process.execPath, [CLI.sim, 'exec', 'd2', '--', 'sleep', '60'], { env: { ...process.env, ...env } });
  const longExit = long.exited.then((e) => e.code);
  for (let i = 0; i < 200 && fs.readdirSync(path.join(dir, 'domains', '2')).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.is(fs.readdirSync(path.join(dir, 'domains', '2')).length, 1);
  t.deepEqual(await sim(env, 'destroy', 'd2'), { code: 0, stdout: '', stderr: '' });
  t.is(await longExit, 128 + 9);
  t.is(await dom0.tryRead('/local/domain/2/name'), undefined);
  t.false(await dom0.isDomainIntroduced(2));
  t.deepEqual(addon.calls(), [`simInit ${dir} 4096`, `simDestroyDomain ${dir} 2`]);
  await dom0.getDomainPath(0);
  t.deepEqual(events, ['@introduceDomain', '@releaseDomain', '@introduceDomain', '@introduceDomain', '@releaseDomain']);
  const gone = await sim(env, 'exec', 'd2', '--', 'true');
  t.is(gone.code, 1);
  t.is(gone.stderr, 'xsw-sim: no domain named d2: see `xsw-sim list`\n');
  dom0.close();

  t.deepEqual(await sim(env, 'down'), { code: 0, stdout: '', stderr: '' });
  t.false(fs.existsSync(socket));
  t.false(fs.existsSync(path.join(dir, 'xenstored', 'dom1.sock')));
  t.deepEqual(addon.calls(), [`simInit ${dir} 4096`, `simDestroyDomain ${dir} 2`, `simDestroyDomain ${dir} 1`]);
  const after = await sim(env, 'list');
  t.is(after.code, 1);
  t.is(after.stderr, `xsw-sim: the simulated platform is not running in ${dir}: start it with \`eval "$(xsw-sim up)"\` (or set XSW_SIM_DIR to where it runs)\n`);
});

test('create --mac/--vlan assigns identities under dom0\'s tree, read-only to the guest; destroy removes them', async (t) => {
  const root = tempDir(t);
  const dir = path.join(root, 'sim');
  const env = { XSW_SIM_DIR: dir, XSW_ADDON: recordingAddon(root).file };
  downAtEnd(t, env);
  t.is((await sim(env, 'up')).code, 0);
  const c = await sim(env, 'create', 'vm1', '--mac', '00:16:3E:00:00:01', '--mac', '00:16:3e:00:00:02', '--vlan', '42');
  t.deepEqual(c, { code: 0, stdout: '1\n', stderr: '' });
  const dom0 = await XenStoreClient.connect({ path: path.join(dir, 'xenstored', 'socket') });
  t.teardown(() => dom0.close());
  const base = '/local/domain/0/backend/xsw/1';
  t.is(await dom0.read(`${base}/0/mac`), '00:16:3e:00:00:01');
  t.is(await dom0.read(`${base}/0/vlan`), '42');
  t.is(await dom0.read(`${base}/1/mac`), '00:16:3e:00:00:02');
  t.is(await dom0.tryRead(`${base}/1/vlan`), undefined);
  for (const p of [base, `${base}/0`, `${base}/0/mac`, `${base}/1/mac`]) {
    t.deepEqual(await dom0.getPerms(p), [{ access: 'n', domid: 0 }, { access: 'r', domid: 1 }], p);
  }
  // The guest reads its assignment but cannot change it.
  const read = await sim(env, 'exec', 'vm1', '--', 'xenstore-read', `${base}/0/mac`);
  t.deepEqual([read.code, read.stdout], [0, '00:16:3e:00:00:01\n']);
  const write = await sim(env, 'exec', 'vm1', '--', 'xenstore-write', `${base}/0/mac`, '00:16:3e:00:00:99');
  t.not(write.code, 0);
  t.is(await dom0.read(`${base}/0/mac`), '00:16:3e:00:00:01');
  t.is((await sim(env, 'destroy', 'vm1')).code, 0);
  t.is(await dom0.tryRead(base), undefined, 'the toolstack removes it with the domain');
  // A new domain 1 without --mac inherits nothing.
  t.deepEqual(await sim(env, 'create', 'vm2'), { code: 0, stdout: '1\n', stderr: '' });
  t.is(await dom0.tryRead(base), undefined);
  const bad = await sim(env, 'create', 'vm3', '--mac', '01:00:5e:00:00:01');
  t.is(bad.code, 1);
  t.regex(bad.stderr, /option '--mac <mac>' argument '01:00:5e:00:00:01' is invalid\. expected a unicast MAC like 00:16:3e:00:00:01: "01:00:5e:00:00:01" is a multicast MAC address, which no device may have/);
  const badVlan = await sim(env, 'create', 'vm3', '--vlan', '4095');
  t.is(badVlan.code, 1);
  t.regex(badVlan.stderr, /--vlan <id>.*"4095" is not a VLAN id from 1 to 4094/);
});

test('create --vif writes the keys libxl writes for a vif, each side owned as libxl leaves it; destroy removes them', async (t) => {
  const root = tempDir(t);
  const dir = path.join(root, 'sim');
  const env = { XSW_SIM_DIR: dir, XSW_ADDON: recordingAddon(root).file };
  downAtEnd(t, env);
  t.is((await sim(env, 'up')).code, 0);
  const c = await sim(env, 'create', 'web', '--vif', 'mac=00:16:3E:00:00:21', '--vif', 'mac=00:16:3e:00:00:22,script=vif-xsw');
  t.deepEqual(c, { code: 0, stdout: '1\n', stderr: '' });
  const dom0 = await XenStoreClient.connect({ path: path.join(dir, 'xenstored', 'socket') });
  t.teardown(() => dom0.close());
  const be = '/local/domain/0/backend/vif/1/0';
  const fe = '/local/domain/1/device/vif/0';
  const expectBe: Record<string, string> = {
    frontend: fe, 'frontend-id': '1', online: '1', state: '1', script: '/etc/xen/scripts/vif-xsw',
    mac: '00:16:3e:00:00:21', handle: '0', type: 'vif',
  };
  for (const [k, v] of Object.entries(expectBe)) t.is(await dom0.read(`${be}/${k}`), v, k);
  const expectFe: Record<string, string> = { backend: be, 'backend-id': '0', state: '1', handle: '0', mac: '00:16:3e:00:00:21' };
  for (const [k, v] of Object.entries(expectFe)) t.is(await dom0.read(`${fe}/${k}`), v, k);
  t.is(await dom0.read('/local/domain/0/backend/vif/1/1/script'), 'vif-xsw');
  t.deepEqual(await dom0.getPerms(be), [{ access: 'n', domid: 0 }, { access: 'r', domid: 1 }]);
  t.deepEqual(await dom0.getPerms(fe), [{ access: 'n', domid: 1 }, { access: 'r', domid: 0 }]);
  // The guest writes its own front end's keys, never the back end's.
  const w = await sim(env, 'exec', 'web', '--', 'xenstore-write', `${fe}/tx-ring-ref`, '8');
  t.is(w.code, 0, w.stderr);
  const bw = await sim(env, 'exec', 'web', '--', 'xenstore-write', `${be}/mac`, '00:16:3e:00:00:99');
  t.not(bw.code, 0);
  t.is((await sim(env, 'destroy', 'web')).code, 0);
  t.is(await dom0.tryRead('/local/domain/0/backend/vif/1'), undefined, 'libxl removes the back-end directories with the domain');
  const bad = await sim(env, 'create', 'x', '--vif', 'mac=01:00:5e:00:00:01');
  t.is(bad.code, 1);
  t.regex(bad.stderr, /--vif <spec>.*the vif's mac "01:00:5e:00:00:01" is a multicast MAC address/);
  const unknown = await sim(env, 'create', 'x', '--vif', 'mac=00:16:3e:00:00:01,rate=10Mb/s');
  t.regex(unknown.stderr, /unknown vif setting "rate=10Mb\/s": use mac=…, script=… or bridge=…/);
});

test('bad commands and arguments exit non-zero with one clear line', async (t) => {
  const root = tempDir(t);
  const env = { XSW_SIM_DIR: path.join(root, 'sim'), XSW_ADDON: recordingAddon(root).file };
  const bogus = await sim(env, 'bogus');
  t.is(bogus.code, 1);
  t.regex(bogus.stderr, /^error: unknown command 'bogus'/);
  const badLimit = await sim(env, 'up', '--gntalloc-limit', 'lots');
  t.is(badLimit.code, 1);
  t.regex(badLimit.stderr, /--gntalloc-limit.*expected a positive whole number/);
  const badName = await sim(env, 'create', 'no spaces');
  t.is(badName.code, 1);
  t.regex(badName.stderr, /^xsw-sim: invalid domain name "no spaces": use 1-64 letters/);
  const notUp = await sim(env, 'create', 'd1');
  t.is(notUp.code, 1);
  t.regex(notUp.stderr, /^xsw-sim: the simulated platform is not running in .*: start it with/);
  t.is(notUp.stderr.trimEnd().split('\n').length, 1);
  const down = await sim(env, 'down');
  t.is(down.code, 0);
  t.regex(down.stderr, /nothing was running/);
});

test('with the real addon, up creates the grant layer and the round trip works', async (t) => {
  const root = tempDir(t);
  const dir = path.join(root, 'sim');
  const env = { XSW_SIM_DIR: dir };
  downAtEnd(t, env);
  const up = await sim(env, 'up');
  t.is(up.code, 0, up.stderr);
  t.deepEqual(await sim(env, 'create', 'g'), { code: 0, stdout: '1\n', stderr: '' });
  const ex = await sim(env, 'exec', 'g', '--', 'xenstore-read', 'name');
  t.deepEqual([ex.code, ex.stdout], [0, 'g\n']);
  const destroy = await sim(env, 'destroy', 'g');
  t.is(destroy.code, 0, destroy.stderr);
  const down = await sim(env, 'down');
  t.is(down.code, 0, down.stderr);
});
