// Stats output of xsw-front: one human line per device, or one JSON object
// per interval (machines); logs go to stderr, stats to stdout.
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
