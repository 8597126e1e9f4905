#!/usr/bin/env node
// `npm run bench`: xsw's figures beside its peers, measured interleaved in
// the same run, written to docs/PERFORMANCE.md (and JSON with --json).
// `--quick` is the short smoke version CI runs so the bench never rots.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { loadAverage, waitQuiet } from './cpuload';
import { benchAddon, benchAddonOf } from './native';
import { run } from '../harness/child';
import { cleanupAll } from './cleanup';
import { Figure, fmtPairs, fmtRatios, fromVerdict, latencySummary, markdown, pairs, ratios, Report, Series, seriesSummary, Target } from './report';
import { roundOrder, verdictAtLeast } from './pairs';
import { cliPathsOf, CPU_GUESTS, CPU_SWITCH, SimRig, vethNamespace } from './rig';
import * as sc from './scenarios';
import type { IdleResult, LatencyResult, PacedResult, PollMode } from './scenarios';
import { median, percentile } from './stats';
import { Hugepages, NOT_INSTALLED, testpmdPath } from './testpmd';
import { crossingNs, measureWindow, Timing, Traffic } from './window';

interface Options {
  quick: boolean;
  reps: number;
  warmup: number;
  window: number;
  write?: string;
  json?: string;
  only?: string[];
  render?: string;
  tries?: number;
  quietWait?: number;
  /** Another checkout of xsw (dist/ and build/ built): its xsw rows interleaved with this one's. */
  xswB?: string;
}

const GROUPS = ['core64', 'core1500', 'same64', 'same1500', 'scale', 'cores64', 'proc64', 'proc1500', 'nic', 'idle', 'latency', 'attach'];

function num(name: string, min: number) {
  return (t: string): number => {
    const v = Number(t);
    if (!Number.isFinite(v) || v < min) throw new InvalidArgumentError(`${name} must be a number ≥ ${min}.`);
    return v;
  };
}

function parse(argv: string[]): Options {
  const p = new Command()
    .name('xsw-bench')
    .description("xsw's throughput, latency, attach time and memory beside DPDK testpmd (vhost switch, one vhost link) and the kernel's veth, interleaved")
    .option('--quick', 'a short smoke run (1 window of 1 s per system, no repeats); writes nothing unless --write is given')
    .option('--reps <n>', 'windows per system and figure', num('--reps', 1))
    .option('--warmup <s>', 'seconds of traffic before each window', num('--warmup', 0))
    .option('--window <s>', 'seconds per window', num('--window', 0.2))
    .option('--write <file>', 'the markdown report (default docs/PERFORMANCE.md for a full run)')
    .option('--json <file>', 'the report as JSON')
    .option('--only <groups>', `comma-separated subset of ${GROUPS.join(',')}`)
    .option('--tries <n>', 'tries per window while other processes make it noisy (default 3; 1 with --quick)', num('--tries', 1))
    .option('--quiet-wait <s>', 'seconds to wait for a quiet machine before each window (default 30; 0 with --quick)', num('--quiet-wait', 0))
    .option('--render <json>', 'measure nothing: write the markdown of a report saved with --json')
    .option('--xsw-b <dir>', `another checkout of xsw (npm install and npm run build:bench done there): its xsw rows (${AB_GROUPS.join(', ')}) as "xsw (B)" windows interleaved with this build's, ratios B/A`)
    .parse(argv);
  const o = p.opts<{ quick?: boolean; reps?: number; warmup?: number; window?: number; write?: string; json?: string; only?: string; render?: string; tries?: number; quietWait?: number; xswB?: string }>();
  const quick = !!o.quick;
  const only = o.only?.split(',').map((s) => s.trim());
  for (const g of only ?? []) if (!GROUPS.includes(g)) p.error(`--only: unknown group "${g}": use ${GROUPS.join(', ')}`);
  return {
    quick,
    reps: o.reps ?? (quick ? 1 : 3),
    warmup: o.warmup ?? (quick ? 1 : 3),
    window: o.window ?? (quick ? 1 : 5),
    write: o.write ?? (quick ? undefined : path.join(__dirname, '..', '..', 'docs', 'PERFORMANCE.md')),
    json: o.json,
    only,
    render: o.render,
    tries: o.tries,
    quietWait: o.quietWait,
    xswB: o.xswB === undefined ? undefined : checkBuildB(o.xswB, (m) => p.error(m)),
  };
}

/** The groups whose xsw rows --xsw-b runs from the other build too. */
const AB_GROUPS = ['core64', 'core1500', 'same64', 'same1500', 'proc64', 'proc1500'];

/** --xsw-b's directory, absolute, once it holds what the bench runs from it. */
function checkBuildB(dir: string, fail: (m: string) => never): string {
  const root = path.resolve(dir);
  for (const f of ['dist/backend/cli.js', 'dist/frontend/cli.js', 'dist/xenstore/sim/cli.js', 'build/Release/xsw.node', 'build/Release/xsw_bench.node']) {
    if (!fs.existsSync(path.join(root, f))) fail(`--xsw-b: ${path.join(root, f)} is missing: run 'npm install && npm run build:bench' in ${root} first`);
  }
  return root;
}

/** "DIR at commit abc1234", or DIR when git cannot say. */
async function describeBuild(root: string): Promise<string> {
  const r = await run('git', ['-C', root, 'log', '-1', '--format=%h']);
  return r.code === 0 && r.out.trim() ? `${root} at commit ${r.out.trim()}` : root;
}

const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};

function machine(): Report['machine'] {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const cpu = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown CPU';
  const hypervisor = /\bhypervisor\b/.test(cpuinfo) ? 'virtual machine' : 'bare metal';
  return { cpu, cpus: os.cpus().length, kernel: os.release(), memGiB: Math.round(os.totalmem() / 2 ** 30), hypervisor };
}

async function main(): Promise<number> {
  const opts = parse(process.argv);
  if (opts.render) {
    const saved = JSON.parse(fs.readFileSync(opts.render, 'utf8')) as Report;
    saved.targets = allTargets(saved.figures, saved.memcpy.pool1500GBs, saved.attach, saved.idle ?? [], saved.paced ?? [], saved.latency);
    if (opts.write) writeReport(opts.write, markdown(saved));
    else process.stdout.write(markdown(saved));
    return 0;
  }
  const want = (g: string) => !opts.only || opts.only.includes(g);
  if (os.cpus().length < 2) throw new Error('the bench needs two CPUs (the switch on one, the guests on the other): run it on a machine with at least two');
  const timing: Timing = {
    warmupMs: opts.warmup * 1000,
    windowMs: opts.window * 1000,
    tries: opts.tries ?? (opts.quick ? 1 : 3),
    quietWaitMs: (opts.quietWait ?? (opts.quick ? 0 : 30)) * 1000,
  };
  const root = process.getuid?.() === 0;
  const notes: string[] = [];
  const probe = benchAddon();
  log(`bench: ${opts.quick ? 'quick smoke run' : `${opts.reps} windows of ${opts.window} s per system`}, load average ${loadAverage().toFixed(2)}`);
  const crossingStartNs = crossingNs();
  const hot = probe.memcpyBandwidth(1500, 16384, 2048, opts.quick ? 2e5 : 2e6, 3, CPU_GUESTS);
  const pool = probe.memcpyBandwidth(1500, 32 << 20, 4096, opts.quick ? 2e5 : 2e6, 3, CPU_GUESTS);
  log(`crossing ${crossingStartNs.toFixed(0)} ns; memcpy 1500 B: ${hot.gbytesPerS.toFixed(1)} GB/s hot, ${pool.gbytesPerS.toFixed(1)} GB/s over 32 MiB`);

  const rig = await SimRig.up();
  const rigB = opts.xswB ? rig.withCli(cliPathsOf(opts.xswB)) : undefined;
  const benchB = opts.xswB ? benchAddonOf(opts.xswB) : undefined;
  const ab = (id: string) => !!opts.xswB && AB_GROUPS.includes(id);
  if (opts.xswB) {
    notes.push(`xsw (A) is ${await describeBuild(path.join(__dirname, '..', '..'))}; xsw (B) is ${await describeBuild(opts.xswB)}.`);
    log(`A/B: ${notes[notes.length - 1]}`);
  }
  const tp = testpmdPath();
  let huge: Hugepages | undefined;
  let dpdkNote = tp ? undefined : NOT_INSTALLED;
  if (tp && !root) dpdkNote = 'not measured: testpmd needs root (hugepages)';
  if (tp && root) {
    try {
      huge = await Hugepages.reserve(1024);
    } catch (err) {
      dpdkNote = `not measured: ${(err as Error).message}`;
    }
  }
  const netNote = root ? undefined : 'not measured: needs root (network namespaces)';
  if (root && (want('core64') || want('core1500') || want('nic') || want('latency'))) {
    await vethNamespace(sc.NS_P1, 'xswbp1', 'xswbp2', { peerNs: sc.NS_P2, addrs: ['10.211.0.1/24', '10.211.0.2/24'] });
  }
  if (root && want('nic')) await vethNamespace(sc.NS_NIC, 'xswbn0', 'xswbn1');

  const series = (name: string, note?: string): Series => ({ name, windows: [], note });
  const figures: Figure[] = [];
  const rssPerGuest: number[] = [];

  type Runner = { s: Series; go: () => Promise<Traffic> };
  // Each round starts one system later (roundOrder): no system always follows the same one.
  const interleave = async (f: Figure, runners: Runner[]) => {
    log(`${f.title}:`);
    for (let r = 0; r < opts.reps; r++) {
      for (const x of roundOrder(runners, r)) {
        if (x.s.note) continue;
        try {
          const w = await measureWindow(x.s.name, timing, x.go, log);
          x.s.windows.push(w);
          if (w.facts.rss_per_guest !== undefined && f.id === 'proc64') rssPerGuest.push(w.facts.rss_per_guest);
        } catch (err) {
          log(`  ${x.s.name}: failed: ${(err as Error).message}`);
          notes.push(`${f.title}, ${x.s.name}: a window failed: ${(err as Error).message.slice(0, 300)}`);
        }
      }
    }
    figures.push(f);
  };

  const dpdk = (name: string) => series(name, dpdkNote);
  for (const size of [64, 1500]) {
    if (!want(`core${size}`)) continue;
    const f: Figure = {
      id: `core${size}`,
      title: `guest→guest ${size} B, one switch core (loop, 2 pollers)`,
      unit: size === 64 ? 'Mpps' : 'Gbit/s',
      frameBytes: size,
      xsw: series('xsw'),
      b: ab(`core${size}`) ? series('xsw (B)') : undefined,
      peers: [dpdk('DPDK vhost switch (testpmd io, 2×net_vhost)'), dpdk('DPDK one link virtio_user→vhost (txonly→rxonly)'), series('kernel veth pair', netNote)],
    };
    await interleave(f, [
      { s: f.xsw, go: () => sc.xswSwitchLoop(size) },
      ...(f.b ? [{ s: f.b, go: () => sc.xswSwitchLoop(size, 0, benchB) }] : []),
      { s: f.peers[0], go: () => sc.vhostSwitchLoop(huge!, size) },
      { s: f.peers[1], go: () => sc.vhostLink(huge!, size) },
      { s: f.peers[2], go: () => sc.kernelVeth(size) },
    ]);
  }
  for (const size of [64, 1500]) {
    if (!want(`same${size}`)) continue;
    const f: Figure = {
      id: `same${size}`,
      title: `same guests ${size} B: testpmd, 2×virtio_user (loop, 2 pollers)`,
      unit: size === 64 ? 'Mpps' : 'Gbit/s',
      frameBytes: size,
      xsw: series('xsw, 2 vhost-user ports', dpdkNote),
      b: ab(`same${size}`) ? series('xsw (B), 2 vhost-user ports', dpdkNote) : undefined,
      peers: [dpdk('DPDK vhost switch (testpmd io, 2×net_vhost)')],
    };
    await interleave(f, [
      { s: f.xsw, go: () => sc.xswSameGuests(rig, huge!, size) },
      ...(f.b ? [{ s: f.b, go: () => sc.xswSameGuests(rigB!, huge!, size) }] : []),
      { s: f.peers[0], go: () => sc.vhostSameGuests(huge!, size) },
    ]);
  }
  if (want('scale')) {
    // The ratio column reads "64 attached / N attached" here: the target is ≥ 0.90 against 2.
    const f: Figure = {
      id: 'scale64',
      title: 'guest→guest 64 B, one switch core, 2 active devices among 64 attached',
      unit: 'Mpps',
      frameBytes: 64,
      xsw: series('xsw, 64 attached'),
      peers: [series('xsw, 2 attached'), series('xsw, 16 attached')],
    };
    await interleave(f, [
      { s: f.xsw, go: () => sc.xswSwitchLoop(64, 62) },
      { s: f.peers[0], go: () => sc.xswSwitchLoop(64, 0) },
      { s: f.peers[1], go: () => sc.xswSwitchLoop(64, 14) },
    ]);
  }
  if (want('cores64')) {
    // --cores: the loop with its two devices on two switch threads needs two switch CPUs besides
    // the guest's; on fewer, the threads and the guest would share CPUs and the figure would
    // measure the scheduler, so it is not taken.
    const cpus = os.cpus().length;
    const spare = [...Array(cpus).keys()].filter((c) => c !== CPU_GUESTS && c !== CPU_SWITCH);
    const note = spare.length === 0 ? `not measured: needs 3 CPUs (2 switch threads, 1 guest poller), this machine has ${cpus}` : undefined;
    const f: Figure = {
      id: 'cores64',
      title: 'guest→guest 64 B loop, switch --cores 2: the two devices on different threads (every frame crosses threads)',
      unit: 'Mpps',
      frameBytes: 64,
      xsw: series('xsw --cores 2', note),
      peers: [series('xsw, one switch core', note)],
    };
    if (note) log(`${f.title}: ${note}`);
    await interleave(f, [
      { s: f.xsw, go: () => sc.xswSwitchLoopCores(64, [CPU_SWITCH, spare[0]]) },
      { s: f.peers[0], go: () => sc.xswSwitchLoop(64, 0) },
    ]);
  }
  for (const size of [64, 1500]) {
    if (!want(`proc${size}`)) continue;
    const f: Figure = {
      id: `proc${size}`,
      title: `guest→guest ${size} B, 3 processes (txonly→switch→rxonly)`,
      unit: size === 64 ? 'Mpps' : 'Gbit/s',
      frameBytes: size,
      xsw: series('xsw, default poll (adaptive)'),
      b: ab(`proc${size}`) ? series('xsw (B), default poll (adaptive)') : undefined,
      peers: [series('xsw --poll busy'), dpdk('DPDK vhost switch (3 testpmds)')],
    };
    await interleave(f, [
      { s: f.xsw, go: () => sc.xswGuestToGuest(rig, size, 'adaptive') },
      ...(f.b ? [{ s: f.b, go: () => sc.xswGuestToGuest(rigB!, size, 'adaptive') }] : []),
      { s: f.peers[0], go: () => sc.xswGuestToGuest(rig, size, 'busy') },
      { s: f.peers[1], go: () => sc.vhostSwitch(huge!, size) },
    ]);
  }
  const paced: PacedResult[] = [];
  if (want('proc64')) {
    // The sender held below what the topology carries: does the receiver get every frame?
    const rate = opts.quick ? 100_000 : 1_000_000;
    const count = opts.quick ? 100_000 : 5_000_000;
    try {
      const x = await sc.xswPaced(rig, 'adaptive', rate, count);
      paced.push(x);
      log(`paced 64 B at ${rate}/s, adaptive: ${x.received} of ${x.sent} received`);
    } catch (err) {
      log(`paced: failed: ${(err as Error).message}`);
      notes.push(`paced sender: a run failed: ${(err as Error).message.slice(0, 300)}`);
    }
  }
  if (want('nic')) {
    const veth = series('kernel veth pair', netNote);
    const n2g: Figure = { id: 'nic2g', title: 'NIC→guest 64 B (veth)', unit: 'Mpps', frameBytes: 64, xsw: series('xsw', netNote), peers: [veth] };
    const g2n: Figure = { id: 'g2nic', title: 'guest→NIC 64 B (veth)', unit: 'Mpps', frameBytes: 64, xsw: series('xsw', netNote), peers: [veth] };
    log('NIC paths:');
    for (let r = 0; r < opts.reps && root; r++) {
      for (const [s, go] of [
        [n2g.xsw, () => sc.xswNicToGuest(rig, 64)],
        [g2n.xsw, () => sc.xswGuestToNic(rig, 64)],
        [veth, () => sc.kernelVeth(64)],
      ] as [Series, () => Promise<Traffic>][]) {
        try {
          s.windows.push(await measureWindow(s === veth ? s.name : s === n2g.xsw ? 'xsw NIC→guest' : 'xsw guest→NIC', timing, go, log));
        } catch (err) {
          log(`  failed: ${(err as Error).message}`);
          notes.push(`NIC paths: a window failed: ${(err as Error).message.slice(0, 300)}`);
        }
      }
    }
    figures.push(n2g, g2n);
  }

  const idle: IdleResult[] = [];
  if (want('idle')) {
    const seconds = opts.quick ? 2 : 10;
    for (let r = 0; r < (opts.quick ? 1 : Math.min(opts.reps, 2)); r++) {
      for (const mode of ['adaptive', 'interrupt', 'busy'] as PollMode[]) {
        try {
          await waitQuiet(timing.quietWaitMs);
          const x = await sc.xswIdle(rig, mode, seconds);
          idle.push(x);
          log(`idle ${mode}: back end ${x.backendPct.toFixed(2)} %, two guests ${x.guestsPct.toFixed(2)} % of one CPU over ${x.seconds.toFixed(1)} s`);
        } catch (err) {
          log(`idle ${mode}: failed: ${(err as Error).message}`);
          notes.push(`idle, ${mode}: a run failed: ${(err as Error).message.slice(0, 300)}`);
        }
      }
    }
  }

  const latency: Report['latency'] = { note: netNote };
  if (want('latency')) {
    const count = opts.quick ? 300 : 5000;
    const got: Required<Omit<Report['latency'], 'note'>> = { xsw: [], core: [], peer: [], wakeup: [], wakeupFloor: [] };
    Object.assign(latency, got);
    // Each measurement on its own, tried again once when it fails (on a loaded host a pinger can
    // miss its 20 s for the first echo); a second failure is a note, and the others still run.
    const measure = async (what: string, into: LatencyResult[], go: () => Promise<LatencyResult>, describe: (x: LatencyResult) => string): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        try {
          const x = await go();
          into.push(x);
          log(`latency ${what}: ${describe(x)} (${x.placement})`);
          return;
        } catch (err) {
          log(`latency ${what}: failed${attempt === 1 ? ', trying again' : ''}: ${(err as Error).message}`);
          if (attempt === 1) continue;
          notes.push(`latency: ${what} failed twice: ${(err as Error).message.slice(0, 300)}`);
          return;
        }
      }
    };
    const med = (x: LatencyResult, digits = 1) => `median ${median(x.rttUs).toFixed(digits)} µs`;
    for (let r = 0; r < opts.reps; r++) {
      await measure('xsw', got.xsw, () => sc.xswLatency(rig, count, opts.quick ? 50 : 500), (x) => med(x));
      await measure('xsw wake-up (interrupt)', got.wakeup, () => sc.xswWakeupLatency(rig, opts.quick ? 300 : 3000, opts.quick ? 20 : 200), (x) => `${med(x)}, ${x.lost} lost`);
      await measure('wake-up floor (eventfds, no xsw)', got.wakeupFloor, () => sc.wakeupFloor(opts.quick ? 300 : 3000, opts.quick ? 20 : 200), (x) => `${med(x)}, p99 ${percentile(x.rttUs, 99).toFixed(1)} µs`);
      await measure('xsw switch core', got.core, () => sc.xswCoreLatency(opts.quick ? 300 : 2000), (x) => med(x, 2));
      if (root) await measure('veth ping', got.peer, () => sc.vethLatency(opts.quick ? 100 : 1000), (x) => med(x));
    }
  }

  let attach: Report['attach'];
  let attachNote: string | undefined;
  if (want('attach')) {
    try {
      attach = await sc.xswAttach(rig, Math.max(opts.reps, opts.quick ? 1 : 5));
      log(`attach: ${attach.attachMs.map((x) => x.toFixed(0)).join(', ')} ms (start key → registered)`);
    } catch (err) {
      attachNote = `failed: ${(err as Error).message.slice(0, 300)}`;
      log(`attach: ${attachNote}`);
    }
  }

  const targets = allTargets(figures, pool.gbytesPerS, attach, idle, paced, latency);
  if (root) {
    const ver = (await run('dpkg-query', ['-W', '-f=${Version}', 'dpdk-dev'])).out.trim();
    if (tp && ver) notes.push(`Peers: DPDK (Debian dpdk-dev ${ver}), dpdk-testpmd with one forwarding lcore per process, split rings, 1 queue, default descriptors.`);
  }
  const report: Report = {
    date: new Date().toISOString(),
    quick: opts.quick,
    machine: machine(),
    timing: { warmupS: opts.warmup, windowS: opts.window, reps: opts.reps },
    topology: [
      `Every switch (xsw's back-end data thread, the vhost switch's forwarding lcore) runs alone on CPU ${CPU_SWITCH}; every guest poller runs on CPU ${CPU_GUESTS}; DPDK main lcores float; all poll busily.`,
      `*One switch core (loop, 2 pollers):* one guest thread drives two devices and sends back, MACs swapped, every frame it receives (${sc.LOOP_IN_FLIGHT} frames in flight per device), so each frame crosses the switch again and again and only two pollers share the two CPUs. xsw: the back end's real data plane (xsw::Switch) and the front end's real PMD (xsw::FrontPort) in one process, memory laid out as grants are (bench/native/switch_loop.h). DPDK: testpmd with two net_vhost ports in io forwarding, and one guest testpmd with two virtio_user ports in io forwarding after \`start tx_first 4\`. One link: testpmd virtio_user txonly → testpmd vhost rxonly (one ring hop, no switch). Kernel: an AF_PACKET generator (sendmmsg, qdisc bypass) in one namespace, counted at the veth in the other.`,
      `*Same guests:* one guest testpmd (its forwarding lcore on CPU ${CPU_GUESTS}, hugepages) with two virtio_user ports in mac forwarding after \`start tx_first 4\` (what one port receives leaves the other with that port's MAC as source, to the first port's MAC), the same command line for both switches: xsw-backend --poll busy with two --vhost-user ports (taskset CPU ${CPU_SWITCH}), or DPDK's vhost switch (testpmd io, 2×net_vhost, forwarding lcore on CPU ${CPU_SWITCH}). Two pollers on two CPUs, as in the one-switch-core rows, so the switch is what is measured (with a txonly and an rxonly guest, three pollers share two CPUs and the scheduler is measured, see the 3-process rows).`,
      `*--cores 2:* the one-switch-core loop on a switch with two data threads (CPU ${CPU_SWITCH} and a third CPU), its two devices on different threads, so every frame is handed over between threads and copied once by the receiver's thread; beside the same loop on one switch core. Needs three CPUs; on two it is not measured (the two threads and the guest would share them).`,
      `*Scale:* the one-switch-core loop with more devices attached, each of its own guest, that never send (62 or 14 besides the two that loop); the ratio column is the 64-attached figure over the 2- and 16-attached ones.`,
      `*3 processes (txonly→switch→rxonly):* xsw-backend (taskset) with guests xsw-front --fwd txonly and --fwd rxonly under xsw-sim exec, all in the default poll mode (adaptive) and again all in --poll busy; then once with the sender paced (--rate, --count) in the default mode, counting what the receiver got; DPDK: the vhost switch with two guest testpmds on virtio_user (txonly, rxonly). Three pollers on two CPUs: the two guests take turns on CPU ${CPU_GUESTS}, so frames flow only while both the sender's and the receiver's ring have room; this measures how much a 256-entry ring carries per scheduler time slice, not the switch.`,
      `*NIC paths:* xsw-backend -p on a veth (AF_PACKET) in a namespace; the generator plays the wire (VLAN 1000, the guest's MAC); guest→NIC is counted at the veth's far end.`,
    ].join('\n\n'),
    memcpy: { hot1500GBs: hot.gbytesPerS, pool1500GBs: pool.gbytesPerS },
    crossingStartNs,
    figures,
    latency,
    attach,
    attachNote,
    idle,
    paced,
    rssPerGuestBytes: rssPerGuest,
    targets,
    notes,
  };
  await cleanupAll(log);
  if (opts.json) fs.writeFileSync(opts.json, `${JSON.stringify(report, null, 1)}\n`);
  const md = markdown(report);
  if (opts.write) {
    writeReport(opts.write, md);
    log(`wrote ${opts.write}`);
  } else process.stdout.write(md);
  return 0;
}

const BEGIN = '<!-- bench:results (written by npm run bench; edit outside these markers) -->';
const END = '<!-- /bench:results -->';

/** Writes the results between the markers, keeping whatever people wrote around them. */
function writeReport(file: string, md: string): void {
  const block = `${BEGIN}\n${md}\n${END}`;
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const a = old.indexOf(BEGIN);
  const b = old.indexOf(END);
  fs.writeFileSync(file, a >= 0 && b > a ? old.slice(0, a) + block + old.slice(b + END.length) : `${block}\n`);
}

/** The wake-up target, beside the floor of the host (the same pattern with eventfds, no xsw). */
function wakeupTarget(x: { p99: number; median: number; n: number }, floor: { p99: number; median: number; n: number } | undefined): Target {
  const detail = `p99 ${x.p99.toFixed(1)} µs, median ${x.median.toFixed(1)} µs (${x.n} round trips)`;
  if (!floor) return { what: 'interrupt-mode wake-up round trip p99 < 100 µs', met: x.p99 < 100, detail };
  const f = `the floor of this host (the same three wake-ups with eventfds between processes, no xsw): p99 ${floor.p99.toFixed(1)} µs, median ${floor.median.toFixed(1)} µs`;
  if (floor.p99 >= 100) {
    return { what: 'interrupt-mode wake-up round trip p99 < 100 µs', met: false, detail: `${detail}; ${f}, so the target cannot be met on this host` };
  }
  return { what: 'interrupt-mode wake-up round trip p99 < 100 µs', met: x.p99 < 100, detail: `${detail}; ${f}` };
}

/** "; medians: slow 0.68×": the median-of-medians ratio beside the paired one. */
function medians(f: Figure, peer: Series): string {
  const rs = ratios(f, peer);
  return rs.length ? `; medians ${fmtRatios(rs)}` : '';
}

/** Every target's verdict: a run's, and again when a saved run is rendered (--render). */
function allTargets(figures: Figure[], poolGBs: number, attach: Report['attach'], idle: IdleResult[], paced: PacedResult[], latency: Report['latency']): Target[] {
  const targets = computeTargets(figures, poolGBs, attach, idle, paced);
  const lw = latencySummary(latency.wakeup);
  if (lw) targets.push(wakeupTarget(lw, latencySummary(latency.wakeupFloor)));
  return targets;
}

function computeTargets(figures: Figure[], poolGBs: number, attach: Report['attach'], idle: IdleResult[], paced: PacedResult[]): Target[] {
  const t: Target[] = [];
  const p64 = figures.find((f) => f.id === 'proc64');
  if (p64) {
    const x = seriesSummary(p64, p64.xsw);
    t.push({ what: '3 processes on two CPUs, 64 B, default poll mode ≥ 3 Mpps', met: x ? x.median >= 3 : undefined, detail: x ? `median ${x.median.toFixed(2)} Mpps` : 'no window' });
  }
  for (const p of paced) {
    t.push({
      what: `3 processes, sender paced at ${p.rate} frames/s (${p.mode}): zero loss at the receiver`,
      met: p.received === p.sent,
      detail: `${p.received} of ${p.sent} received (${p.sent - p.received} lost)`,
    });
  }
  const scale = figures.find((f) => f.id === 'scale64');
  if (scale) {
    const ps = pairs(scale, scale.xsw, scale.peers[0]);
    t.push({
      what: 'guest→guest 64 B with 64 devices attached (2 active) ≥ 90 % of the 2-device figure',
      ...fromVerdict(verdictAtLeast(ps, 0.9)),
      detail: ps.length ? `paired ${ps.map((r) => `${r.placement}: ${(r.median * 100).toFixed(0)} % (${(r.min * 100).toFixed(0)}–${(r.max * 100).toFixed(0)} %, ${r.n} pair${r.n === 1 ? '' : 's'})`).join(', ')}${medians(scale, scale.peers[0])}` : 'no window pair in the same placement',
    });
  }
  const idleDefault = idle.filter((x) => x.mode === 'adaptive');
  if (idleDefault.length) {
    const worst = Math.max(...idleDefault.map((x) => x.backendPct + x.guestsPct));
    t.push({
      what: 'idle: the back end and two attached idle guests use < 2 % of one CPU in the default poll mode (adaptive)',
      met: worst < 2,
      detail: `worst of ${idleDefault.length} run(s): ${worst.toFixed(2)} % (back end ${Math.max(...idleDefault.map((x) => x.backendPct)).toFixed(2)} %)`,
    });
  }
  const g64 = figures.find((f) => f.id === 'core64');
  if (g64) {
    const sw = g64.peers[0];
    const ps = sw.note ? [] : pairs(g64, g64.xsw, sw);
    t.push({
      what: 'guest→guest 64 B ≥ 1.5× the DPDK vhost switch (one switch core)',
      ...fromVerdict(verdictAtLeast(ps, 1.5)),
      detail: sw.note ?? (ps.length ? `paired ${fmtPairs(ps)}${medians(g64, sw)}` : 'no window pair in the same placement'),
    });
    const x = seriesSummary(g64, g64.xsw);
    t.push({ what: 'guest→guest 64 B ≥ 10 Mpps on one back-end core', met: x ? x.median >= 10 : undefined, detail: x ? `median ${x.median.toFixed(2)} Mpps (${(x.median / 10 * 100).toFixed(0)} % of the target), best ${x.max.toFixed(2)}` : 'no window' });
  }
  for (const [id, bound] of [['same64', 1.3], ['same1500', 1.5]] as [string, number][]) {
    const f = figures.find((x) => x.id === id);
    if (!f) continue;
    const sw = f.peers[0];
    const ps = sw.note || f.xsw.note ? [] : pairs(f, f.xsw, sw);
    t.push({
      what: `same guests (testpmd virtio_user) ${f.frameBytes} B ≥ ${bound}× the DPDK vhost switch`,
      ...fromVerdict(verdictAtLeast(ps, bound)),
      detail: sw.note ?? f.xsw.note ?? (ps.length ? `paired ${fmtPairs(ps)}${medians(f, sw)}` : 'no window pair in the same placement'),
    });
  }
  const g1500 = figures.find((f) => f.id === 'core1500');
  if (g1500) {
    const x = seriesSummary(g1500, g1500.xsw);
    const bound = poolGBs * 8;
    t.push({
      what: 'guest→guest 1500 B ≥ 50 % of one core\'s memcpy bandwidth (1500 B copies over 32 MiB pools)',
      met: x ? x.median >= bound / 2 : undefined,
      detail: x ? `${x.median.toFixed(1)} Gbit/s = ${((x.median / bound) * 100).toFixed(0)} % of ${bound.toFixed(1)} Gbit/s` : 'no window',
    });
  }
  if (attach) {
    const m = median(attach.attachMs);
    t.push({ what: 'attach < 50 ms (8192 mbufs)', met: Number.isFinite(m) ? m < 50 : undefined, detail: Number.isFinite(m) ? `median ${m.toFixed(1)} ms` : 'no measurement' });
  }
  return t;
}

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    log(`bench: ${sig}: stopping everything it started`);
    void cleanupAll(log).finally(() => process.exit(130));
  });
}

main().then(
  async (code) => {
    await cleanupAll(log);
    process.exit(code);
  },
  async (err: Error) => {
    log(`bench: ${err.message}`);
    await cleanupAll(log);
    process.exit(1);
  },
);
