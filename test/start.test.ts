// `npm start` (demo/main.ts): the demo's pure parts (wire frames, the
// stats table reader, options), then the entry point itself run as a process:
// as root with the veth wire, as user nobody (the guests-only path), and cut
// short by SIGINT; each time nothing may be left behind.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatTable } from '../backend/stats';
import { Child } from '../harness/child';
import { buildTestFrame } from '../frontend/frame';
import { tagFrame, untagFrame, WireSpec, WireTally, wireFrame, wirePassed } from '../demo/wire-frames';
import { parseArgs } from '../frontend/options';
import { parseDemoOptions } from '../demo/options';
import { lastTable } from '../demo/stats-table';
import { readableCopy } from './fixtures/readable-copy';

const START = path.join(__dirname, '..', 'demo', 'main.js');
const mac = (last: number): Buffer => Buffer.from([0, 0, 0, 0, 0, last]);
const isRoot = process.getuid?.() === 0;

// ---------------------------------------------------------------- wire frames

const SPEC: WireSpec = {
  count: 3, size: 100, dst: mac(0x11), src: mac(0xfe), vlan: 1000, expectDst: mac(0x22), expectSrc: mac(0x11), expectVlan: 1000,
};

/** What vm1 in mac mode sends back out of the NIC for frame seq, tagged in-frame. */
function returned(seq: number, over: Partial<{ dst: Buffer; src: Buffer; vlan: number; size: number }> = {}): Buffer {
  const f = buildTestFrame(over.size ?? SPEC.size, over.dst ?? SPEC.expectDst, over.src ?? SPEC.expectSrc, BigInt(seq));
  return tagFrame(f, over.vlan ?? SPEC.expectVlan);
}

test('tagFrame inserts an 802.1Q tag after the MACs and untagFrame takes it out again', (t) => {
  const f = buildTestFrame(64, mac(1), mac(2), 7n);
  const tagged = tagFrame(f, 1001);
  t.is(tagged.length, 68);
  t.is(tagged.readUInt16BE(12), 0x8100);
  t.is(tagged.readUInt16BE(14), 1001);
  t.deepEqual(untagFrame(tagged, null), { vlan: 1001, frame: f });
  // The kernel already stripped it: the aux VLAN is used and the frame kept.
  t.deepEqual(untagFrame(f, 1000), { vlan: 1000, frame: f });
  t.deepEqual(untagFrame(f, null), { vlan: null, frame: f });
  t.deepEqual(wireFrame(SPEC, 5), tagFrame(buildTestFrame(100, mac(0x11), mac(0xfe), 5n), 1000));
});

test('the tally passes exactly count correct frames in order, and ignores frames that are not ours', (t) => {
  const tally = new WireTally(SPEC);
  tally.add(returned(0), null);
  const ipv6 = Buffer.alloc(60);
  ipv6.writeUInt16BE(0x86dd, 12);
  tally.add(ipv6, null);
  tally.add(returned(1), null);
  // The kernel moved the tag to aux data.
  tally.add(buildTestFrame(100, SPEC.expectDst, SPEC.expectSrc, 2n), 1000);
  const r = tally.result(3);
  t.deepEqual(r, { sent: 3, received: 3, correct: 3, wrong: {}, other: 1 });
  t.true(wirePassed(r, 3));
  t.false(wirePassed(r, 4));
});

const wrongCases: [string, Buffer, string][] = [
  ['a rewritten payload byte', (() => { const f = returned(0); f[60] ^= 0xff; return f; })(), 'payload'],
  ['the wrong destination MAC', returned(0, { dst: mac(0x33) }), 'dst'],
  ['the wrong source MAC', returned(0, { src: mac(0x22) }), 'src'],
  ['the wrong VLAN', returned(0, { vlan: 1001 }), 'vlan'],
  ['no VLAN at all', buildTestFrame(100, mac(0x22), mac(0x11), 0n), 'vlan'],
  ['a frame out of sequence', returned(1), 'order'],
  ['a frame of another size', returned(0, { size: 90 }), 'length'],
];
for (const [what, frame, reason] of wrongCases) {
  test(`the tally counts ${what} as wrong (${reason})`, (t) => {
    const tally = new WireTally({ ...SPEC, count: 1 });
    tally.add(frame, null);
    const r = tally.result(1);
    t.is(r.received, 1);
    t.is(r.correct, 0);
    t.deepEqual(r.wrong, { [reason]: 1 });
    t.regex(r.firstWrong ?? '', /^frame 1: /);
    t.false(wirePassed(r, 1));
  });
}

test('a duplicated frame fails the tally even when every frame is intact', (t) => {
  const tally = new WireTally(SPEC);
  for (const seq of [0, 1, 1, 2]) tally.add(returned(seq), null);
  const r = tally.result(3);
  t.is(r.received, 4);
  t.is(r.correct, 3);
  t.deepEqual(r.wrong, { order: 1 });
  t.false(wirePassed(r, 3));
});

// ------------------------------------------------------- the back end's table

test('lastTable reads back the back end\'s own table, the last complete one after a line', (t) => {
  const dev = (domid: number, m: string, vlan: number, tx: number, rx: number) => ({
    slot: domid - 1, domid, dev: 0, mac: m, vlan, state: 'active', tx_total: tx, tx_dropped: 1, rx_total: rx, rx_dropped: 2, drops: { rx_no_buffer: 2 },
  });
  const first = formatTable({ devices: [dev(1, '00:00:00:00:00:11', 1000, 5, 6)], nic: { rx: 7, tx: 8, dropped: 0 } });
  const second = formatTable({
    devices: [dev(1, '00:00:00:00:00:11', 1000, 50, 60), dev(2, '00:00:00:00:00:22', 1001, 30, 40)],
    nic: { rx: 70, tx: 80, dropped: 9 },
    refused: { bad_key: 1 },
  });
  const lines = `${first}${second}`.split('\n');
  const last = lastTable(lines);
  t.deepEqual(last, {
    devices: [
      { domid: 1, mac: '00:00:00:00:00:11', vlan: 1000, state: 'active', txTotal: 50, txDropped: 1, rxTotal: 60, rxDropped: 2 },
      { domid: 2, mac: '00:00:00:00:00:22', vlan: 1001, state: 'active', txTotal: 30, txDropped: 1, rxTotal: 40, rxDropped: 2 },
    ],
    nic: { rx: 70, tx: 80, dropped: 9 },
  });
  t.is(lastTable(first.split('\n'))?.devices[0].txTotal, 5);
  // A table cut off before its closing line does not count.
  t.is(lastTable(lines.slice(first.split('\n').length - 1, -3)), undefined);
  t.is(lastTable(lines, lines.length), undefined);
});

// ------------------------------------------------------------------- options

test('options: defaults, --duration, --frames, --no-wire, --quiet, and one sentence for a bad value', (t) => {
  t.deepEqual(parseDemoOptions([]), { duration: 20, frames: 1000, wire: true, quiet: false });
  t.deepEqual(parseDemoOptions(['--duration', '2.5', '--frames', '10', '--no-wire', '--quiet']), { duration: 2.5, frames: 10, wire: false, quiet: true });
  t.throws(() => parseDemoOptions(['--duration', 'soon']), { message: /--duration takes a number of seconds from 0 to 3600/ });
  t.throws(() => parseDemoOptions(['--frames', '0']), { message: /--frames takes a whole number from 1 to 100000/ });
  t.throws(() => parseDemoOptions(['--colour']), { message: /Unknown option '--colour' \(see npm start -- --help\)/ });
  t.throws(() => parseDemoOptions(['--help']), { message: /--duration <s>/ });
});

test('xsw-front takes --verify in txonly mode too (the demo\'s vm3 checks what comes back), still not in io mode', (t) => {
  const cfg = parseArgs(['node', 'xsw-front', '--mac', '00:00:00:00:00:33', '--fwd', 'txonly', '--count', '10', '--verify']);
  t.is(cfg.fwd, 'txonly');
  t.true(cfg.verify);
  t.throws(() => parseArgs(['node', 'xsw-front', '--mac', '00:00:00:00:00:33', '--verify']), {
    message: '--verify checks received test frames in rxonly mode or txonly mode: add --fwd rxonly (or --fwd txonly)',
  });
});

// ------------------------------------------------------ the entry point itself

interface DemoRun {
  code: number | null;
  out: string;
  err: string;
  ms: number;
}

interface RunOptions {
  asNobody?: boolean;
  /** Send SIGINT to the demo once its output matches. */
  interruptWhen?: RegExp;
  /** Called once when the output first matches `when`. */
  hook?: { when: RegExp; run: (out: string) => void };
  env?: NodeJS.ProcessEnv;
}

async function runDemo(args: string[], opts: RunOptions = {}): Promise<DemoRun> {
  if (!opts.asNobody) return runDemoAs([process.execPath, START, ...args], opts);
  // nobody may not be able to enter this checkout: it runs a world-readable copy of the product.
  const copy = readableCopy();
  try {
    const start = path.join(copy.root, path.relative(path.join(__dirname, '..', '..'), START));
    return await runDemoAs(['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, start, ...args], { ...opts, cwd: copy.root });
  } finally {
    copy.remove();
  }
}

async function runDemoAs([cmd, ...argv]: string[], opts: RunOptions & { cwd?: string }): Promise<DemoRun> {
  const started = Date.now();
  let interrupted = false;
  let hooked = false;
  const child: Child = new Child(cmd, argv, {
    name: 'the demo',
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    onStdout: () => {
      const out = child.stdout;
      if (opts.hook && !hooked && opts.hook.when.test(out)) {
        hooked = true;
        opts.hook.run(out);
      }
      if (opts.interruptWhen && !interrupted && opts.interruptWhen.test(out)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    },
  });
  const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const { code } = await child.exited;
  clearTimeout(guard);
  return { code, out: child.stdout, err: child.stderr, ms: Date.now() - started };
}

interface World {
  netns: string[];
  shm: string[];
}

function world(): World {
  let netns: string[] = [];
  try {
    netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
  } catch {
    // no iproute2: nothing to compare
  }
  return { netns, shm: fs.readdirSync('/dev/shm') };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Processes whose environment names the demo's sim directory (everything it started has it). */
function processesUsing(dir: string): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(`XSW_SIM_DIR=${dir}`)) found.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

/** Asserts the demo left nothing: namespace, processes, sim directory and its sockets, /dev/shm files. */
function assertNothingLeft(t: import('ava').ExecutionContext, before: World, r: DemoRun): void {
  const dir = /private simulated platform in (\S+)/.exec(r.out)?.[1];
  if (!dir) return void t.fail(`no sim directory line in the output:\n${r.out}`);
  t.false(fs.existsSync(dir), `${dir} is left`);
  t.deepEqual(processesUsing(dir), [], 'processes of the demo are left');
  for (const m of r.out.matchAll(/\(pid ([0-9]+)\)|pid ([0-9]+)\)/g)) {
    const pid = Number(m[1] ?? m[2]);
    t.false(alive(pid), `process ${pid} started by the demo is still alive`);
  }
  t.false(fs.readFileSync('/proc/net/unix', 'utf8').includes(dir), 'a unix socket of the sim is left');
  const after = world();
  const newNetns = after.netns.filter((n) => n.startsWith('xswdemo') && !before.netns.includes(n));
  t.deepEqual(newNetns, [], 'network namespace left');
  // Other test files run beside this one and make their own /dev/shm files
  // (test/fixtures/vring-ring.ts: xsw-vr-*): those are theirs, not the demo's.
  const leftByDemo = after.shm.filter((f) => !before.shm.includes(f) && !f.startsWith('xsw-vr-'));
  t.deepEqual(leftByDemo, [], 'files left in /dev/shm');
}

const lineOf = (out: string, re: RegExp): string | undefined => out.split('\n').find((l) => re.test(l));

if (isRoot) {
  test.serial('as root: the loopback and inter-VM scenarios over the veth wire pass with exact counts, the table shows, nothing is left', async (t) => {
    const before = world();
    const r = await runDemo(['--duration', '8']);
    t.is(r.code, 0, `${r.out}\n${r.err}`);
    t.true(r.ms < 60_000, `took ${r.ms} ms`);
    t.truthy(lineOf(r.out, /^\[demo\] wire ready: xsw0 .* in network namespace xswdemo[0-9]+$/));
    t.truthy(lineOf(r.out, /^\[demo\] vm1 attached .*MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered$/));
    t.truthy(lineOf(r.out, /^\[demo\] vm2 attached .*MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1001 registered$/));
    t.regex(r.out, /^\[demo\] loopback: 1000 in, 1000 out, all correct \(dst 00:00:00:00:00:22, src 00:00:00:00:00:11, VLAN 1000, payload intact, in order\); vm1 forwarded 1000 — PASS$/m);
    t.regex(r.out, /^\[demo\] inter-VM: 1000 in, 1000 out, all correct \(dst 00:00:00:00:00:33, src 00:00:00:00:00:22, VLAN 1001, payload intact, in order\); vm1 forwarded 1000, vm2 forwarded 1000 — PASS$/m);
    t.regex(r.out, /^\[demo\] switch counters: vm1 TX 2000 RX 2000, vm2 TX 1000 RX 1000, NIC rx 2000 tx 2000, nothing dropped — PASS$/m);
    t.regex(r.out, /^ {4}Device statistics =+$/m, 'the back end\'s table is shown');
    t.regex(r.out, /^ {4}Domain: 1 device 0 {2}MAC: 00:00:00:00:00:11 {2}VLAN: 1000 {2}State: active$/m);
    // dpdk-testpmd is installed where these tests run (.ci/run installs dpdk-dev): the container part runs.
    t.regex(r.out, /^\[demo\] container attached and forwarding: MAC_ADDRESS 02:00:00:00:01:01 registered \(vhost-user .*container\.sock\)$/m);
    t.regex(r.out, /^\[demo\] container \(vm4 → testpmd → vm4\): 1000 sent by vm4, 1000 back through the container, 0 bad, 0 out of order — PASS$/m);
    t.regex(r.out, /^ {4}vhost-user: .*container\.sock {2}MAC: 02:00:00:00:01:01 {2}VLAN: 1002/m, 'the container in the table');
    t.regex(r.out, /^\[demo\] stock guest \(vm5 netfront → vm6 → vm5\): sent 1000 frames in 2000 netif slots \(250 with a blank UDP checksum\), 1000 came back intact with their checksums completed — PASS$/m);
    t.regex(r.out, /^ {4}netif +vif\d+\.0 +00:16:3e:00:00:55 .* active /m, 'xsw-ctl devices lists the vif');
    t.regex(r.out, /^\[demo\] all 5 checks passed$/m);
    t.regex(r.out, /^\[demo\] teardown done: .*namespace xswdemo[0-9]+ deleted/m);
    assertNothingLeft(t, before, r);
  });
}

test.serial('without root (user nobody): the inter-VM path through a txonly third guest passes with exact counts, nothing is left', async (t) => {
  let asNobody = isRoot;
  if (isRoot && !/^nobody:/m.test(fs.readFileSync('/etc/passwd', 'utf8'))) {
    t.log('there is no user nobody on this machine: running as root with --no-wire (the same guests-only path) instead');
    asNobody = false;
  }
  const before = world();
  const r = await runDemo(['--duration', '3', '--frames', '600', ...(isRoot && !asNobody ? ['--no-wire'] : [])], { asNobody });
  t.is(r.code, 0, `${r.out}\n${r.err}`);
  t.true(r.ms < 60_000, `took ${r.ms} ms`);
  if (asNobody || !isRoot) {
    t.regex(r.out, /^\[demo\] not root: run as root to add the NIC path: a veth wire in a network namespace with a VLAN-1000 generator \(the guide's loopback and inter-VM scenarios\)$/m);
    t.regex(r.out, /^\[demo\] (not root: skipping the container part|dpdk-testpmd is not installed: skipping the container part)/m);
  }
  t.truthy(lineOf(r.out, /^\[demo\] vm3 attached .*MAC_ADDRESS 00:00:00:00:00:33 and VLAN_TAG 1002 registered$/));
  t.regex(r.out, /^\[demo\] inter-VM \(vm3 → vm1 → vm2 → vm3\): 600 sent by vm3, 600 back, all intact and in order .*; vm1 forwarded 600, vm2 forwarded 600 — PASS$/m);
  t.regex(r.out, /^\[demo\] switch counters: vm1 TX 600 RX 600, vm2 TX 600 RX 600, vm3 TX 600 RX 600, NIC rx 0 tx 0, nothing dropped — PASS$/m);
  t.regex(r.out, /^\[demo\] stock guest \(vm5 netfront → vm6 → vm5\): sent 600 frames in 1200 netif slots \(150 with a blank UDP checksum\), 600 came back intact with their checksums completed — PASS$/m);
  t.notRegex(r.out, /wire ready/);
  assertNothingLeft(t, before, r);
});

test.serial('without the native addon it says what to run and exits 1 before starting anything', async (t) => {
  const before = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('xsw-demo-'));
  const r = await runDemo(['--duration', '1'], { env: { XSW_ADDON: '/nonexistent/xsw.node' } });
  t.is(r.code, 1);
  t.regex(r.err, /^\[demo\] cannot load the xsw native addon at \/nonexistent\/xsw.node: run 'npm install'/m);
  t.is(r.out, '');
  const after = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('xsw-demo-'));
  t.deepEqual(after.filter((f) => !before.includes(f)), []);
});

if (isRoot) {
  test.serial('a guest that dies during the inter-VM scenario makes it FAIL with what was wrong, and the exit status 1', async (t) => {
    const before = world();
    const r = await runDemo(['--duration', '1', '--quiet'], {
      hook: {
        when: /^\[demo\] vm2 attached \(domain \d+, pid (\d+)\)/m,
        run: (out) => {
          // The pid printed is xsw-sim exec's; vm2's xsw-front is its child.
          const exec = /^\[demo\] vm2 attached \(domain \d+, pid (\d+)\)/m.exec(out)![1];
          const children = fs.readFileSync(`/proc/${exec}/task/${exec}/children`, 'utf8').trim().split(/\s+/).map(Number);
          for (const pid of children) process.kill(pid, 'SIGKILL');
        },
      },
    });
    t.is(r.code, 1, `${r.out}\n${r.err}`);
    t.regex(r.out, /^\[demo\] loopback: .* — PASS$/m);
    t.regex(r.out, /^\[demo\] inter-VM: 1000 in, .* — FAIL$/m);
    // What else the line names depends on how soon vm2 is detached (vm1's drops, the NIC's count).
    t.regex(r.out, /^\[demo\] switch counters: .*vm2 \(00:00:00:00:00:22\) is not active in the table.* — FAIL$/m);
    t.regex(r.out, /^\[demo\] 2 of 5 checks FAILED: inter-VM, switch counters$/m);
    assertNothingLeft(t, before, r);
  });
}

test.serial('SIGINT during the scenarios: everything is torn down and the exit status is 130', async (t) => {
  const before = world();
  const r = await runDemo(['--duration', '30', '--quiet'], { interruptWhen: /^\[demo\] vm1 attached/m });
  t.is(r.code, 130, `${r.out}\n${r.err}`);
  t.regex(r.out, /^\[demo\] SIGINT: stopping early…$/m);
  t.regex(r.out, /^\[demo\] teardown done: vm1.* stopped, back end stopped, xenstored stopped and domains destroyed/m);
  t.notRegex(r.out, /checks passed/);
  assertNothingLeft(t, before, r);
});
