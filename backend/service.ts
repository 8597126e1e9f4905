// xsw-backend's main: open the grant device, XenStore and the switch, run
// discovery, print stats, and shut down cleanly on SIGINT/SIGTERM. Every
// start-up failure becomes a StartupError: one sentence naming the thing and
// the fix, printed by cli.ts with a non-zero exit.
//
// Losing XenStore later is not a reason to drop every guest: attached devices
// keep switching while the control plane reconnects (one log line), for up
// to --xenstore-retry seconds; once back, discovery watches again and
// reconciles. Only when the bound passes does the back end detach everything
// and exit 1, with one sentence.
import fs from 'node:fs';
import pino, { Logger } from 'pino';
import { Grants } from '../native/grants';
import { Switch } from '../native/switch';
import { vringNative } from '../native/vring';
import { defaultXenStorePath, XenStoreClient } from '../xenstore/client';
import { DeviceRegistry } from './devices';
import { Discovery } from './discovery';
import { NetifBackend } from './netif';
import { lockFileFor, takeInstanceLock } from './instance-lock';
import type { BackendOptions } from './options';
import type { GrefListDecoder } from './dependencies';
import { formatJson, formatTable, StatsSnapshot } from './stats';
import { Captures } from './capture';
import { ControlServer, defaultControlSocket, DeviceInfo } from './control';
import { registerCommands } from './control-commands';
import { buildRegistry, serveMetrics } from './metrics';
import type http from 'node:http';
import { VhostPorts } from './vhost';
import { registerVhostCommands } from './vhost-control';

export class StartupError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'StartupError';
  }
}

export function makeLogger(level: BackendOptions['logLevel']): Logger {
  return pino({ level, base: { component: 'xsw-backend' } }, pino.destination({ fd: 2, sync: true }));
}

/** The native gref-list decoder (one copy of each item out of the shared pages). */
export const nativeDecode: GrefListDecoder = (buffer, maxEntries) => {
  const r = vringNative().decodeGrefList(Buffer.from(buffer), maxEntries);
  return r.ok ? { refs: Array.from(r.grefs) } : { reason: r.reason ?? 'the gref list is malformed' };
};

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err)).replace(/\.$/, '');

export interface RunningBackend {
  /** Detaches every device, stops the switch, closes everything. Idempotent. */
  shutdown(): Promise<void>;
  /** Resolves when the back end has stopped (shutdown, or XenStore stayed away past --xenstore-retry). */
  done: Promise<void>;
}

/** First pause between reconnection attempts, and the longest. */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 2000;

/** Starts the back end; throws StartupError when something it needs is missing. */
export async function startBackend(opts: BackendOptions, log: Logger): Promise<RunningBackend> {
  if (opts.platform === 'xen' && !fs.existsSync('/dev/xen/gntdev')) {
    throw new StartupError('/dev/xen/gntdev is absent: run xsw-backend in a Xen dom0 with the xen_gntdev module loaded (modprobe xen_gntdev), or use --platform sim.');
  }
  let grants: Grants;
  try {
    grants = Grants.open({ platform: opts.platform, domid: 0 });
  } catch (err) {
    throw new StartupError(`Cannot open the grant device for --platform ${opts.platform}: ${errText(err)}.`);
  }
  log.info({ platform: grants.platform }, `grant platform: ${grants.platform}${opts.platform === 'auto' ? ' (auto-detected)' : ''}`);

  const lockFile = lockFileFor(grants.platform);
  const lock = await takeInstanceLock(lockFile).catch((err: unknown) => {
    grants.close();
    throw new StartupError(`Cannot take the back end's lock ${lockFile} (${errText(err)}): run xsw-backend as root, or fix that file's directory.`);
  });
  if (!('release' in lock)) {
    grants.close();
    const who = lock.holder === undefined ? 'Another xsw-backend' : `Another xsw-backend (pid ${lock.holder})`;
    throw new StartupError(`${who} is already running on this ${grants.platform} platform and holds ${lock.file}: stop it first, or wait for it to exit.`);
  }

  const where = defaultXenStorePath();
  /** The current XenStore connection (replaced when it is lost and comes back). */
  let store: XenStoreClient;
  try {
    store = await XenStoreClient.connect({ path: where });
  } catch (err) {
    grants.close();
    lock.release();
    // The transport's message already names the socket and the fix.
    const text = errText(err);
    throw new StartupError(`${text.charAt(0).toUpperCase()}${text.slice(1)}.`);
  }
  // Proves dom0's privilege. ENOENT is fine: no domain yet, the watch will see the first.
  const listErr = await store.directory('/local/domain').then(() => undefined, (err: unknown) => err as { code?: string });
  if (listErr && listErr.code !== 'ENOENT') {
    store.close();
    grants.close();
    lock.release();
    if (listErr.code === 'EACCES') {
      throw new StartupError('XenStore refused to list /local/domain (EACCES): xsw-backend must run in dom0 (the privileged domain).');
    }
    throw new StartupError(`Cannot list /local/domain in XenStore at ${where} (${listErr.code ?? errText(listErr)}): check that xenstored is running.`);
  }

  let sw: Switch;
  try {
    sw = new Switch({
      vm2vm: opts.vm2vm, poll: opts.poll, port: opts.port, mtu: opts.mtu, maxDevices: opts.maxDevices, cores: opts.cores,
      events: { platform: grants.platform },
    });
  } catch (err) {
    store.close();
    grants.close();
    lock.release();
    const what = opts.port && !errText(err).includes('--cores') ? `the port ${opts.port}` : 'the switch';
    throw new StartupError(`Cannot open ${what}: ${errText(err)}.`);
  }
  const wakeups = sw.wakeups();
  if (wakeups.error) log.warn(`cannot open the event channels (${wakeups.error}): every device is polled, the data thread sleeps at most 500 µs when idle`);
  log.info(`poll mode ${opts.poll}${wakeups.events ? `, guests notify through ${wakeups.events} event channels` : ''}`);
  if (!opts.port) log.info('no -p/--port given: switching between guests only (vm2vm), no NIC');
  else log.info({ port: opts.port }, `NIC port ${opts.port}`);
  log.info(`vm2vm switching ${opts.vm2vm ? 'on' : 'off'}`);
  if (opts.cores) log.info(`${opts.cores.length} data threads, pinned to CPUs ${opts.cores.join(',')} (--cores)`);

  let netif: NetifBackend | undefined;
  let vhost: VhostPorts | undefined;
  const registry = new DeviceRegistry({
    grants, decode: nativeDecode, dataPlane: sw, maxPagesPerGuest: opts.maxPagesPerGuest, maxDevices: opts.maxDevices, maxPages: opts.maxPages,
    networks: { nativeVlan: opts.nativeVlan, defaultNetwork: opts.defaultNetwork },
    reservedSlots: () => netif?.slots() ?? [],
    slotTaken: (slot) => vhost?.slots().has(slot) ?? false,
  });
  if (opts.port && opts.nativeVlan !== undefined) log.info(`the uplink carries network ${opts.nativeVlan} untagged (--native-vlan), every other network tagged`);
  if (opts.defaultNetwork !== undefined) log.info(`devices dom0 assigned no network join network ${opts.defaultNetwork} (--default-network)`);
  const discovery = new Discovery(store, registry, sw, log, { maxDevicesPerGuest: opts.maxDevicesPerGuest, macPolicy: opts.macPolicy });

  if (opts.netif) {
    netif = new NetifBackend(store, sw, log, {
      platform: grants.platform, maxDevices: opts.maxDevices, busy: opts.poll === 'busy',
      slotsInUse: () => registry.devices().map((d) => d.slot),
    });
  }

  let stopped = false;
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((r) => (resolveDone = r));
  let statsTimer: NodeJS.Timeout | undefined;
  let statsInterval = 0;
  // Every device kind's counters: the registry's PMD devices, the vifs, the vhost-user ports.
  const snapshot = (): ReturnType<DeviceRegistry['snapshot']> => {
    const snap = registry.snapshot();
    netif?.augment(snap);
    if (vhost) {
      snap.devices.push(...vhost.counters(sw.stats().devices));
      snap.devices.sort((a, b) => a.slot - b.slot);
    }
    return snap;
  };
  const setStats = (seconds: number): void => {
    if (statsTimer) clearInterval(statsTimer);
    statsTimer = undefined;
    statsInterval = seconds;
    if (seconds === 0) return;
    statsTimer = setInterval(() => {
      const snap = snapshot();
      process.stdout.write(opts.json ? `${formatJson(snap, new Date())}\n` : formatTable(snap));
    }, seconds * 1000);
  };
  const captures = new Captures(sw);
  let control: ControlServer | undefined;
  let metricsServer: http.Server | undefined;

  const shutdown = async (): Promise<void> => {
    if (stopped) return done;
    stopped = true;
    if (statsTimer) clearInterval(statsTimer);
    captures.stopAll();
    await control?.close();
    metricsServer?.close();
    metricsServer?.closeAllConnections();
    await netif?.stop();
    await discovery.stop();
    vhost?.close();
    sw.stop();
    sw.close();
    grants.close();
    store.close();
    lock.release();
    log.info('stopped: every device detached and unmapped');
    resolveDone();
    return done;
  };

  /** Sends a connection's events to discovery and reconnects when it closes. */
  const follow = (xs: XenStoreClient): void => {
    xs.on('watch', (path: string, token: string) => {
      discovery.onWatch(path, token);
      netif?.onWatch(path, token);
    });
    xs.on('close', () => {
      lost.add(xs);
      if (stopped || reconnecting || xs !== store) return;
      reconnecting = true;
      discovery.offline();
      const kept = registry.devices().length;
      log.warn(`lost the connection to XenStore at ${where}: the ${kept} attached devices keep switching; reconnecting for up to ${opts.xenstoreRetry} s`);
      void reconnect();
    });
  };

  let reconnecting = false;
  /** Connections that have closed (one may close again while reconnecting). */
  const lost = new WeakSet<XenStoreClient>();
  const reconnect = async (): Promise<void> => {
    const started = Date.now();
    const deadline = started + opts.xenstoreRetry * 1000;
    let pause = RETRY_FIRST_MS;
    let why = 'no attempt was made';
    while (!stopped) {
      let xs: XenStoreClient | undefined;
      try {
        xs = await XenStoreClient.connect({ path: where });
        store = xs;
        follow(xs);
        await discovery.reattach(xs);
        await netif?.reattach(xs);
        if (stopped) return;
        if (lost.has(xs)) throw new Error('the new connection closed again');
        reconnecting = false;
        log.info(`reconnected to XenStore at ${where} after ${((Date.now() - started) / 1000).toFixed(1)} s: watching again and reconciled, ${registry.devices().length} devices attached`);
        return;
      } catch (err) {
        why = errText(err);
        discovery.offline();
        if (xs && xs === store) xs.close();
      }
      if (Date.now() + pause > deadline) break;
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, RETRY_MAX_MS);
    }
    if (stopped) return;
    log.error(`XenStore at ${where} did not come back within ${opts.xenstoreRetry} s (${why}): detaching every device and exiting; restart xsw-backend once xenstored is back`);
    process.exitCode = 1; // before shutdown(): cli.ts reads it as soon as `done` resolves
    await shutdown();
  };

  follow(store);

  try {
    await discovery.start();
    await netif?.start();
  } catch (err) {
    await shutdown();
    throw new StartupError(`Cannot watch XenStore at ${where}: ${errText(err)}.`);
  }
  // Only now, with every announced device attached: after a restart no guest's
  // frames leave through the NIC because its peer guest is not registered yet.
  sw.start();
  if (!netif) log.info('--no-netif: vifs (backend/vif) are left to another back end');
  log.info(
    `watching /local/domain for guests (max ${opts.maxDevicesPerGuest} devices and ${opts.maxPagesPerGuest} pages per guest, ${opts.maxPages} pages in all; MAC policy ${opts.macPolicy})`,
  );

  // Always there: ports may also be added at run time (xsw-ctl vhost-user add).
  try {
    vhost = new VhostPorts(sw, opts.vhostUser, log);
  } catch (err) {
    await shutdown();
    throw new StartupError(`Cannot open the vhost-user ports: ${errText(err)}.`);
  }

  setStats(opts.stats);

  // The operator's windows: the control socket (xsw-ctl) and, on request, Prometheus metrics.
  const socketPath = opts.controlSocket ?? defaultControlSocket(lockFile);
  try {
    control = await ControlServer.listen(socketPath, opts.controlMode, log);
  } catch (err) {
    await shutdown();
    throw new StartupError(`Cannot listen on the control socket ${socketPath}: ${errText(err)}; give another --control-socket, or run xsw-backend as root.`);
  }
  const metricsAt = opts.metrics ? `${opts.metrics.host.includes(':') ? `[${opts.metrics.host}]` : opts.metrics.host}:${opts.metrics.port}` : undefined;
  registerCommands(control, {
    opts, platform: grants.platform, started: new Date(), log, sw, registry, discovery, captures,
    stats: { interval: () => statsInterval, set: setStats },
    snapshot,
    metrics: metricsAt,
  });
  if (netif) control.addDeviceKind({ kind: 'netif', list: () => kindDevices(snapshot(), 'netif') });
  control.addDeviceKind({ kind: 'vhost-user', list: () => kindDevices(snapshot(), 'vhost-user') });
  registerVhostCommands(control, vhost);
  log.info({ socket: socketPath }, `control socket ${socketPath} (xsw-ctl)`);
  if (opts.metrics) {
    const server = control;
    const register = buildRegistry({
      devices: () => server.devices(),
      nic: () => ({ present: opts.port !== undefined, ...sw.stats().nic }),
      loops: () => sw.loops(),
      cycles: () => sw.cycles(),
      ...(opts.cores ? { threads: () => sw.stats().threads } : {}),
      events: () => ({ attached: registry.events.attached, detached: { ...registry.events.detached }, quarantined: registry.quarantined, refused: { ...registry.refused } }),
      capture: () => captures.totals(),
    });
    try {
      metricsServer = await serveMetrics(register, opts.metrics.host, opts.metrics.port);
    } catch (err) {
      await shutdown();
      throw new StartupError(`Cannot serve metrics on ${metricsAt}: ${errText(err)}; give another --metrics address or port.`);
    }
    log.info({ metrics: metricsAt }, `Prometheus metrics on http://${metricsAt}/metrics`);
  }
  return { shutdown, done };
}

/**
 * The "netif" and "vhost-user" kinds for the control socket, from the stats
 * snapshot: a vif as `vif<domid>.<devid>` (Xen's name for it), a vhost-user
 * port by its socket path.
 */
function kindDevices(snap: StatsSnapshot, kind: 'netif' | 'vhost-user'): DeviceInfo[] {
  return snap.devices
    .filter((d) => d.kind === kind)
    .map((d) => ({
      kind, id: kind === 'netif' ? `vif${d.domid}.${d.dev}` : d.path ?? `slot${d.slot}`, domid: d.domid, device: d.dev,
      ...(d.state === 'active' ? { slot: d.slot } : {}),
      mac: d.mac, vlan: d.vlan, state: d.state,
      tx_total: d.tx_total, tx_dropped: d.tx_dropped, rx_total: d.rx_total, rx_dropped: d.rx_dropped,
      tx_bytes: d.tx_bytes ?? 0, rx_bytes: d.rx_bytes ?? 0, drops: { ...d.drops },
      ...(d.netif ? { netif: { ...d.netif } } : {}),
      ...(d.path !== undefined ? { path: d.path } : {}),
    }));
}
