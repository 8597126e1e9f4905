// vhost-user ports added and removed at run time through the control socket
// (`xsw-ctl vhost-user add / remove`), with the real dpdk-testpmd as the
// peer: a back end started without --vhost-user gets a port, testpmd's
// frames reach a Xen guest through it, and removing it takes the device out
// of the switch, the stats and `devices`, and its socket file away. The same
// validation and sentences as the --vhost-user option. testpmd missing is a
// failure with one sentence, never a skip.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run, RunResult } from '../harness/child';
import { CLI } from '../harness/cli-paths';
import { lastJson, Rig, statsUntil } from './fixtures/backend-rig';
import { requireTestpmd, testpmd } from './fixtures/testpmd';

const CHECKER = path.join(__dirname, 'fixtures', 'testpmd-frame-checker.js');
const X = '02:00:00:00:00:11';
const TP = '02:00:00:00:01:01';

interface Dev { kind: string; id: string; slot?: number; mac: string; state: string; path?: string; tx_total: number; rx_total: number; rx_dropped: number }
interface Stats { devices: { mac: string; kind?: string; state: string; rx_total: number; rx_dropped: number }[] }

function ctl(rig: Rig, args: string[]): Promise<RunResult> {
  return run(process.execPath, [CLI.ctl, ...args], { env: rig.env(0), timeoutMs: 30000 });
}

async function ctlJson<T>(rig: Rig, args: string[]): Promise<T> {
  const r = await ctl(rig, [...args, '--json']);
  if (r.code !== 0) throw new Error(`xsw-ctl ${args.join(' ')} failed (${r.code}): ${r.err}`);
  return JSON.parse(r.out) as T;
}

test('xsw-ctl vhost-user add: testpmd frames flow through the new port; remove: the device, its counters and its socket are gone', async (t) => {
  requireTestpmd();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xsw-vhost-ctl-'));
  const sock = path.join(dir, 'rt.sock');
  const rig = await Rig.start();
  let tp: ReturnType<typeof testpmd> | undefined;
  try {
    await rig.createDomain(1);
    const be = rig.backend(['--stats', '1', '--json'], { nic: false });
    await be.waitLine('err', /control socket/);
    const checker = rig.guest(1, [X, TP, '64'], CHECKER);
    await checker.waitLine('out', /^ready$/);
    t.deepEqual(await ctlJson(rig, ['vhost-user']), []);

    // The option's validation and sentences, at run time.
    const relative = await ctl(rig, ['vhost-user', 'add', 'rt.sock']);
    t.is(relative.code, 1);
    t.is(relative.err.trim(), 'xsw-ctl: --vhost-user takes an absolute socket path (at most 107 bytes) then ,client and/or ,mac=MAC, not "rt.sock".');
    const badMac = await ctl(rig, ['vhost-user', 'add', `${sock},mac=01:00:00:00:00:01`]);
    t.regex(badMac.err, /mac= must be a unicast, non-zero address/);
    const noDir = await ctl(rig, ['vhost-user', 'add', path.join(dir, 'nodir', 'x.sock')]);
    t.regex(noDir.err, /cannot listen on the vhost-user socket .*nodir\/x\.sock .*check that its directory exists/i);
    // A socket something listens on (the control socket itself) is refused, not replaced.
    const live = await ctl(rig, ['vhost-user', 'add', path.join(rig.dir, 'backend.sock')]);
    t.regex(live.err, /^xsw-ctl: Another process listens on the vhost-user socket .*backend\.sock: stop it or give another path/);
    t.true(fs.statSync(path.join(rig.dir, 'backend.sock')).isSocket());
    const unknown = await ctl(rig, ['vhost-user', 'remove', sock]);
    t.is(unknown.code, 1);
    t.is(unknown.err.trim(), `xsw-ctl: No vhost-user port on ${sock}: \`xsw-ctl vhost-user\` lists the ports.`);

    const added = await ctl(rig, ['vhost-user', 'add', sock]);
    t.is(added.code, 0, added.err);
    t.regex(added.out, /added vhost-user port .*rt\.sock \(listening\)/);
    t.true(fs.statSync(sock).isSocket());
    const twice = await ctl(rig, ['vhost-user', 'add', `${sock},client`]);
    t.is(twice.err.trim(), `xsw-ctl: A vhost-user port on ${sock} exists already: remove it first, or give another path.`);
    t.deepEqual(await ctlJson(rig, ['vhost-user']), [{ path: sock, client: false, mac: null }]);

    // virtio_user connects once, at start: after the port is added.
    tp = testpmd({ sock, fwd: 'txonly', mac: TP, peer: X, txpkts: 64, prefix: `xswvhc${process.pid}` });
    await be.waitLine('err', /MAC_ADDRESS 02:00:00:00:01:01 and VLAN_TAG \d+ registered \(vhost-user .*rt\.sock/, { timeoutMs: 30000 });
    await statsUntil<Stats>(be, (s) => (s.devices.find((d) => d.mac === X)?.rx_total ?? 0) > 3000, 20000);
    const devs = await ctlJson<Dev[]>(rig, ['devices']);
    const vh = devs.find((d) => d.kind === 'vhost-user');
    t.is(vh?.id, sock);
    t.is(vh?.mac, TP);
    t.is(vh?.state, 'active');
    t.true((vh?.tx_total ?? 0) > 3000);

    const removed = await ctl(rig, ['vhost-user', 'remove', sock]);
    t.is(removed.code, 0, removed.err);
    await be.waitLine('err', /rt\.sock: port removed; its device left the switch and its memory is unmapped/);
    t.false(fs.existsSync(sock), 'the socket file xsw created is removed');
    t.deepEqual(await ctlJson(rig, ['vhost-user']), []);
    t.deepEqual((await ctlJson<Dev[]>(rig, ['devices'])).filter((d) => d.kind === 'vhost-user'), []);
    const stats = await ctlJson<Stats>(rig, ['stats']);
    t.false(stats.devices.some((d) => d.mac === TP), JSON.stringify(stats.devices));
    // The next --stats line too; the back end lives on, the guest still attached.
    const from = be.out.length;
    await be.waitFor('a stats line after the removal', () => (be.out.length > from + 1 ? true : undefined), 5000);
    const last = lastJson<Stats>(be)!;
    t.false(last.devices.some((d) => d.mac === TP));
    t.is(last.devices.find((d) => d.mac === X)?.state, 'active');
    t.true(be.running);
    checker.kill('SIGTERM');
    await checker.exited;
    const res = JSON.parse(checker.out.find((l) => l.startsWith('{')) ?? '{}') as { rx: number; bad: number; firstBad: string };
    t.true(res.rx > 3000);
    t.is(res.bad, 0, res.firstBad);
  } finally {
    tp?.kill('SIGKILL');
    await tp?.exited;
    await rig.close();
  }
});
