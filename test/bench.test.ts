// `npm run bench -- --quick` end to end: it runs, writes a well-formed report
// (JSON and markdown), reports a missing peer as "not measured", and leaves
// nothing behind — also when interrupted with Ctrl-C. No figure is asserted:
// speed is the bench's business, not a test's.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Child } from '../harness/child';

const RUN = path.join(__dirname, '..', 'bench', 'run.js');
const ROOT = path.join(__dirname, '..', '..');

// The bench has its own addon, left out of `npm install`'s build: build it
// (a no-op when it is up to date), as `npm run bench` does before it runs.
test.before(() => {
  const b = spawnSync('npm', ['run', '--silent', 'build:bench'], { cwd: ROOT, encoding: 'utf8' });
  if (b.status !== 0) throw new Error(`npm run build:bench failed (${b.status}): ${(b.stdout + b.stderr).slice(-2000)}`);
});

interface Window {
  system: string;
  pps: number;
  crossBeforeNs: number;
  crossAfterNs: number;
  placement: string;
  foreignCpu: number;
  facts: Record<string, number>;
}
interface Series {
  name: string;
  windows: Window[];
  note?: string;
}
interface Report {
  date: string;
  quick: boolean;
  machine: { cpu: string; cpus: number; kernel: string };
  figures: { id: string; unit: string; xsw: Series; peers: Series[] }[];
  latency: { xsw?: { rttUs: number[] }[]; core?: { rttUs: number[] }[]; peer?: { rttUs: number[] }[]; wakeup?: { rttUs: number[] }[]; wakeupFloor?: { rttUs: number[] }[]; note?: string };
  attach?: { attachMs: number[]; startToAttachMs: number[] };
  rssPerGuestBytes: number[];
  idle?: { mode: string; seconds: number; backendPct: number; guestsPct: number }[];
  targets: { what: string; met: boolean | null; detail: string }[];
  memcpy: { hot1500GBs: number; pool1500GBs: number };
}

function hasTestpmd(): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => fs.existsSync(path.join(d, 'dpdk-testpmd')));
}

function leftovers(pid: number): string[] {
  const out: string[] = [];
  const netns = fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns') : [];
  out.push(...netns.filter((n) => n.startsWith(`xswb${pid}-`)).map((n) => `netns ${n}`));
  if (fs.existsSync('/var/run/dpdk')) out.push(...fs.readdirSync('/var/run/dpdk').filter((d) => d.startsWith(`xswb${pid}-`)).map((d) => `dpdk dir ${d}`));
  return out;
}

/** Pids of every descendant of `root`. */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const e of fs.readdirSync('/proc')) if (/^[0-9]+$/.test(e)) {
    try {
      const s = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop()!;
    for (const [c, pp] of parent) if (pp === p) {
      out.push(c);
      stack.push(c);
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function runBench(args: string[], onStart?: (pid: number) => void): Promise<{ code: number | null; err: string; out: string; pid: number }> {
  const c = new Child(process.execPath, [RUN, ...args], { name: 'the bench' });
  onStart?.(c.pid!);
  const { code } = await c.exited;
  return { code, err: c.stderr, out: c.stdout, pid: c.pid! };
}

test.serial('--quick runs end to end and writes a well-formed report', async (t) => {
  t.timeout(240_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xsw-bench-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const json = path.join(dir, 'report.json');
  const md = path.join(dir, 'PERFORMANCE.md');
  const huge = fs.readFileSync('/proc/sys/vm/nr_hugepages', 'utf8');
  const r = await runBench(['--quick', '--json', json, '--write', md]);
  t.is(r.code, 0, r.err.slice(-2000));

  const report = JSON.parse(fs.readFileSync(json, 'utf8')) as Report;
  t.true(report.quick);
  t.false(Number.isNaN(Date.parse(report.date)));
  t.true(report.machine.cpu.length > 0 && report.machine.cpus >= 2);
  t.deepEqual(report.figures.map((f) => f.id), ['core64', 'core1500', 'same64', 'same1500', 'scale64', 'cores64', 'proc64', 'proc1500', 'nic2g', 'g2nic']);
  t.true(report.memcpy.hot1500GBs > 0 && report.memcpy.pool1500GBs > 0);
  const dpdkNote = hasTestpmd() ? undefined : 'not measured: apt-get install dpdk-dev';
  for (const f of report.figures) {
    t.true(f.unit === 'Mpps' || f.unit === 'Gbit/s', f.id);
    for (const s of [f.xsw, ...f.peers]) {
      if (s.note) {
        t.regex(s.note, /^not measured: /, `${f.id} ${s.name}`);
        continue;
      }
      t.true(s.windows.length >= 1, `${f.id} ${s.name} has a window`);
      for (const w of s.windows) {
        t.true(Number.isFinite(w.pps) && w.pps >= 0, `${f.id} ${s.name} pps ${w.pps}`);
        t.true(['fast', 'slow', 'changed', 'unknown'].includes(w.placement));
        t.true(w.foreignCpu >= 0);
      }
    }
    for (const p of f.peers.filter((p) => p.name.startsWith('DPDK'))) t.is(p.note, dpdkNote, `${f.id} ${p.name}`);
  }
  // The xsw systems must have been measured (they need nothing but this repository).
  for (const id of ['core64', 'core1500', 'proc64', 'proc1500']) t.is(report.figures.find((f) => f.id === id)!.xsw.note, undefined);
  // The same-guests rows need testpmd on both sides: xsw's is measured exactly when DPDK's is.
  for (const id of ['same64', 'same1500']) t.is(report.figures.find((f) => f.id === id)!.xsw.note, dpdkNote, id);
  const latencyLog = r.err.split('\n').filter((l) => l.startsWith('latency')).join('\n');
  t.true((report.latency.xsw ?? []).some((l) => l.rttUs.length > 0 && l.rttUs.every((x) => x > 0)), latencyLog);
  t.true((report.latency.core ?? []).some((l) => l.rttUs.length > 0 && l.rttUs.every((x) => x > 0)), latencyLog);
  // The wake-up round trip (--poll interrupt): measured, and its target reported.
  t.true((report.latency.wakeup ?? []).some((l) => l.rttUs.length > 0 && l.rttUs.every((x) => x > 0)));
  t.true(report.targets.some((x) => x.what.startsWith('interrupt-mode wake-up round trip')));
  // Its floor (the same wake-ups with eventfds, no xsw) beside it.
  t.true((report.latency.wakeupFloor ?? []).some((l) => l.rttUs.length > 0 && l.rttUs.every((x) => x > 0)));
  // Why-is-it-slow: the loop rows carry their RX poll shares (xsw's from the harness, DPDK's from testpmd).
  const core64 = report.figures.find((f) => f.id === 'core64')!;
  const share = (w: Window, k: string) => Number.isFinite(w.facts[k]) && w.facts[k] >= 0 && w.facts[k] <= 100;
  // Busy shares: counted by the TSC on each side (testpmd's window is timed from its commands, so allow a little over 100).
  const busy = (w: Window, k: string) => Number.isFinite(w.facts[k]) && w.facts[k] > 0 && w.facts[k] <= 110;
  t.true(core64.xsw.windows.some((w) => share(w, 'guest_empty_pct') && w.facts.switch_frames_per_poll >= 0 && busy(w, 'switch_busy_pct') && busy(w, 'guest_busy_pct')), JSON.stringify(core64.xsw.windows.map((w) => w.facts)));
  if (!dpdkNote) t.true(core64.peers[0].windows.some((w) => share(w, 'switch_empty_pct') && share(w, 'guest_empty_pct') && busy(w, 'switch_busy_pct') && busy(w, 'guest_busy_pct')), JSON.stringify(core64.peers[0].windows.map((w) => w.facts)));
  t.true(report.attach !== undefined && report.attach.attachMs.length >= 1 && report.attach.attachMs.every((x) => x >= 0));
  t.true(report.rssPerGuestBytes.length >= 1);
  // Scale: every series is xsw's own, so all three were measured.
  const scale = report.figures.find((f) => f.id === 'scale64')!;
  for (const s of [scale.xsw, ...scale.peers]) t.true(s.note === undefined && s.windows.length >= 1, s.name);
  // Idle: one measurement per poll mode, CPU shares that make sense.
  t.deepEqual((report.idle ?? []).map((x) => x.mode).sort(), ['adaptive', 'busy', 'interrupt']);
  for (const x of report.idle ?? []) {
    t.true(x.seconds >= 1.5, `${x.mode} interval ${x.seconds}`);
    for (const v of [x.backendPct, x.guestsPct]) t.true(Number.isFinite(v) && v >= 0 && v <= 300, `${x.mode}: ${v}`);
  }
  t.true(report.targets.some((x) => x.what.startsWith('idle:')));
  t.true(report.targets.some((x) => x.what.includes('64 devices attached')));
  t.true(report.targets.length >= 6);

  const text = fs.readFileSync(md, 'utf8');
  t.regex(text, /^# Performance$/m);
  t.regex(text, /\| figure \| system \| median \(min–max\) \|/);
  t.regex(text, /## Targets/);
  t.regex(text, /\| paired: median \(min–max\) \|/);
  t.regex(text, /\| figure \| system \| switch: busy; empty polls, frames\/poll \| guest: busy; empty polls, frames\/poll \|/);
  t.regex(text, /## Idle cost\n[^]*\| adaptive \|/);
  if (dpdkNote) t.true(text.includes(dpdkNote));
  // --render of the saved run gives the same targets, the wake-up target included.
  const targets = (s: string) => s.slice(s.indexOf('## Targets'), s.indexOf('## Notes'));
  const again = path.join(dir, 'again.md');
  const rr = await runBench(['--render', json, '--write', again]);
  t.is(rr.code, 0, rr.err);
  t.is(targets(fs.readFileSync(again, 'utf8')), targets(text));
  t.regex(targets(text), /wake-up round trip/);

  t.deepEqual(leftovers(r.pid), []);
  t.is(fs.readFileSync('/proc/sys/vm/nr_hugepages', 'utf8'), huge, 'hugepages restored');
});

test.serial('Ctrl-C stops everything the bench started and undoes its changes', async (t) => {
  t.timeout(120_000);
  const huge = fs.readFileSync('/proc/sys/vm/nr_hugepages', 'utf8');
  let children: number[] = [];
  const r = await runBench(['--quick', '--only', 'proc64,nic'], (pid) => {
    const poll = setInterval(() => {
      // Interrupt once guests are running (the bench, the back end, xsw-sim exec and fronts).
      const d = descendants(pid);
      if (d.length >= 4) {
        clearInterval(poll);
        children = d;
        process.kill(pid, 'SIGINT');
      }
    }, 50);
    setTimeout(() => clearInterval(poll), 60_000);
  });
  t.true(children.length >= 4, `the bench started its processes: ${r.err.slice(-1000)}`);
  t.is(r.code, 130);
  t.regex(r.err, /SIGINT: stopping everything it started/);
  await new Promise((res) => setTimeout(res, 500));
  t.deepEqual(children.filter(alive), []);
  t.deepEqual(leftovers(r.pid), []);
  t.is(fs.readFileSync('/proc/sys/vm/nr_hugepages', 'utf8'), huge, 'hugepages restored');
});
