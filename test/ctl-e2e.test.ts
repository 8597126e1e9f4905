// xsw-ctl and the back end's control socket, with real processes on the
// simulated platform (the back end's rig: a network namespace, a veth as its
// NIC, the frame generator on the other end; root needed): what `show` and
// `devices` list, releasing a quarantined device, the sentences when the back
// end cannot be reached, and a malformed-request fuzz that must not cost a
// steady flow a single frame.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import test from 'ava';
import { run, RunResult } from '../harness/child';
import { CLI } from '../harness/cli-paths';
import { FAKE_GUEST, Rig, statsUntil } from './fixtures/backend-rig';

const G1 = '00:00:00:00:00:11';
const G2 = '00:00:00:00:00:22';
const G3 = '00:00:00:00:00:33';
const BAD = '00:00:00:00:00:44';
const GEN = '00:00:00:00:00:01';
const FRONT = ['--nb-mbuf', '512', '--log-level', 'warn'];

interface Dev {
  kind: string;
  id: string;
  domid: number;
  device: number;
  slot?: number;
  mac: string;
  vlan: number;
  state: string;
  rx_ring: number | null;
  tx_ring: number | null;
  pages: number;
  tx_total: number;
  tx_dropped: number;
  rx_total: number;
  rx_dropped: number;
  drops: Record<string, number>;
  last_violation: string | null;
}

interface JsonStats {
  devices: { domid: number; dev: number; mac: string; state: string; tx_total: number; tx_dropped: number; rx_total: number; rx_dropped: number; drops: Record<string, number> }[];
  nic: { rx: number; tx: number; dropped: number };
}

export function ctl(rig: Rig, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return run(process.execPath, [CLI.ctl, ...args], { env: { ...rig.env(0), ...env }, timeoutMs: 30000 });
}

async function ctlJson<T>(rig: Rig, args: string[]): Promise<T> {
  const r = await ctl(rig, [...args, '--json']);
  if (r.code !== 0) throw new Error(`xsw-ctl ${args.join(' ')} failed (${r.code}): ${r.err}`);
  return JSON.parse(r.out) as T;
}

test.serial('show and devices --json list exactly the attached guests, with the counters --stats --json prints', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    await rig.createDomain(2);
    await rig.createDomain(3);
    const be = rig.backend(['--vm2vm', '--stats', '1', '--json']);
    await be.waitLine('err', /control socket .*backend\.sock/);
    t.is((fs.statSync(path.join(rig.dir, 'backend.sock')).mode & 0o777), 0o600, 'the socket is root-only');
    t.deepEqual(await ctlJson<Dev[]>(rig, ['devices']), []);
    rig.guest(1, ['--mac', G1, '--fwd', 'mac', '--eth-peer', G2, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
    rig.guest(2, ['--mac', G2, '--fwd', 'mac', '--eth-peer', G3, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1001 registered/);
    const N = 100;
    const r = await rig.wire(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', String(N), '--size', '200', '--gap-ms', '0.5']);
    t.is(r.frames.length, N);

    const s = await statsUntil<JsonStats>(be, (x) => x.devices.find((d) => d.domid === 2)?.tx_total === N);
    const devices = await ctlJson<Dev[]>(rig, ['devices']);
    t.deepEqual(devices.map((d) => [d.kind, d.id, d.mac, d.vlan, d.state, d.slot]), [
      ['pmd', '1:0', G1, 1000, 'active', 0],
      ['pmd', '2:0', G2, 1001, 'active', 1],
    ]);
    for (const d of devices) {
      const j = s.devices.find((x) => x.domid === d.domid && x.dev === d.device)!;
      t.deepEqual([d.tx_total, d.tx_dropped, d.rx_total, d.rx_dropped, d.drops], [j.tx_total, j.tx_dropped, j.rx_total, j.rx_dropped, j.drops]);
      t.is(d.tx_total, N);
      t.is(d.rx_total, N);
      t.deepEqual([d.rx_ring, d.tx_ring], [256, 256]);
      t.true(d.pages > 0);
      t.is(d.last_violation, null);
    }
    const stats = await ctlJson<JsonStats>(rig, ['stats']);
    t.deepEqual(stats.devices.map((d) => [d.domid, d.tx_total, d.rx_total]), [[1, N, N], [2, N, N]]);
    t.deepEqual(stats.nic, s.nic);

    const show = await ctlJson<{ devices: number; quarantined: number; port: string; pid: number; control_socket: string; switch_cycles: { processing: number; idle: number } }>(rig, ['show']);
    t.is(show.devices, 2);
    // The data thread switched 2N frames and idled the rest of the time.
    t.true(show.switch_cycles.processing > 0 && show.switch_cycles.idle > show.switch_cycles.processing, JSON.stringify(show.switch_cycles));
    t.regex((await ctl(rig, ['show'])).out, /^switching: +vm2vm \w+, mtu \d+, \d+ poll loops, busy \d+\.\d % of the time$/m);
    t.is(show.quarantined, 0);
    t.is(show.port, 'be0');
    t.is(show.control_socket, path.join(rig.dir, 'backend.sock'));
    const human = await ctl(rig, ['devices']);
    t.regex(human.out, /^KIND\s+DEV\s+MAC\s+VLAN\s+STATE/);
    t.regex(human.out, /\npmd\s+1:0\s+00:00:00:00:00:11\s+1000\s+active\s+0\s+256\/256/);
    // top, piped: one block per sample, no terminal escapes; rates from the second sample on.
    const top = await ctl(rig, ['top', '--count', '2', '--interval', '1']);
    t.is(top.code, 0, top.err);
    t.is(top.out.match(/^xsw-ctl top: /gm)?.length, 2);
    t.false(top.out.includes('\x1b'));
    t.regex(top.out, /\npmd\s+1:0\s+00:00:00:00:00:11\s+active\s+-\s+-\s+-\s+100\s+100\n/);
    t.regex(top.out, /\npmd\s+1:0\s+00:00:00:00:00:11\s+active\s+0\s+0\s+0\s+100\s+100\n/);
    const macs = await ctlJson<{ mac: string; vlan: number; id: string }[]>(rig, ['macs']);
    t.deepEqual(macs.map((m) => [m.mac, m.vlan, m.id]), [[G1, 1000, '1:0'], [G2, 1001, '2:0']]);

    // The settings a running back end takes from the socket.
    t.is((await ctl(rig, ['set', 'log-level', 'debug'])).code, 0);
    const cfg = JSON.parse((await ctl(rig, ['config'])).out) as { options: { logLevel: string; stats: number }; switch: { mtu: number; port: string } };
    t.is(cfg.options.logLevel, 'debug');
    t.deepEqual([cfg.switch.mtu, cfg.switch.port], [1500, 'be0']);
    t.is((await ctl(rig, ['set', 'stats', '0'])).code, 0);
    const lines = be.out.length;
    await new Promise((res) => setTimeout(res, 2500));
    t.is(be.out.length, lines, 'no statistics once the interval is 0');
    const bad = await ctl(rig, ['set', 'log-level', 'loud']);
    t.is(bad.code, 1);
    t.is(bad.err.trim(), 'xsw-ctl: "level" must be one of trace, debug, info, warn, error, fatal, silent.');
  } finally {
    await rig.close();
  }
});

test.serial('quarantine release re-admits a quarantined device once its guest is fixed', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    const be = rig.backend(['--vm2vm'], { nic: false });
    await be.waitLine('err', /control socket/);
    const fake = rig.guest(1, [JSON.stringify({ mac: BAD, action: 'jump' })], FAKE_GUEST);
    await be.waitLog(/^quarantined domain 1 device 0: avail_idx_jump \(strike 1/);
    const q = await ctlJson<{ id: string; strikes: number; reason: string; waiting_for: string }[]>(rig, ['quarantine']);
    t.deepEqual(q.map((e) => [e.id, e.strikes, e.reason, e.waiting_for]), [['1:0', 1, 'avail_idx_jump', 'unpublish']]);
    const before = await ctlJson<Dev[]>(rig, ['devices']);
    t.deepEqual(before.map((d) => [d.id, d.state, d.slot, d.last_violation]), [['1:0', 'quarantined', undefined, 'avail_idx_jump']]);
    const refused = await ctl(rig, ['capture', '1:0', '-w', path.join(rig.dir, 'x.pcapng')]);
    t.is(refused.code, 1);
    t.is(refused.err.trim(), 'xsw-ctl: Device 1:0 is quarantined, not attached: capture it once it is attached again.');

    fake.kill('SIGUSR1');
    await fake.waitLine('out', /"event":"fixed"/);
    const rel = await ctl(rig, ['quarantine', 'release', '1:0']);
    t.is(rel.code, 0, rel.err);
    t.regex(rel.out, /^released 1:0: it attaches again/);
    await be.waitLog(/^released domain 1 device 0 from quarantine/);
    const registered = /MAC_ADDRESS 00:00:00:00:00:44 and VLAN_TAG 1000 registered/;
    const first = await be.waitLine('err', registered);
    await be.waitLine('err', registered, { from: first + 1 });
    const after = await ctlJson<Dev[]>(rig, ['devices']);
    t.deepEqual(after.map((d) => [d.id, d.state, d.slot, d.last_violation]), [['1:0', 'active', 0, null]]);
    t.deepEqual(await ctlJson<unknown[]>(rig, ['quarantine']), []);
    const again = await ctl(rig, ['quarantine', 'release', '1:0']);
    t.is(again.code, 1);
    t.is(again.err.trim(), 'xsw-ctl: 1:0 is not in quarantine: `xsw-ctl quarantine` lists the devices that are.');
  } finally {
    await rig.close();
  }
});

test.serial('xsw-ctl says in one sentence when the back end is not running or its socket is not accessible', async (t) => {
  const rig = await Rig.start();
  try {
    const sock = path.join(rig.dir, 'backend.sock');
    const none = await ctl(rig, ['show']);
    t.is(none.code, 1);
    t.is(none.err.trim(), `xsw-ctl: xsw-backend is not running: there is no control socket at ${sock} (start xsw-backend, or give its --control-socket with --socket).`);
    // A socket an earlier back end left behind: nothing listens.
    const stale = net.createServer().listen(sock);
    await new Promise((r) => stale.once('listening', r));
    const copy = path.join(rig.dir, 'stale.sock');
    fs.linkSync(sock, copy);
    await new Promise((r) => stale.close(r));
    const left = await ctl(rig, ['--socket', copy, 'devices']);
    t.is(left.code, 1);
    t.regex(left.err.trim(), /^xsw-ctl: xsw-backend is not running: nothing listens on .*stale\.sock, which an earlier back end left behind/);
    // A running back end's socket, for a user who is not root.
    const be = rig.backend([], { nic: false });
    await be.waitLine('err', /control socket/);
    const nobody = await run('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, CLI.ctl, '--socket', sock, 'show'], { env: rig.env(0) });
    t.is(nobody.code, 1);
    t.is(nobody.err.trim(), `xsw-ctl: Cannot open the control socket ${sock}: permission denied (run xsw-ctl as root).`);
    const usage = await ctl(rig, ['quarantine', 'free']);
    t.is(usage.code, 2);
    t.is(usage.err.trim(), 'xsw-ctl: Usage: xsw-ctl quarantine [release DEV], where DEV is domid:device or a MAC.');
  } finally {
    await rig.close();
  }
});

/** One request on a fresh connection; retries while the kernel's accept queue is full. Resolves with the reply line. */
async function oneRequest(file: string, line: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise<string>((resolve, reject) => {
        const s = net.createConnection(file);
        let buf = '';
        s.on('error', reject);
        s.on('connect', () => s.write(line));
        s.on('data', (d) => {
          buf += d.toString();
          const nl = buf.indexOf('\n');
          if (nl >= 0) {
            s.destroy();
            resolve(buf.slice(0, nl));
          }
        });
        s.on('close', () => reject(new Error(`closed without a reply: ${buf}`)));
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || attempt > 200) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

test.serial('a malformed-request fuzz (random bytes, huge lines, half-open connections, 1000 clients) costs a steady flow no frame', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    const be = rig.backend(['--vm2vm', '--stats', '1', '--json']);
    await be.waitLine('err', /control socket/);
    rig.guest(1, ['--mac', G1, '--fwd', 'mac', '--eth-peer', G2, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
    const sock = path.join(rig.dir, 'backend.sock');

    const N = 2000;
    const flow = rig.wire(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', String(N), '--size', '128', '--gap-ms', '1']);
    const replies: Record<string, number> = {};
    const count = (line: string): void => {
      const r = JSON.parse(line) as { ok: boolean; code?: string };
      const k = r.ok ? 'ok' : r.code!;
      replies[k] = (replies[k] ?? 0) + 1;
    };

    // Half-open connections: a partial line, never finished, never closed.
    const halfOpen: net.Socket[] = [];
    for (let i = 0; i < 20; i++) {
      const s = net.createConnection(sock);
      s.on('error', () => undefined);
      s.write('{"cmd":"sh');
      halfOpen.push(s);
    }
    // Random bytes, then random JSON-ish lines.
    for (let i = 0; i < 200; i++) {
      const bytes = crypto.randomBytes(1 + (i % 97) * 37).toString('binary').replace(/\n/g, ' ');
      count(await oneRequest(sock, `${bytes}\n`));
    }
    for (const line of ['{}', '[]', 'null', '"cmd"', '{"cmd":5}', '{"cmd":"nope"}', '{"cmd":"capture","dev":{}}', '{"cmd":"quarantine-release","dev":"x"}',
      '{"cmd":"set-stats","seconds":-1}', '{"cmd":"capture","dev":"nic","snaplen":1}', '{"cmd":"__proto__"}', '{"cmd":"constructor"}']) {
      count(await oneRequest(sock, `${line}\n`));
    }
    // Huge lines: up to 4 MiB without a newline, and one with. The first is
    // sent 64 KiB at a time until the back end answers: a client that went on
    // writing after the back end closed would get EPIPE, and Node drops what
    // it had not read yet.
    const huge = await new Promise<string>((resolve) => {
      const s = net.createConnection(sock);
      let buf = '';
      let sent = 0;
      const chunk = Buffer.alloc(64 << 10, 0x41);
      const more = (): void => {
        while (buf === '' && sent < 4 << 20 && !s.destroyed) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', more);
        }
      };
      s.on('error', () => undefined);
      s.on('data', (d) => (buf += d.toString()));
      s.on('close', () => resolve(buf));
      s.on('connect', more);
    });
    t.regex(huge, /"code":"E2BIG"/);
    count(await oneRequest(sock, `{"cmd":"show","pad":"${'x'.repeat(1 << 20)}"}\n`).catch((e: Error) => `{"ok":false,"code":"${/E2BIG/.test(e.message) ? 'E2BIG' : 'lost'}"}`));
    // 1000 clients at once.
    const many = await Promise.allSettled(Array.from({ length: 1000 }, () => oneRequest(sock, '{"cmd":"devices"}\n')));
    const lost = many.filter((m) => m.status === 'rejected');
    t.is(lost.length, 0, `every client got a reply: ${lost.slice(0, 3).map((m) => String((m as PromiseRejectedResult).reason)).join('; ')}`);
    for (const m of many) if (m.status === 'fulfilled') count(m.value);

    const r = await flow;
    t.is(r.frames.length, N, 'the steady flow lost no frame');
    t.true(r.frames.every((f) => f.intact && f.dst === G2));
    t.is(replies.ENOSYS, 3, 'unknown commands: nope, __proto__, constructor');
    t.true(replies.EINVAL >= 200, 'random bytes and bad arguments get EINVAL');
    t.true((replies.ok ?? 0) + (replies.EBUSY ?? 0) >= 1000);
    t.true((replies.ok ?? 0) > 0);
    for (const s of halfOpen) s.destroy();
    // Still serving, still switching, one device, nothing logged as an error.
    const show = JSON.parse((await ctl(rig, ['show', '--json'])).out) as { devices: number };
    t.is(show.devices, 1);
    t.is(be.child.exitCode, null);
    t.false(be.err.some((l) => /"level":(50|60)/.test(l)), 'no error logged');
    const s = await statsUntil<JsonStats>(be, (x) => x.devices[0]?.rx_total === N);
    t.is(s.devices[0].rx_dropped, 0);
  } finally {
    await rig.close();
  }
});
