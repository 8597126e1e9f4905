// xsw-ctl's human output: aligned tables of what the control socket
// returns. Pure formatting (the --json forms print the replies as they are).

import type { DeviceInfo } from '../backend/control';

/** A device as the control socket lists it (backend/control.ts), with the fields the tables read. */
export interface CtlDevice extends DeviceInfo {
  rx_ring?: number | null;
  tx_ring?: number | null;
  pages?: number;
  tx_total?: number;
  tx_dropped?: number;
  rx_total?: number;
  rx_dropped?: number;
  drops?: Record<string, number>;
  last_violation?: string | null;
}

/** Columns padded to their widest cell; numbers right-aligned. */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const width = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const numeric = head.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  return `${cells
    .map((r) => r.map((c, i) => (numeric[i] ? c.padStart(width[i]) : c.padEnd(width[i]))).join('  ').trimEnd())
    .join('\n')}\n`;
}

const dropsText = (d: Record<string, number> | undefined): string =>
  Object.entries(d ?? {})
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k}=${n}`)
    .join(' ') || '-';

export function devicesTable(devices: CtlDevice[]): string {
  if (devices.length === 0) return 'No devices attached.\n';
  return table(
    ['KIND', 'DEV', 'MAC', 'VLAN', 'STATE', 'SLOT', 'RX/TX RING', 'PAGES', 'TX', 'TX DROP', 'RX', 'RX DROP', 'DROPS', 'LAST VIOLATION'],
    devices.map((d) => [
      d.kind, d.id, d.mac, d.vlan, d.state, d.slot ?? '-',
      d.rx_ring == null ? '-' : `${d.rx_ring}/${d.tx_ring}`,
      d.pages ?? 0, d.tx_total ?? 0, d.tx_dropped ?? 0, d.rx_total ?? 0, d.rx_dropped ?? 0,
      dropsText(d.drops), d.last_violation ?? '-',
    ]),
  );
}

export function macsTable(macs: { mac: string; vlan: number; kind: string; id: string; slot: number; state: string }[]): string {
  if (macs.length === 0) return 'The MAC table is empty: no device is attached.\n';
  return table(['MAC', 'VLAN', 'KIND', 'DEV', 'SLOT', 'STATE'], macs.map((m) => [m.mac, m.vlan, m.kind, m.id, m.slot, m.state]));
}

export function quarantineTable(q: { id: string; strikes: number; reason: string | null; since: string; waiting_for: string }[]): string {
  if (q.length === 0) return 'No device is in quarantine.\n';
  return table(['DEV', 'STRIKES', 'REASON', 'SINCE', 'WAITING FOR'], q.map((e) => [e.id, e.strikes, e.reason ?? '-', e.since, e.waiting_for]));
}

export function showText(s: Record<string, unknown>): string {
  const nic = s.nic as { port: string | null; rx: number; tx: number; dropped: number; drops: Record<string, number> };
  const cap = s.capture as { active: number; captured: number; dropped: number };
  const cyc = (s.switch_cycles ?? { processing: 0, idle: 0 }) as { processing: number; idle: number };
  const all = cyc.processing + cyc.idle;
  const busy = all > 0 ? `, busy ${((100 * cyc.processing) / all).toFixed(1)} % of the time` : '';
  const lines: [string, string][] = [
    ['back end', `pid ${String(s.pid)}, ${String(s.platform)} platform, up ${String(s.uptime_s)} s`],
    ['devices', `${String(s.devices)} attached, ${String(s.quarantined)} in quarantine`],
    ['NIC', nic.port === null ? 'none (vm2vm only)' : `${nic.port}: rx ${nic.rx}  tx ${nic.tx}  dropped ${nic.dropped}  ${dropsText(nic.drops)}`],
    ['switching', `vm2vm ${s.vm2vm ? 'on' : 'off'}, mtu ${String(s.mtu)}, ${String(s.switch_loops)} poll loops${busy}`],
    ['refused', dropsText(s.refused as Record<string, number>)],
    ['capture', `${cap.active} running, ${cap.captured} frames captured, ${cap.dropped} dropped`],
    ['statistics', s.stats_interval ? `every ${String(s.stats_interval)} s` : 'off'],
    ['log level', String(s.log_level)],
    ['control socket', String(s.control_socket)],
    ['metrics', s.metrics ? `http://${String(s.metrics)}/metrics` : 'off'],
  ];
  const w = Math.max(...lines.map(([k]) => k.length));
  return `${lines.map(([k, v]) => `${`${k}:`.padEnd(w + 1)} ${v}`).join('\n')}\n`;
}

export function statsTable(s: { devices: (CtlDevice & { domid: number; dev: number })[]; nic: { rx: number; tx: number; dropped: number } }): string {
  const rows = s.devices.map((d) => [`${d.domid}:${d.dev}`, d.mac, d.vlan, d.state, d.tx_total ?? 0, d.tx_dropped ?? 0, d.rx_total ?? 0, d.rx_dropped ?? 0, dropsText(d.drops)]);
  const body = rows.length === 0 ? 'No devices attached.\n' : table(['DEV', 'MAC', 'VLAN', 'STATE', 'TX', 'TX DROP', 'RX', 'RX DROP', 'DROPS'], rows);
  return `${body}NIC: rx ${s.nic.rx}  tx ${s.nic.tx}  dropped ${s.nic.dropped}\n`;
}

/** One `top` screen: per-device rates since the previous sample (frames/s; '-' before a device's second sample). */
export function topTable(prev: Map<string, CtlDevice>, now: CtlDevice[], seconds: number): string {
  const rate = (a: number | undefined, b: number | undefined): number => Math.max(0, Math.round(((a ?? 0) - (b ?? 0)) / seconds));
  const drops = (d: CtlDevice | undefined): number => Object.values(d?.drops ?? {}).reduce((x, y) => x + y, 0);
  const rows = now.map((d) => {
    const p = prev.get(`${d.kind}/${d.id}`);
    if (!p) return [d.kind, d.id, d.mac, d.state, '-', '-', '-', d.tx_total ?? 0, d.rx_total ?? 0];
    return [d.kind, d.id, d.mac, d.state, rate(d.tx_total, p.tx_total), rate(d.rx_total, p.rx_total),
      Math.max(0, Math.round((drops(d) - drops(p)) / seconds)), d.tx_total ?? 0, d.rx_total ?? 0];
  });
  if (rows.length === 0) return 'No devices attached.\n';
  return table(['KIND', 'DEV', 'MAC', 'STATE', 'TX/S', 'RX/S', 'DROPS/S', 'TX', 'RX'], rows);
}
