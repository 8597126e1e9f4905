// Foreign load: CPU time used on this machine by processes that are not the
// bench's (this process and its descendants; ksoftirqd counts as ours, since
// it runs our veth traffic). A window in which others used ≥ 10 % of one CPU
// is noisy and is repeated (the quiet gate of docs/PERFORMANCE.md's Method).
import fs from 'node:fs';
import os from 'node:os';
import { sleep } from '../harness/child';

const HZ = 100; // USER_HZ on Linux

export interface LoadSample {
  at: number; // performance.now()
  busyTicks: number;
  ourTicks: number;
}

function machineBusyTicks(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return f[0] + f[1] + f[2] + f[5] + f[6];
}

interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  ticks: number;
}

function readStat(pid: string): ProcStat | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = s.lastIndexOf(')');
    const comm = s.slice(s.indexOf('(') + 1, close);
    const f = s.slice(close + 2).split(' ');
    // f[0] = state (field 3); utime = field 14 → f[11], stime f[12], cutime f[13], cstime f[14]
    return { pid: Number(pid), comm, ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) };
  } catch {
    return undefined;
  }
}

/** Ticks of the processes matching `roots` and all their descendants. */
function treeTicks(roots: (p: ProcStat) => boolean): number {
  const all: ProcStat[] = [];
  for (const e of fs.readdirSync('/proc')) if (/^[0-9]+$/.test(e)) {
    const st = readStat(e);
    if (st) all.push(st);
  }
  const children = new Map<number, ProcStat[]>();
  for (const p of all) {
    const list = children.get(p.ppid) ?? [];
    list.push(p);
    children.set(p.ppid, list);
  }
  let sum = 0;
  const stack = all.filter(roots);
  while (stack.length) {
    const p = stack.pop()!;
    sum += p.ticks;
    stack.push(...(children.get(p.pid) ?? []));
  }
  return sum;
}

function ourTicks(): number {
  return treeTicks((p) => p.pid === process.pid || p.comm.startsWith('ksoftirqd/'));
}

/** CPU seconds used so far by process `pid` and its descendants (user + system). */
export function processTreeCpuSeconds(pid: number): number {
  return treeTicks((p) => p.pid === pid) / HZ;
}

export function sampleLoad(): LoadSample {
  return { at: performance.now(), busyTicks: machineBusyTicks(), ourTicks: ourTicks() };
}

/** CPUs' worth of time used by others between two samples (0.1 = 10 % of one CPU). */
export function foreignCpus(a: LoadSample, b: LoadSample): number {
  const seconds = (b.at - a.at) / 1000;
  if (seconds <= 0) return 0;
  const foreign = b.busyTicks - a.busyTicks - (b.ourTicks - a.ourTicks);
  return Math.max(0, foreign / HZ / seconds);
}

export const NOISY_CPUS = 0.1;

/**
 * Waits (up to maxWaitMs) for a 1-second interval in which others used less
 * than 10 % of one CPU. Returns the last interval's foreign load.
 */
export async function waitQuiet(maxWaitMs: number, intervalMs = 1000): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  for (;;) {
    const a = sampleLoad();
    await sleep(intervalMs);
    const f = foreignCpus(a, sampleLoad());
    if (f < NOISY_CPUS || Date.now() >= deadline) return f;
  }
}

export function loadAverage(): number {
  return os.loadavg()[0];
}
