// The statistics the back end prints every --stats N seconds: DPDK vhost's
// print_stats table (with domid, MAC, VLAN and state added per device), or
// one JSON object per interval with --json. Pure formatting.
import type { NetworkCounters } from './networks';

/** One device's counters, as the switch reports them (native/switch.ts DeviceStats). */
export interface DeviceCounters {
  slot: number;
  domid: number;
  dev: number;
  mac: string;
  vlan: number;
  state: string;
  tx_total: number;
  tx_dropped: number;
  rx_total: number;
  rx_dropped: number;
  tx_bytes?: number;
  rx_bytes?: number;
  drops: Record<string, number>;
  /** The network dom0 (or --default-network) put the device in; null or absent: none (backend/networks.ts). */
  network?: number | null;
  /** "pmd" (a guest running xsw-front; absent means pmd), "netif" (a stock netfront guest) or "vhost-user". */
  kind?: string;
  /** netif only: the engine's counters (frames, slots, completed checksums, events). */
  netif?: Record<string, number>;
  /** A vhost-user device's socket. */
  path?: string;
  /** The data thread that serves it (--cores). */
  thread?: number;
}

export interface NicCounters { rx: number; tx: number; dropped: number; drops?: Record<string, number> }

/** One data thread's counters (native/switch.ts ThreadStats), with --cores only. */
export interface ThreadCounters {
  thread: number;
  cpu: number | null;
  devices: number;
  loops: number;
  sleeps: number;
  handed_out: number;
  handed_in: number;
  handoff_dropped: number;
  /** Its time in loops that found work, and in empty loops and sleeps (TSC units): its busy share since start. */
  processing_cycles?: number;
  idle_cycles?: number;
}

export interface StatsSnapshot {
  devices: DeviceCounters[];
  nic: NicCounters;
  /** Devices the control plane refused, by reason code (missing_key, bad_key, mac_taken, …). */
  refused?: Record<string, number>;
  /** Per network, when any device has one (backend/networks.ts). */
  networks?: NetworkCounters[];
  /** Per data thread, when there are several (--cores). */
  threads?: ThreadCounters[];
}

/** The table, as DPDK's vhost example printed it (without the screen clearing). */
export function formatTable(s: StatsSnapshot): string {
  const lines = ['', 'Device statistics ===================================='];
  for (const d of s.devices) {
    lines.push(
      '',
      `Statistics for device ${d.slot} ------------------------------`,
      d.kind === 'vhost-user'
        ? `vhost-user: ${d.path ?? ''}  MAC: ${d.mac}  VLAN: ${d.vlan}  State: ${d.state}`
        : `Domain: ${d.domid} device ${d.dev}  MAC: ${d.mac}  VLAN: ${d.vlan}  State: ${d.state}`,
      `TX total:            ${d.tx_total}`,
      `TX dropped:          ${d.tx_dropped}`,
      `TX successful:       ${d.tx_total - d.tx_dropped}`,
      `RX total:            ${d.rx_total}`,
      `RX dropped:          ${d.rx_dropped}`,
      `RX successful:       ${d.rx_total - d.rx_dropped}`,
    );
    const reasons = Object.entries(d.drops).filter(([, n]) => n > 0);
    if (reasons.length > 0) lines.push(`Drops:               ${reasons.map(([k, n]) => `${k}=${n}`).join(' ')}`);
  }
  for (const n of s.networks ?? []) {
    lines.push('', `Network ${n.network}: ${n.devices} devices  TX ${n.tx_total} (dropped ${n.tx_dropped})  RX ${n.rx_total} (dropped ${n.rx_dropped})  uplink rx ${n.nic_rx} tx ${n.nic_tx}`);
  }
  lines.push('', `NIC: rx ${s.nic.rx}  tx ${s.nic.tx}  dropped ${s.nic.dropped}`);
  for (const t of s.threads ?? []) {
    const cycles = (t.processing_cycles ?? 0) + (t.idle_cycles ?? 0);
    const busy = cycles > 0 ? `  busy ${((100 * (t.processing_cycles ?? 0)) / cycles).toFixed(1)} %` : '';
    lines.push(`Thread ${t.thread}${t.cpu === null ? '' : ` (CPU ${t.cpu})`}: ${t.devices} devices  loops ${t.loops}  handed out ${t.handed_out}  in ${t.handed_in}  handoff dropped ${t.handoff_dropped}${busy}`);
  }
  const refused = Object.entries(s.refused ?? {});
  if (refused.length > 0) lines.push(`Refused devices: ${refused.map(([k, n]) => `${k}=${n}`).join(' ')}`);
  lines.push(
    '======================================================',
    '',
  );
  return lines.join('\n');
}

/** One line of JSON: {time, devices:[…], nic:{rx, tx, dropped}} (+ refused:{code:n} when given). */
export function formatJson(s: StatsSnapshot, time: Date): string {
  return JSON.stringify({
    time: time.toISOString(),
    devices: s.devices.map((d) => ({
      domid: d.domid,
      dev: d.dev,
      mac: d.mac,
      vlan: d.vlan,
      ...(d.network !== undefined && d.network !== null ? { network: d.network } : {}),
      state: d.state,
      tx_total: d.tx_total,
      tx_dropped: d.tx_dropped,
      rx_total: d.rx_total,
      rx_dropped: d.rx_dropped,
      drops: { ...d.drops },
      kind: d.kind ?? 'pmd',
      ...(d.netif ? { netif: { ...d.netif } } : {}),
      ...(d.path !== undefined ? { path: d.path } : {}),
      ...(s.threads && d.thread !== undefined ? { thread: d.thread } : {}),
    })),
    nic: { rx: s.nic.rx, tx: s.nic.tx, dropped: s.nic.dropped },
    ...(s.networks ? { networks: s.networks } : {}),
    ...(s.refused ? { refused: { ...s.refused } } : {}),
    ...(s.threads ? { threads: s.threads.map((t) => ({ ...t })) } : {}),
  });
}
