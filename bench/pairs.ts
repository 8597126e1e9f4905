// Paired ratios: on a host whose CPUs swing 1.5–2× between windows, the
// median of each system's windows can fall in different swings; a window of
// xsw divided by the peer's window next to it in time (same placement) sees
// the same swing on both sides. The median of those per-pair ratios, with
// their min–max, is what the target verdicts use.
import { median } from './stats';

/** One window as the estimator sees it: when it started, its placement, its figure. */
export interface Timed {
  at: number;
  placement: string;
  value: number;
}

export interface PairedRatio {
  placement: string;
  /** Median of the per-pair ratios a/b. */
  median: number;
  min: number;
  max: number;
  /** Pairs formed. */
  n: number;
  ratios: number[];
}

/**
 * Pairs each window of `a` with the window of `b` nearest to it in time in
 * the same placement (fast or slow; changed/unknown windows are not paired),
 * each window used at most once, closest pairs first; returns a/b per
 * placement that has at least one pair.
 */
export function pairedRatios(a: Timed[], b: Timed[]): PairedRatio[] {
  const out: PairedRatio[] = [];
  for (const placement of ['fast', 'slow']) {
    const xs = a.filter((w) => w.placement === placement && Number.isFinite(w.value));
    const ys = b.filter((w) => w.placement === placement && Number.isFinite(w.value) && w.value > 0);
    const cand: { i: number; j: number; d: number }[] = [];
    xs.forEach((x, i) => ys.forEach((y, j) => cand.push({ i, j, d: Math.abs(x.at - y.at) })));
    cand.sort((p, q) => p.d - q.d || p.i - q.i || p.j - q.j);
    const usedA = new Set<number>();
    const usedB = new Set<number>();
    const pairs: { at: number; r: number }[] = [];
    for (const c of cand) {
      if (usedA.has(c.i) || usedB.has(c.j)) continue;
      usedA.add(c.i);
      usedB.add(c.j);
      pairs.push({ at: xs[c.i].at, r: xs[c.i].value / ys[c.j].value });
    }
    if (!pairs.length) continue;
    const ratios = pairs.sort((p, q) => p.at - q.at).map((p) => p.r);
    out.push({ placement, median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), n: ratios.length, ratios });
  }
  return out;
}

export type Verdict = 'met' | 'missed' | 'not settled';

/**
 * A "≥ bound" target against paired ratios: met when every pair in every
 * placement reaches it, missed when some placement's pairs all fall short,
 * not settled when a placement's min–max straddles it (and none missed).
 */
export function verdictAtLeast(rs: { min: number; max: number }[], bound: number): Verdict | undefined {
  if (!rs.length) return undefined;
  if (rs.some((r) => r.max < bound)) return 'missed';
  if (rs.some((r) => r.min < bound)) return 'not settled';
  return 'met';
}

/**
 * The systems' order in round `r` of an interleaved run: each round starts one
 * system later (a, b, c; then b, c, a; …), so that no system always follows the
 * same one: a window may inherit state from the one before it (in the same-guests
 * row an identical build that always came second ran at about half the rate of the
 * one before it; docs/PERFORMANCE.md, "Busy shares").
 */
export function roundOrder<T>(systems: readonly T[], r: number): T[] {
  return systems.map((_, i) => systems[(i + r) % systems.length]);
}
