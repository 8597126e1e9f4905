// Stats output of xsw-front: one human line per device, or one JSON object
// per interval (machines), which parseStatsJson reads back (the demo and the
// bench watch xsw-front's counters this way); logs go to stderr, stats to stdout.
import type { DeviceStats } from '../native/front';

export interface DeviceReport {
  dev: number;
  mac: string;
  stats: DeviceStats;
}

/** `dev 0 00:00:00:00:00:11  RX pkts … bytes … drops …  TX pkts … bytes … drops …` */
export function statsLine(r: DeviceReport): string {
  const s = r.stats;
  let line =
    `dev ${r.dev} ${r.mac}  RX pkts ${s.rx_packets} bytes ${s.rx_bytes} drops ${s.rx_dropped}` +
    `  TX pkts ${s.tx_packets} bytes ${s.tx_bytes} drops ${s.tx_dropped}`;
  if (s.rx_bad > 0 || s.rx_out_of_order > 0) line += `  bad ${s.rx_bad} out-of-order ${s.rx_out_of_order}`;
  if (s.rx_nombuf > 0) line += `  nombuf ${s.rx_nombuf}`;
  return line;
}

export function statsJson(reports: DeviceReport[], time = new Date(), final = false): string {
  return JSON.stringify({
    time: time.toISOString(),
    ...(final ? { final: true } : {}),
    devices: reports.map((r) => ({ dev: r.dev, mac: r.mac, ...r.stats })),
  });
}

const COUNTERS: (keyof DeviceStats)[] = [
  'rx_packets', 'rx_bytes', 'rx_dropped', 'tx_packets', 'tx_bytes', 'tx_dropped', 'rx_nombuf', 'rx_bad', 'rx_out_of_order', 'tx_done',
];

/** One statsJson line read back: when it was printed (ms since the epoch) and each device's counters (0 where absent). */
export interface StatsSample {
  time: number;
  final: boolean;
  devices: (DeviceStats & { dev: number; mac: string })[];
}

/** Reads a statsJson line; undefined when the line is not one. */
export function parseStatsJson(line: string): StatsSample | undefined {
  if (!line.startsWith('{')) return undefined;
  let o: { time?: unknown; final?: unknown; devices?: unknown };
  try {
    o = JSON.parse(line) as typeof o;
  } catch {
    return undefined;
  }
  if (typeof o.time !== 'string' || !Array.isArray(o.devices)) return undefined;
  const devices = (o.devices as Record<string, unknown>[]).map((d) => {
    const n = (k: string): number => (typeof d[k] === 'number' ? (d[k] as number) : 0);
    const stats = Object.fromEntries(COUNTERS.map((k) => [k, n(k)])) as unknown as DeviceStats;
    return { dev: n('dev'), mac: typeof d.mac === 'string' ? d.mac : '', ...stats };
  });
  return { time: Date.parse(o.time), final: o.final === true, devices };
}
