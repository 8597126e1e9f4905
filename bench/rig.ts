// The xsw side of the bench: a private simulated platform (its own
// XSW_SIM_DIR), the back end pinned to its CPU, and guests run as real
// xsw-front processes under `xsw-sim exec`, pinned with taskset.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Child, mustRun, sleep } from '../harness/child';
import { Netns } from '../harness/netns';
import { CLI } from '../harness/cli-paths';
import { parseStatsJson } from '../frontend/stats';
import * as toolstack from '../xenstore/sim/toolstack';
import { onCleanup, start } from './cleanup';

export const PINGER = path.join(__dirname, 'pinger.js');
export const BLAST = path.join(__dirname, 'blast.js');

/** The CPUs of the topology: the back end (or vhost switch) alone on one, the guests share the other. */
export const CPU_SWITCH = 1;
export const CPU_GUESTS = 0;

export interface FrontCounter {
  /** Milliseconds (the front end's own clock, from its stats line). */
  t: number;
  rx: number;
  tx: number;
}

/** The dist/ entry points a rig runs (harness/cli-paths.ts's CLI, or another checkout's for --xsw-b). */
export type CliPaths = { backend: string; front: string; sim: string };

/** The entry points of another checkout (its dist/ built). */
export function cliPathsOf(root: string): CliPaths {
  const dist = path.join(root, 'dist');
  return { backend: path.join(dist, 'backend', 'cli.js'), front: path.join(dist, 'frontend', 'cli.js'), sim: path.join(dist, 'xenstore', 'sim', 'cli.js') };
}

export class SimRig {
  private constructor(
    readonly dir: string,
    private readonly cli: CliPaths = CLI,
    private readonly domains = new Map<string, number>(),
  ) {}

  /** The same platform (and domains), running another build's back end and front ends. */
  withCli(cli: CliPaths): SimRig {
    return new SimRig(this.dir, cli, this.domains);
  }

  static async up(): Promise<SimRig> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xsw-bench-sim-'));
    onCleanup(`stop the simulated platform in ${dir}`, async () => {
      await toolstack.down(dir).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    });
    await toolstack.up(dir, { gntallocLimit: 32768 });
    return new SimRig(dir);
  }

  get dom0Socket(): string {
    return toolstack.simPaths(this.dir).socket;
  }

  async domain(name: string): Promise<number> {
    let id = this.domains.get(name);
    if (id === undefined) {
      id = await toolstack.create(this.dir, name);
      this.domains.set(name, id);
    }
    return id;
  }

  private env(): NodeJS.ProcessEnv {
    return toolstack.simEnv(this.dir, this.dom0Socket);
  }

  /** xsw-backend --poll busy pinned to CPU_SWITCH, in namespace `ns` when given. */
  backend(args: string[], ns?: string): Child {
    const cmd = ['taskset', '-c', String(CPU_SWITCH), process.execPath, this.cli.backend, '--platform', 'sim', '--poll', 'busy', ...args];
    const full = ns ? ['ip', 'netns', 'exec', ns, ...cmd] : cmd;
    return start('xsw-backend', full[0], full.slice(1), { env: this.env() });
  }

  /** Waits until the back end has registered `count` devices (counting log lines from `from`); returns their line indexes. */
  registered(be: Child, count: number, timeoutMs = 20000, from = 0): Promise<number[]> {
    return be.waitFor(`xsw-backend to register ${count} device(s)`, () => {
      const hits: number[] = [];
      for (let i = from; i < be.err.length; i++) if (/MAC_ADDRESS .* registered/.test(be.err[i])) hits.push(i);
      return hits.length >= count ? hits : undefined;
    }, timeoutMs);
  }

  /** A program run as domain `name` under `xsw-sim exec`, pinned to `cpu`. */
  async guest(name: string, cpu: number, program: string, args: string[]): Promise<Child> {
    await this.domain(name);
    return start(`${name}`, 'taskset', ['-c', String(cpu), process.execPath, this.cli.sim, 'exec', name, '--', process.execPath, program, ...args], {
      env: this.env(),
    });
  }

  /** xsw-front with stats every 0.5 s as JSON (the receiver's counters are the figure). */
  front(name: string, cpu: number, args: string[]): Promise<Child> {
    return this.guest(name, cpu, this.cli.front, ['--poll', 'busy', '--stats', '0.5', '--json', '--log-level', 'warn', ...args]);
  }
}

/** The newest stats line a front end printed after line `from`, waiting for one if needed. */
export async function frontCounter(p: Child, timeoutMs = 5000): Promise<FrontCounter> {
  const from = p.out.length;
  await p.waitLine('out', /^\{"time"/, { from, timeoutMs });
  for (let i = p.out.length - 1; i >= from; i--) {
    const s = parseStatsJson(p.out[i]);
    const d = s?.devices[0];
    if (s && d) return { t: s.time, rx: d.rx_packets, tx: d.tx_packets };
  }
  throw new Error(`${p.name} printed no stats line`);
}

/** Resident memory of a process (bytes), from /proc/<pid>/status. */
export function rssBytes(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/**
 * A network namespace holding one veth pair (its far end in `peerNs` when
 * given, with addresses when given), deleted at cleanup.
 */
export async function vethNamespace(ns: string, a: string, b: string, opts: { addrs?: [string, string]; peerNs?: string } = {}): Promise<Netns> {
  const near = await Netns.add(ns, { replace: true });
  onCleanup(`delete network namespace ${ns}`, () => near.remove());
  let far: Netns | undefined;
  if (opts.peerNs) {
    const f = await Netns.add(opts.peerNs, { replace: true });
    onCleanup(`delete network namespace ${opts.peerNs}`, () => f.remove());
    far = f;
  }
  await near.addVeth(a, b, { peer: far, addrs: opts.addrs });
  await sleep(100);
  return near;
}

/** rx_packets of an interface in a namespace, with the time it was read (ms, this process's clock). */
export async function linkRxPackets(ns: string, dev: string): Promise<{ t: number; rx: number }> {
  const r = await mustRun('ip', ['-n', ns, '-j', '-s', 'link', 'show', 'dev', dev]);
  const t = performance.now();
  const j = JSON.parse(r.out) as { stats64: { rx: { packets: number } } }[];
  return { t, rx: j[0].stats64.rx.packets };
}
