// One measurement window: quiet gate, crossing time before, traffic up,
// warm-up, the receiver's counter read twice, traffic down, crossing time
// after. A window with too much foreign load is repeated.
import { foreignCpus, NOISY_CPUS, sampleLoad, waitQuiet } from './cpuload';
import { benchAddon } from './native';
import { sleep } from '../harness/child';

export type Placement = 'fast' | 'slow' | 'changed' | 'unknown';

/** One-way cache-line crossing time below this (ns) is the fast placement. */
export const FAST_CROSSING_NS = 60;

export interface Timing {
  warmupMs: number;
  windowMs: number;
  /** Tries per window when foreign load makes it noisy. */
  tries: number;
  /** How long to wait for a quiet machine before a window. */
  quietWaitMs: number;
}

/** The receiver's count at an instant, on the counter's own clock (ms). */
export interface Count {
  t: number;
  count: number;
}

export interface Traffic {
  read(): Promise<Count>;
  stop(): Promise<void>;
  /** Called just before the window's first count: counters for facts() start here. */
  mark?(): Promise<void> | void;
  /** Extra facts taken just before traffic stops (e.g. the back end's RSS, poll counts since mark()). */
  facts?(): Record<string, number> | Promise<Record<string, number>>;
}

export interface WindowResult {
  system: string;
  /** When the window's traffic started (ms since the epoch; absent in older reports). */
  at?: number;
  /** Frames per second the receiver counted over the window. */
  pps: number;
  crossBeforeNs: number;
  crossAfterNs: number;
  placement: Placement;
  foreignCpu: number;
  noisy: boolean;
  tries: number;
  facts: Record<string, number>;
}

export function crossingNs(): number {
  try {
    return benchAddon().crossingTime(0, 1, 12800, 3000).medianNs;
  } catch {
    return NaN;
  }
}

export function placementOf(before: number, after: number): Placement {
  if (!Number.isFinite(before) || !Number.isFinite(after)) return 'unknown';
  const a = before < FAST_CROSSING_NS;
  const b = after < FAST_CROSSING_NS;
  if (a !== b) return 'changed';
  return a ? 'fast' : 'slow';
}

/** Measures one window of `system`'s traffic, repeating it while it is noisy. */
export async function measureWindow(system: string, timing: Timing, startTraffic: () => Promise<Traffic>, log: (s: string) => void): Promise<WindowResult> {
  let last: WindowResult | undefined;
  for (let attempt = 1; attempt <= timing.tries; attempt++) {
    await waitQuiet(timing.quietWaitMs);
    const crossBeforeNs = crossingNs();
    const at = Date.now();
    const traffic = await startTraffic();
    let c0: Count;
    let c1: Count;
    let foreign: number;
    let facts: Record<string, number> = {};
    try {
      await sleep(timing.warmupMs);
      await traffic.mark?.();
      const l0 = sampleLoad();
      c0 = await traffic.read();
      await sleep(timing.windowMs);
      c1 = await traffic.read();
      foreign = foreignCpus(l0, sampleLoad());
      facts = (await traffic.facts?.()) ?? {};
    } finally {
      await traffic.stop();
    }
    const crossAfterNs = crossingNs();
    const seconds = (c1.t - c0.t) / 1000;
    const pps = seconds > 0 ? (c1.count - c0.count) / seconds : NaN;
    last = {
      system, at, pps, crossBeforeNs, crossAfterNs, placement: placementOf(crossBeforeNs, crossAfterNs),
      foreignCpu: foreign, noisy: foreign >= NOISY_CPUS, tries: attempt, facts,
    };
    log(`  ${system}: ${(pps / 1e6).toFixed(3)} Mpps  crossing ${crossBeforeNs.toFixed(0)}/${crossAfterNs.toFixed(0)} ns (${last.placement})  foreign ${(foreign * 100).toFixed(0)}% of a CPU${last.noisy ? '  NOISY' : ''}`);
    if (!last.noisy) break;
  }
  return last!;
}
