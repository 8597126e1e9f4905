// The control socket's built-in commands (docs/operations.md lists them with
// their replies) and the Xen PMD device kind ("pmd"). Other device kinds
// (vhost-user, netif) register their own DeviceKind with
// ControlServer.addDeviceKind, and their own commands (adding and removing
// vhost-user ports, say) with ControlServer.command, next to these.
import type { Logger } from 'pino';
import type { Switch } from '../native/switch';
import { Captures, CapturePort } from './capture';
import { ControlError, ControlServer, DeviceInfo, TAKEN } from './control';
import type { DeviceRegistry } from './devices';
import type { Discovery } from './discovery';
import type { BackendOptions, LogLevel } from './options';
import { formatJson, StatsSnapshot } from './stats';

const LOG_LEVELS: LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export interface ControlContext {
  opts: BackendOptions;
  platform: string;
  started: Date;
  log: Logger;
  sw: Switch;
  registry: DeviceRegistry;
  discovery: Discovery;
  captures: Captures;
  /** The --stats interval now (s, 0 = off), and how to change it. */
  stats: { interval(): number; set(seconds: number): void };
  /** Every device kind's counters, as --stats prints them. */
  snapshot(): StatsSnapshot;
  metrics?: string;
}

/** The "pmd" kind: Xen PMD devices (xsw-front guests), attached or in quarantine. */
export function pmdDevices(ctx: Pick<ControlContext, 'registry' | 'discovery'>): DeviceInfo[] {
  const quarantined = new Map(ctx.discovery.quarantineList().map((q) => [`${q.domid}:${q.dev}`, q]));
  return ctx.registry.snapshot().devices.map((c) => {
    const id = `${c.domid}:${c.dev}`;
    const d = ctx.registry.find(c.domid, c.dev);
    const live = d !== undefined && d.slot === c.slot && c.state !== 'quarantined';
    const q = quarantined.get(id);
    return {
      kind: 'pmd',
      id,
      domid: c.domid,
      device: c.dev,
      ...(live ? { slot: c.slot } : {}),
      mac: c.mac,
      vlan: c.vlan,
      state: c.state,
      rx_ring: live ? d.mapped.rxNum : null,
      tx_ring: live ? d.mapped.txNum : null,
      pages: live ? d.mapped.pages : 0,
      guest_pages: ctx.registry.pagesOf(c.domid),
      tx_total: c.tx_total,
      tx_dropped: c.tx_dropped,
      rx_total: c.rx_total,
      rx_dropped: c.rx_dropped,
      tx_bytes: c.tx_bytes ?? 0,
      rx_bytes: c.rx_bytes ?? 0,
      drops: { ...c.drops },
      last_violation: q?.reason ?? null,
      strikes: q?.strikes ?? 0,
    };
  });
}

function str(req: Record<string, unknown>, key: string): string {
  const v = req[key];
  if (typeof v !== 'string' || v === '' || v.length > 256) throw new ControlError('EINVAL', `"${key}" must be a string (up to 256 characters).`);
  return v;
}

function int(req: Record<string, unknown>, key: string, min: number, max: number, dflt?: number): number {
  const v = req[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ControlError('EINVAL', `"${key}" must be a whole number from ${min} to ${max}.`);
  }
  return v;
}

/** A device by its `domid:device` (or another kind's id) or its MAC; `nic` is not a device. */
export function findDevice(server: ControlServer, name: string): DeviceInfo {
  const lower = name.toLowerCase();
  const all = server.devices();
  const hit = MAC_RE.test(lower) ? all.filter((d) => d.mac === lower) : all.filter((d) => d.id === name);
  const attached = hit.find((d) => d.slot !== undefined) ?? hit[0];
  if (!attached) {
    throw new ControlError('ENOENT', `No device ${name}: give a MAC or domid:device as \`xsw-ctl devices\` lists them, or nic.`);
  }
  return attached;
}

export function registerCommands(server: ControlServer, ctx: ControlContext): void {
  server.addDeviceKind({ kind: 'pmd', list: () => pmdDevices(ctx) });
  // Other device kinds register here (see the header).

  const nic = (): Record<string, unknown> => {
    const s = ctx.sw.stats().nic;
    return { port: ctx.opts.port ?? null, rx: s.rx, tx: s.tx, dropped: s.dropped, drops: { ...s.drops } };
  };

  server
    .command('show', () => {
      const devices = server.devices();
      return {
        pid: process.pid,
        platform: ctx.platform,
        started: ctx.started.toISOString(),
        uptime_s: Math.round((Date.now() - ctx.started.getTime()) / 1000),
        port: ctx.opts.port ?? null,
        vm2vm: ctx.opts.vm2vm,
        mtu: ctx.opts.mtu,
        devices: devices.filter((d) => d.slot !== undefined).length,
        quarantined: ctx.discovery.quarantineList().length,
        by_kind: Object.fromEntries([...new Set(devices.map((d) => d.kind))].map((k) => [k, devices.filter((d) => d.kind === k).length])),
        refused: { ...ctx.registry.refused },
        stats_interval: ctx.stats.interval(),
        log_level: ctx.log.level,
        control_socket: server.path,
        metrics: ctx.metrics ?? null,
        switch_loops: ctx.sw.loops(),
        // The data threads' time in loops that found work and in empty loops and sleeps (TSC units): their busy share.
        switch_cycles: ctx.sw.cycles(),
        capture: ctx.captures.totals(),
        nic: nic(),
      };
    })
    .command('devices', () => server.devices())
    .command('macs', () =>
      server
        .devices()
        .filter((d) => d.slot !== undefined)
        .map((d) => ({ mac: d.mac, vlan: d.vlan, kind: d.kind, id: d.id, slot: d.slot, state: d.state })),
    )
    .command('nic', () => nic())
    .command('stats', () => JSON.parse(formatJson(ctx.snapshot(), new Date())) as unknown)
    .command('quarantine', () =>
      ctx.discovery.quarantineList().map((q) => ({
        id: `${q.domid}:${q.dev}`,
        domid: q.domid,
        device: q.dev,
        strikes: q.strikes,
        reason: q.reason ?? null,
        since: new Date(q.at).toISOString(),
        // What the sticky quarantine waits for before the device may attach by itself.
        waiting_for: !q.unpublished ? 'unpublish' : q.until > Date.now() ? 'backoff' : 'republish',
      })),
    )
    .command('quarantine-release', (req) => {
      const name = str(req, 'dev');
      const m = /^(\d{1,5}):(\d{1,10})$/.exec(name) ?? undefined;
      const q = m
        ? ctx.discovery.quarantineList().find((e) => e.domid === Number(m[1]) && e.dev === Number(m[2]))
        : ctx.discovery.quarantineList().find((e) => pmdDevices(ctx).some((d) => d.domid === e.domid && d.device === e.dev && d.mac === name.toLowerCase()));
      if (!q || !ctx.discovery.release(q.domid, q.dev)) {
        throw new ControlError('ENOENT', `${name} is not in quarantine: \`xsw-ctl quarantine\` lists the devices that are.`);
      }
      return { released: `${q.domid}:${q.dev}` };
    })
    .command('set-stats', (req) => {
      const seconds = int(req, 'seconds', 0, 86400);
      ctx.stats.set(seconds);
      ctx.log.info(`statistics interval set to ${seconds} s by the control socket`);
      return { stats_interval: seconds };
    })
    .command('set-log-level', (req) => {
      const level = str(req, 'level') as LogLevel;
      if (!LOG_LEVELS.includes(level)) throw new ControlError('EINVAL', `"level" must be one of ${LOG_LEVELS.join(', ')}.`);
      ctx.log.level = level;
      ctx.log.info(`log level set to ${level} by the control socket`);
      return { log_level: level };
    })
    .command('config', () => ({
      options: { ...ctx.opts, stats: ctx.stats.interval(), logLevel: ctx.log.level },
      platform: ctx.platform,
      switch: { vm2vm: ctx.opts.vm2vm, poll: ctx.opts.poll, port: ctx.opts.port ?? null, mtu: ctx.opts.mtu, maxDevices: ctx.opts.maxDevices, cores: ctx.opts.cores ?? null },
      control_socket: server.path,
      metrics: ctx.metrics ?? null,
    }))
    .command('capture', (req, conn) => {
      const raw = req.dev;
      const names = Array.isArray(raw) ? raw : [raw];
      if (names.length === 0 || names.length > 64 || !names.every((n) => typeof n === 'string' && n !== '' && n.length <= 64)) {
        throw new ControlError('EINVAL', '"dev" must name 1 to 64 devices (MAC, domid:device or nic).');
      }
      const snaplen = int(req, 'snaplen', 14, 262144, 262144);
      const count = int(req, 'count', 0, 2 ** 40, 0);
      const ports: CapturePort[] = (names as string[]).map((n) => {
        if (n === 'nic') {
          if (!ctx.opts.port) throw new ControlError('ENOENT', 'This back end has no NIC to capture: it was started without -p.');
          return { port: 'nic', name: 'nic', description: `NIC ${ctx.opts.port}` };
        }
        const d = findDevice(server, n);
        if (d.slot === undefined) throw new ControlError('ENODEV', `Device ${d.id} is ${d.state}, not attached: capture it once it is attached again.`);
        return { port: d.slot, name: d.id, description: `${d.kind} ${d.id} ${d.mac} VLAN ${d.vlan}` };
      });
      if (new Set(ports.map((p) => p.port)).size !== ports.length) throw new ControlError('EINVAL', 'A device is named twice: name each once.');
      const reply = `${JSON.stringify({ ok: true, result: { interfaces: ports.map((p) => p.name), snaplen, count } })}\n`;
      try {
        ctx.captures.stream(ports, snaplen, count, conn.socket, reply);
      } catch (err) {
        const e = err as { code?: string; message: string };
        const text = e.message.charAt(0).toUpperCase() + e.message.slice(1);
        throw new ControlError(e.code ?? 'EIO', `${text.replace(/\.$/, '')}.`);
      }
      return TAKEN;
    });
}
