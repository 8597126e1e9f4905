// `xsw-backend --metrics [ADDR:]PORT`: Prometheus text exposition over HTTP
// (GET /metrics), built with prom-client. Every value is read at scrape time
// from the same counters `--stats --json` and `xsw-ctl` print (the data
// plane's relaxed loads), so a scrape costs the control thread a little and
// the data plane nothing. docs/operations.md lists the metrics.
import http from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { DeviceInfo } from './control';

export interface MetricsSource {
  devices(): DeviceInfo[];
  nic(): { present: boolean; rx: number; tx: number; dropped: number; drops: Record<string, number> };
  loops(): number;
  /** The data threads' time in loops that found work and in empty loops and sleeps (TSC units; absent in fakes). */
  cycles?(): { processing: number; idle: number };
  /** Per data thread (--cores): loops and frames handed between threads. */
  threads?(): { thread: number; loops: number; handed_out: number; handed_in: number; handoff_dropped: number }[];
  events(): { attached: number; detached: Record<string, number>; quarantined: number; refused: Record<string, number> };
  capture(): { captured: number; dropped: number };
}

const DEVICE_LABELS = ['kind', 'domid', 'device', 'mac'] as const;
type DeviceLabel = (typeof DEVICE_LABELS)[number];

function labelsOf(d: DeviceInfo): Record<DeviceLabel, string> {
  return {
    kind: d.kind,
    domid: d.domid === undefined ? '' : String(d.domid),
    device: d.device === undefined ? d.id : String(d.device),
    mac: d.mac,
  };
}

/** The registry of every xsw metric plus prom-client's default process metrics. */
export function buildRegistry(src: MetricsSource): Registry {
  const register = new Registry();
  collectDefaultMetrics({ register, prefix: 'xsw_backend_' });

  const perDevice = (name: string, help: string, field: string): void => {
    new Counter({
      name,
      help,
      labelNames: DEVICE_LABELS,
      registers: [register],
      collect() {
        this.reset();
        for (const d of src.devices()) this.inc(labelsOf(d), Number(d[field] ?? 0));
      },
    });
  };
  perDevice('xsw_device_tx_frames_total', 'Frames the device sent to the switch (tx_total)', 'tx_total');
  perDevice('xsw_device_tx_dropped_total', 'Frames the device sent that were delivered nowhere (tx_dropped)', 'tx_dropped');
  perDevice('xsw_device_rx_frames_total', 'Frames offered to the device (rx_total)', 'rx_total');
  perDevice('xsw_device_rx_dropped_total', 'Frames offered to the device that could not be placed (rx_dropped)', 'rx_dropped');
  perDevice('xsw_device_tx_bytes_total', 'Bytes the device sent that were delivered', 'tx_bytes');
  perDevice('xsw_device_rx_bytes_total', 'Bytes delivered to the device', 'rx_bytes');

  new Counter({
    name: 'xsw_device_drops_total',
    help: 'Frames dropped or faults found on the device, by reason (the drops of --stats --json)',
    labelNames: [...DEVICE_LABELS, 'reason'],
    registers: [register],
    collect() {
      this.reset();
      for (const d of src.devices()) {
        for (const [reason, n] of Object.entries((d.drops ?? {}) as Record<string, number>)) this.inc({ ...labelsOf(d), reason }, n);
      }
    },
  });
  new Gauge({
    name: 'xsw_device_state',
    help: 'The device is in this state (1): active, quarantined, dead or removed',
    labelNames: [...DEVICE_LABELS, 'state'],
    registers: [register],
    collect() {
      this.reset();
      for (const d of src.devices()) this.set({ ...labelsOf(d), state: d.state }, 1);
    },
  });

  /** A counter whose value is read from the source at each scrape. */
  const readCounter = (name: string, help: string, read: () => number): void => {
    new Counter({
      name,
      help,
      registers: [register],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  };
  const nicCounter = (name: string, help: string, pick: (n: ReturnType<MetricsSource['nic']>) => number): void => readCounter(name, help, () => pick(src.nic()));
  nicCounter('xsw_nic_rx_frames_total', 'Frames received from the NIC', (n) => n.rx);
  nicCounter('xsw_nic_tx_frames_total', 'Frames sent to the NIC', (n) => n.tx);
  nicCounter('xsw_nic_dropped_total', 'Frames from the NIC dropped, and frames for it that it could not take', (n) => n.dropped);
  new Counter({
    name: 'xsw_nic_drops_total',
    help: 'NIC-side drops by reason',
    labelNames: ['reason'],
    registers: [register],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(src.nic().drops)) this.inc({ reason }, n);
    },
  });
  new Gauge({
    name: 'xsw_nic_present',
    help: '1 when the back end has a NIC (-p)',
    registers: [register],
    collect() {
      this.set(src.nic().present ? 1 : 0);
    },
  });
  readCounter('xsw_switch_loops_total', "Poll loops the data plane's thread has run", () => src.loops());
  if (src.cycles) {
    const cycles = src.cycles.bind(src);
    new Counter({
      name: 'xsw_switch_cycles_total',
      help: 'Time of the data threads in TSC cycles: kind="processing" in loops that found work, kind="idle" in empty loops and sleeps (busy share = processing / both)',
      labelNames: ['kind'],
      registers: [register],
      collect() {
        this.reset();
        const c = cycles();
        this.inc({ kind: 'processing' }, c.processing);
        this.inc({ kind: 'idle' }, c.idle);
      },
    });
  }
  const threadCounter = (name: string, help: string, pick: (t: NonNullable<ReturnType<NonNullable<MetricsSource['threads']>>>[number]) => number): void => {
    new Counter({
      name,
      help,
      labelNames: ['thread'],
      registers: [register],
      collect() {
        this.reset();
        for (const t of src.threads?.() ?? []) this.inc({ thread: String(t.thread) }, pick(t));
      },
    });
  };
  threadCounter('xsw_thread_loops_total', 'Poll loops each data thread has run (--cores)', (t) => t.loops);
  threadCounter('xsw_thread_handed_out_total', 'Frames a data thread handed to another thread to copy (--cores)', (t) => t.handed_out);
  threadCounter('xsw_thread_handed_in_total', 'Frames a data thread copied for another thread (--cores)', (t) => t.handed_in);
  threadCounter('xsw_thread_handoff_dropped_total', 'Handoffs dropped unread because their device had gone (--cores)', (t) => t.handoff_dropped);

  const events = (name: string, help: string, pick: (e: ReturnType<MetricsSource['events']>) => number): void => readCounter(name, help, () => pick(src.events()));
  events('xsw_device_attaches_total', 'Devices attached', (e) => e.attached);
  events('xsw_device_quarantines_total', 'Devices quarantined for a ring violation', (e) => e.quarantined);
  new Counter({
    name: 'xsw_device_detaches_total',
    help: 'Devices detached, by why (dead, quarantine, released, stopped, replaced, evicted, shutdown)',
    labelNames: ['why'],
    registers: [register],
    collect() {
      this.reset();
      for (const [why, n] of Object.entries(src.events().detached)) this.inc({ why }, n);
    },
  });
  new Counter({
    name: 'xsw_device_refusals_total',
    help: 'Devices the control plane refused to attach, by reason',
    labelNames: ['reason'],
    registers: [register],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(src.events().refused)) this.inc({ reason }, n);
    },
  });
  events('xsw_capture_frames_total', 'Frames copied into live-capture rings', () => src.capture().captured);
  events('xsw_capture_dropped_total', 'Frames a live capture had no room for (switching went on)', () => src.capture().dropped);
  return register;
}

/** Serves GET /metrics on host:port; resolves once listening (rejects with the listen error). */
export async function serveMetrics(register: Registry, host: string, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('xsw-backend serves GET /metrics\n');
      return;
    }
    register.metrics().then(
      (text) => res.writeHead(200, { 'content-type': register.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
