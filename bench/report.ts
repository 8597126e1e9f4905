// The bench's results: one JSON document (machines) and the markdown of
// docs/PERFORMANCE.md (people). Ratios xsw/peer are only formed between
// windows of the same CPU placement.
import { pairedRatios, PairedRatio, Verdict } from './pairs';
import { median, percentile, summarize, Summary } from './stats';
import type { AttachResult, IdleResult, LatencyResult, PacedResult } from './scenarios';
import type { Placement, WindowResult } from './window';

export type Unit = 'Mpps' | 'Gbit/s';

export interface Series {
  name: string;
  windows: WindowResult[];
  /** Why it was not measured ("not measured: apt-get install dpdk-dev"), if it was not. */
  note?: string;
}

export interface Figure {
  id: string;
  title: string;
  unit: Unit;
  frameBytes: number;
  xsw: Series;
  /** --xsw-b: the same xsw rows from another build, interleaved with xsw's windows (ratios B/A). */
  b?: Series;
  peers: Series[];
}

export interface Target {
  what: string;
  met: boolean | undefined;
  /** The paired ratios' min–max straddles the bound: neither met nor missed. */
  unsettled?: boolean;
  detail: string;
}

/** A Target's met/unsettled fields from a verdict. */
export function fromVerdict(v: Verdict | undefined): Pick<Target, 'met' | 'unsettled'> {
  return v === 'not settled' ? { met: undefined, unsettled: true } : { met: v === undefined ? undefined : v === 'met' };
}

export interface Report {
  date: string;
  quick: boolean;
  machine: { cpu: string; cpus: number; kernel: string; memGiB: number; hypervisor: string };
  timing: { warmupS: number; windowS: number; reps: number };
  topology: string;
  memcpy: { hot1500GBs: number; pool1500GBs: number };
  crossingStartNs: number;
  figures: Figure[];
  latency: { xsw?: LatencyResult[]; core?: LatencyResult[]; peer?: LatencyResult[]; wakeup?: LatencyResult[]; wakeupFloor?: LatencyResult[]; note?: string };
  attach?: AttachResult;
  attachNote?: string;
  /** Idle cost per poll mode (absent in reports written before it existed). */
  idle?: IdleResult[];
  /** The 3-process topology with the sender paced (absent in older reports). */
  paced?: PacedResult[];
  rssPerGuestBytes: number[];
  targets: Target[];
  notes: string[];
}

export function valueOf(f: Figure, w: WindowResult): number {
  return f.unit === 'Mpps' ? w.pps / 1e6 : (w.pps * f.frameBytes * 8) / 1e9;
}

/** The windows a summary uses: the clean ones (docs/PERFORMANCE.md, Method), or all of them when every one was noisy. */
export function usedWindows(s: Series): WindowResult[] {
  const ok = s.windows.filter((w) => Number.isFinite(w.pps));
  const clean = ok.filter((w) => !w.noisy);
  return clean.length ? clean : ok;
}

export function seriesSummary(f: Figure, s: Series, placement?: Placement): Summary | undefined {
  const ws = usedWindows(s).filter((w) => placement === undefined || w.placement === placement);
  return summarize(ws.map((w) => valueOf(f, w)));
}

/** xsw/peer (or `of`/peer) per placement where both have windows. */
export function ratios(f: Figure, peer: Series, of: Series = f.xsw): { placement: Placement; ratio: number }[] {
  const out: { placement: Placement; ratio: number }[] = [];
  for (const p of ['fast', 'slow'] as Placement[]) {
    const a = seriesSummary(f, of, p);
    const b = seriesSummary(f, peer, p);
    if (a && b && b.median > 0) out.push({ placement: p, ratio: a.median / b.median });
  }
  return out;
}

/** xsw/peer per pair of windows next to each other in time, same placement (bench/pairs.ts). */
export function pairs(f: Figure, a: Series, b: Series): PairedRatio[] {
  const timed = (s: Series) => usedWindows(s).map((w) => ({ at: w.at ?? s.windows.indexOf(w), placement: w.placement, value: valueOf(f, w) }));
  return pairedRatios(timed(a), timed(b));
}

/** "slow: 0.68×, fast: 1.10×": median-of-medians ratios (ratios()). */
export function fmtRatios(rs: { placement: Placement; ratio: number }[]): string {
  return rs.map((x) => `${x.placement}: ${fmt(x.ratio)}×`).join(', ');
}

export function fmtPairs(rs: PairedRatio[]): string {
  return rs.map((x) => `${x.placement}: ${fmt(x.median)}× (${fmt(x.min)}–${fmt(x.max)}, ${x.n} pair${x.n === 1 ? '' : 's'})`).join(', ');
}

const fmt = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

export function fmtSummary(s: Summary | undefined, d = 2): string {
  if (!s) return 'n/a';
  return `${fmt(s.median, d)} (${fmt(s.min, d)}–${fmt(s.max, d)})`;
}

function placements(s: Series): string {
  const used = usedWindows(s);
  const count = (p: Placement) => used.filter((w) => w.placement === p).length;
  const parts = (['fast', 'slow', 'changed', 'unknown'] as Placement[]).filter((p) => count(p) > 0).map((p) => `${count(p)} ${p}`);
  const noisy = used.filter((w) => w.noisy).length;
  return (parts.join(', ') || '–') + (noisy ? ` (${noisy} noisy: no clean window)` : '');
}

function crossings(s: Series): string {
  const xs = usedWindows(s).flatMap((w) => [w.crossBeforeNs, w.crossAfterNs]).filter(Number.isFinite);
  if (!xs.length) return 'n/a';
  return `${fmt(Math.min(...xs), 0)}–${fmt(Math.max(...xs), 0)}`;
}

/** The poll facts of every series that has them (scenarios.ts pollFacts), as table cells. */
export function pollRows(figures: Figure[]): { figure: string; system: string; switchSide: string; guestSide: string }[] {
  const out: { figure: string; system: string; switchSide: string; guestSide: string }[] = [];
  for (const f of figures) {
    for (const s of [f.xsw, ...(f.b ? [f.b] : []), ...f.peers]) {
      const ws = usedWindows(s);
      const m = (k: string) => median(ws.map((w) => w.facts[k]).filter((v): v is number => Number.isFinite(v)));
      const side = (k: 'switch' | 'guest') => {
        const busy = m(`${k}_busy_pct`);
        const e = m(`${k}_empty_pct`);
        const fp = m(`${k}_frames_per_poll`);
        if (!Number.isFinite(busy) && !Number.isFinite(e) && !Number.isFinite(fp)) return undefined;
        const pct = (v: number) => (Number.isFinite(v) ? `${fmt(v, 1)} %` : 'not counted');
        return `${pct(busy)}; ${pct(e)}, ${Number.isFinite(fp) ? fmt(fp, 2) : 'n/a'}`;
      };
      const a = side('switch');
      const b = side('guest');
      if (a || b) out.push({ figure: `${f.title} [${f.unit}]`, system: s.name, switchSide: a ?? 'n/a', guestSide: b ?? 'n/a' });
    }
  }
  return out;
}

export function latencySummary(rs: LatencyResult[] | undefined): { median: number; p99: number; n: number } | undefined {
  const all = (rs ?? []).flatMap((r) => r.rttUs);
  if (!all.length) return undefined;
  return { median: percentile(all, 50), p99: percentile(all, 99), n: all.length };
}

export function markdown(r: Report): string {
  const L: string[] = [];
  L.push('# Performance');
  L.push('');
  L.push(`Produced by \`npm run bench\`${r.quick ? ' --quick (a smoke run: too short to quote)' : ''} on ${r.date}.`);
  L.push('');
  L.push(`**Machine:** ${r.machine.cpu}, ${r.machine.cpus} vCPUs (${r.machine.hypervisor}), ${r.machine.memGiB} GiB, Linux ${r.machine.kernel}.`);
  L.push(`**Method:** each figure is the median (min–max) of ${r.timing.reps} windows of ${r.timing.windowS} s after ${r.timing.warmupS} s of warm-up, counted by the receiver; xsw and its peers are run interleaved, each round starting one system later (xsw, B, peer; B, peer, xsw; …) so that no system always follows the same one. Before and after every window a cache line is bounced between CPU 0 and CPU 1 (one-way time, ns): < 60 ns is the *fast* placement, otherwise *slow*; a window whose two readings disagree is *changed*. Ratios xsw/peer compare only windows of the same placement, two ways: the median of xsw's windows over the median of the peer's, and the *paired* ratio — each xsw window over the peer window next to it in time (same placement, each window in one pair, closest first), reported as the median (min–max) of those pairs, so that both sides of a pair saw the same swing of the host. Target verdicts use the paired ratios: *met* when every pair reaches the target, *missed* when all of a placement's pairs fall short, *not settled* when the pairs' min–max straddles it. A window in which other processes used ≥ 10 % of a CPU is *noisy*: it is repeated (up to 3 tries) and left out of the summaries when a clean window exists.`);
  L.push('');
  L.push('**Topology.**');
  L.push('');
  L.push(r.topology);
  L.push('');
  L.push('## Throughput');
  L.push('');
  L.push('| figure | system | median (min–max) | windows (placement) | crossing ns | xsw/peer (same placement): medians | paired: median (min–max) |');
  L.push('|---|---|---|---|---|---|---|');
  for (const f of r.figures) {
    const label = `${f.title} [${f.unit}]`;
    L.push(`| ${label} | **xsw** | **${fmtSummary(seriesSummary(f, f.xsw))}** | ${placements(f.xsw)} | ${crossings(f.xsw)} | | |`);
    if (f.b) {
      const rs = f.xsw.note ? [] : ratios(f, f.xsw, f.b); // B/A: of = B, over A
      const ps = f.xsw.note || f.b.note ? [] : pairs(f, f.b, f.xsw);
      const rtext = rs.length ? `B/A ${fmtRatios(rs)}` : 'no common placement';
      L.push(`| ${label} | ${f.b.name} | ${f.b.note ?? fmtSummary(seriesSummary(f, f.b))} | ${placements(f.b)} | ${crossings(f.b)} | ${rtext} | ${ps.length ? `B/A ${fmtPairs(ps)}` : 'no pair'} |`);
    }
    for (const p of f.peers) {
      if (p.note) {
        L.push(`| ${label} | ${p.name} | ${p.note} | | | | |`);
        continue;
      }
      const rs = ratios(f, p);
      const rtext = rs.length ? fmtRatios(rs) : 'no common placement';
      const ps = f.xsw.note ? [] : pairs(f, f.xsw, p);
      L.push(`| ${label} | ${p.name} | ${fmtSummary(seriesSummary(f, p))} | ${placements(p)} | ${crossings(p)} | ${rtext} | ${ps.length ? fmtPairs(ps) : 'no pair'} |`);
    }
    if (f.xsw.note) L.push(`| ${label} | xsw | ${f.xsw.note} | | | | |`);
  }
  L.push('');
  L.push('Per placement (median of that placement\'s windows):');
  L.push('');
  L.push('| figure | system | fast | slow |');
  L.push('|---|---|---|---|');
  for (const f of r.figures) for (const s of [f.xsw, ...(f.b ? [f.b] : []), ...f.peers].filter((s) => !s.note)) {
    L.push(`| ${f.title} [${f.unit}] | ${s.name} | ${fmtSummary(seriesSummary(f, s, 'fast'))} | ${fmtSummary(seriesSummary(f, s, 'slow'))} |`);
  }
  const polls = pollRows(r.figures);
  if (polls.length) {
    L.push('');
    L.push('Where each side\'s time goes, median over the windows: **busy**, the share of its time spent in polls that found frames (the rest went to empty polls); then the share of its RX polls that found nothing, and frames per poll (a poll takes at most a burst of 32). The side near 100 % busy is the one that bounds the row; an empty poll is short, so a side can find 97 % of its polls empty and still be busy most of the time. Busy time is counted with the TSC around each poll, as testpmd\'s --record-core-cycles does (DPDK and the testpmd guests; testpmd counts the cycles from the RX call to the end of forwarding of each burst that brought frames), by the switch harness for xsw\'s loop (its guest thread per poll, xsw::Switch per loop of its data thread) and by xsw-backend\'s control socket in the same-guests rows (`show`: switch_cycles). Empty polls: testpmd\'s --record-burst-stats; the harness\'s guest thread; xsw::Switch counts loops and frames, not empty polls, so its share is "not counted" (at most 1 − (frames/poll)/32).');
    L.push('');
    L.push('| figure | system | switch: busy; empty polls, frames/poll | guest: busy; empty polls, frames/poll |');
    L.push('|---|---|---|---|');
    for (const x of polls) L.push(`| ${x.figure} | ${x.system} | ${x.switchSide} | ${x.guestSide} |`);
  }
  L.push('');
  L.push('## Latency, attach, memory');
  L.push('');
  L.push('| figure | xsw | peer |');
  L.push('|---|---|---|');
  const lx = latencySummary(r.latency.xsw);
  const lp = latencySummary(r.latency.peer);
  const lt = (s: typeof lx) => (s ? `median ${fmt(s.median, 1)} µs, p99 ${fmt(s.p99, 1)} µs (${s.n} round trips)` : 'n/a');
  L.push(`| round trip guest→guest→guest, 64 B: xsw-front devices (JS API, N-API call per burst) through xsw-backend | ${lx ? lt(lx) : 'n/a'} | kernel veth ping: ${lp ? lt(lp) : r.latency.note ?? 'n/a'} |`);
  const lc = latencySummary(r.latency.core);
  L.push(`| round trip guest→guest→guest, 64 B: data plane only (switch harness, one frame in flight) | ${lt(lc)} | – |`);
  const lw = latencySummary(r.latency.wakeup);
  if (lw) {
    const lost = (r.latency.wakeup ?? []).reduce((n, x) => n + x.lost, 0);
    const lf = latencySummary(r.latency.wakeupFloor);
    L.push(`| wake-up round trip, 64 B, --poll interrupt: a JS pinger → asleep back end → asleep echo guest (xsw-front macswap) → back end → pinger, 1 ms pause before each | ${lt(lw)}${lost ? `, ${lost} lost` : ''} | the floor of this host, the same three wake-ups with no xsw (a spinning pinger → process A asleep in ppoll → process B asleep in read → A → pinger, eventfds, same CPUs, 1 ms pause): ${lf ? lt(lf) : 'n/a'} |`);
  }
  const a = r.attach;
  L.push(`| attach, 8192 mbufs: start key → registered (ms) | ${a ? fmtSummary(summarize(a.attachMs), 1) : r.attachNote ?? 'n/a'} | – |`);
  L.push(`| attach, 8192 mbufs: xsw-front started → registered (ms) | ${a ? fmtSummary(summarize(a.startToAttachMs), 0) : 'n/a'} | – |`);
  const rss = summarize(r.rssPerGuestBytes.map((b) => b / 2 ** 20));
  L.push(`| back-end resident memory per guest after traffic (MiB) | ${fmtSummary(rss, 1)} | – |`);
  L.push('');
  L.push(`Memory anchors: one core copies 1500 B at ${fmt(r.memcpy.hot1500GBs, 1)} GB/s cache-hot and ${fmt(r.memcpy.pool1500GBs, 1)} GB/s across two 32 MiB pools (4 KiB stride, as mbufs sit); crossing time at start ${fmt(r.crossingStartNs, 0)} ns.`);
  L.push('');
  if (r.idle?.length) {
    L.push('## Idle cost');
    L.push('');
    L.push('The back end and two attached guests that send nothing (xsw-front rxonly, no stats), CPU time over the interval in % of one CPU:');
    L.push('');
    L.push('| poll mode | back end | two guests | total | interval (s) |');
    L.push('|---|---|---|---|---|');
    for (const x of r.idle) L.push(`| ${x.mode} | ${fmt(x.backendPct)} | ${fmt(x.guestsPct)} | ${fmt(x.backendPct + x.guestsPct)} | ${fmt(x.seconds, 1)} |`);
    L.push('');
  }
  L.push('## Targets');
  L.push('');
  for (const t of r.targets) L.push(`- ${t.unsettled ? '**not settled**' : t.met === undefined ? 'not measured' : t.met ? 'met' : '**missed**'}: ${t.what} — ${t.detail}`);
  if (r.notes.length) {
    L.push('');
    L.push('## Notes');
    L.push('');
    for (const n of r.notes) L.push(`- ${n}`);
  }
  L.push('');
  return L.join('\n');
}
