// The xsw side of the bench: a private simulated platform (its own
// XSW_SIM_DIR), the back end pinned to its CPU, and guests run as real
// xsw-front processes under `xsw-sim exec`, pinned with taskset.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as toolstack from '../xenstore/sim/toolstack';
import { onCleanup, Proc, run, sleep, start } from './procs';

const DIST = path.join(__dirname, '..');
export const BACKEND_CLI = path.join(DIST, 'backend', 'cli.js');
export const FRONT_CLI = path.join(DIST, 'frontend', 'cli.js');
export const SIM_CLI = path.join(DIST, 'xenstore', 'sim', 'cli.js');
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

export class SimRig {
  private readonly domains = new Map<string, number>();

  private constructor(readonly dir: string) {}

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
    return { ...process.env, XSW_SIM_DIR: this.dir, XENSTORED_PATH: this.dom0Socket, XSW_PLATFORM: 'sim' };
  }

  /** xsw-backend --poll busy pinned to CPU_SWITCH, in netns `ns` when given. */
  backend(args: string[], ns?: string): Proc {
    const cmd = ['taskset', '-c', String(CPU_SWITCH), process.execPath, BACKEND_CLI, '--platform', 'sim', '--poll', 'busy', ...args];
    const full = ns ? ['ip', 'netns', 'exec', ns, ...cmd] : cmd;
    return start('xsw-backend', full[0], full.slice(1), { env: this.env() });
  }

  /** Waits until the back end has registered `count` devices (counting log lines from `from`). */
  async registered(be: Proc, count: number, timeoutMs = 20000, from = 0): Promise<number[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hits: number[] = [];
      for (let i = from; i < be.err.length; i++) if (/MAC_ADDRESS .* registered/.test(be.err[i])) hits.push(i);
      if (hits.length >= count) return hits;
      if (!be.alive) throw new Error(`xsw-backend exited: ${be.tail()}`);
      if (Date.now() > deadline) throw new Error(`xsw-backend registered ${hits.length} of ${count} devices within ${timeoutMs} ms: ${be.tail()}`);
      await be.next(100);
    }
  }

  /** A program run as domain `name` under `xsw-sim exec`, pinned to `cpu`. */
  async guest(name: string, cpu: number, program: string, args: string[]): Promise<Proc> {
    await this.domain(name);
    return start(`${name}`, 'taskset', ['-c', String(cpu), process.execPath, SIM_CLI, 'exec', name, '--', process.execPath, program, ...args], {
      env: { ...process.env, XSW_SIM_DIR: this.dir },
    });
  }

  /** xsw-front with stats every 0.5 s as JSON (the receiver's counters are the figure). */
  front(name: string, cpu: number, args: string[]): Promise<Proc> {
    return this.guest(name, cpu, FRONT_CLI, ['--poll', 'busy', '--stats', '0.5', '--json', '--log-level', 'warn', ...args]);
  }
}

/** The newest stats line a front end printed after line `from`, waiting for one if needed. */
export async function frontCounter(p: Proc, timeoutMs = 5000): Promise<FrontCounter> {
  const from = p.out.length;
  await p.waitFor(/^\{"time"/, timeoutMs, 'out', from);
  for (let i = p.out.length - 1; i >= from; i--) {
    if (!p.out[i].startsWith('{"time"')) continue;
    const j = JSON.parse(p.out[i]) as { time: string; devices: { rx_packets: number; tx_packets: number }[] };
    const d = j.devices[0];
    return { t: Date.parse(j.time), rx: d.rx_packets, tx: d.tx_packets };
  }
  throw new Error(`${p.name} printed no stats line`);
}

/** Resident memory of a process (bytes), from /proc/<pid>/status. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** A network namespace holding one veth pair, removed at cleanup. */
export async function vethNamespace(ns: string, a: string, b: string, opts: { addrs?: [string, string]; peerNs?: string } = {}): Promise<() => Promise<void>> {
  await run('ip', ['netns', 'del', ns], false);
  if (opts.peerNs) await run('ip', ['netns', 'del', opts.peerNs], false);
  const undo = onCleanup(`delete network namespace ${ns}`, async () => {
    await run('ip', ['netns', 'del', ns], false);
    if (opts.peerNs) await run('ip', ['netns', 'del', opts.peerNs], false);
  });
  await run('ip', ['netns', 'add', ns]);
  const nsB = opts.peerNs ?? ns;
  if (opts.peerNs) await run('ip', ['netns', 'add', nsB]);
  await run('ip', ['-n', ns, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b, 'netns', nsB]);
  for (const [n, dev] of [[ns, a], [nsB, b]]) {
    await run('ip', ['netns', 'exec', n, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1'], false);
    await run('ip', ['-n', n, 'link', 'set', dev, 'up']);
  }
  if (opts.addrs) {
    await run('ip', ['-n', ns, 'addr', 'add', opts.addrs[0], 'dev', a]);
    await run('ip', ['-n', nsB, 'addr', 'add', opts.addrs[1], 'dev', b]);
  }
  await sleep(100);
  return undo;
}

/** rx_packets of an interface in a namespace, with the time it was read (ms, this process's clock). */
export async function linkRxPackets(ns: string, dev: string): Promise<{ t: number; rx: number }> {
  const r = await run('ip', ['-n', ns, '-j', '-s', 'link', 'show', 'dev', dev]);
  const t = performance.now();
  const j = JSON.parse(r.out) as { stats64: { rx: { packets: number } } }[];
  return { t, rx: j[0].stats64.rx.packets };
}
