// The back end's control loop: XenStore watches, provisioning of each guest's
// control/dpdk node, attach on event_type_start_V = 1, detach on a dead flag,
// on @releaseDomain, on quarantine, and at shutdown.
//
// Every XenStore-triggered action runs through one serial queue, so two
// events for one device can never interleave their reads and maps. The
// timer that polls switch events and flag bytes is synchronous and runs
// between queued steps.
//
// When the XenStore connection is lost (service.ts reconnects), attached
// devices stay attached and the poll timer keeps running; on a new
// connection, reattach() sets the watches again and reconciles: guests
// whose domain went away are detached, devices no longer announced (or
// announced differently) are detached or replaced, new ones are attached.
// The same reconcile runs when xenstored reports a watch on its own path
// (/local/domain): it collapses a watch's events that way when this client
// falls behind (docs/xenstore.md).
import type { Logger } from 'pino';
import { readDevice, Refusal } from './attach';
import { Device, DeviceRegistry, DetachWhy } from './devices';
import { deviceKeys, dpdkDir, matchDomainPath, matchStartPath, parseDomid, parseStart } from './keys';
import type { DataPlane, Store } from './ports';

export const WATCH_TOKEN = 'xsw';
/** Spoofing is checked every this many polls (about once a second). */
const SPOOF_CHECK_TICKS = 20;

export interface DiscoveryOptions {
  maxDevicesPerGuest: number;
  /** How often switch events and flag bytes are polled, ms. */
  pollMs?: number;
}

/** A store that can also set watches (events arrive through Discovery.onWatch). */
export interface WatchingStore extends Store {
  watch(path: string, token: string): Promise<void>;
}

export class Discovery {
  private queue: Promise<void> = Promise.resolve();
  /** A reconcile is queued and has not started: another request merges into it. */
  private reconcileQueued = false;
  /** The XenStore connection is gone: failed steps are expected, not errors. */
  private offlineFlag = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly provisioned = new Set<number>();
  /** The last refusal message per device, so a repeated announcement logs once. */
  private readonly lastRefusal = new Map<string, string>();
  private stopping = false;
  private ticks = 0;
  private readonly spoofWarned = new WeakSet<Device>();

  constructor(
    private store: WatchingStore,
    private readonly registry: DeviceRegistry,
    private readonly dataPlane: DataPlane,
    private readonly log: Logger,
    private readonly opts: DiscoveryOptions,
  ) {}

  /**
   * Watches, then provisions every guest and attaches every device already
   * announced (watching first, so nothing announced meanwhile is missed; a
   * duplicate event for a device just attached is ignored).
   */
  async start(): Promise<void> {
    await this.watchAll();
    await this.requestReconcile();
    this.timer = setInterval(() => this.poll(), this.opts.pollMs ?? 50);
    this.timer.unref(); // the XenStore connection, not this timer, keeps the process alive
  }

  /** The XenStore connection is gone; attached devices stay, the poll timer keeps running. */
  offline(): void {
    this.offlineFlag = true;
  }

  /**
   * A new XenStore connection: watch again, then reconcile the attached
   * devices with what XenStore says now. Throws if the new connection fails
   * too (the caller retries).
   */
  async reattach(store: WatchingStore): Promise<void> {
    this.store = store;
    this.offlineFlag = false;
    // A restarted xenstored may have lost control/dpdk: provision again.
    this.provisioned.clear();
    await this.queue;
    await this.watchAll();
    await this.requestReconcile();
  }

  private async watchAll(): Promise<void> {
    await this.store.watch('/local/domain', WATCH_TOKEN);
    await this.store.watch('@introduceDomain', WATCH_TOKEN);
    await this.store.watch('@releaseDomain', WATCH_TOKEN);
  }

  /** Queues one reconcile, unless one is queued and not started yet. */
  private requestReconcile(): Promise<void> {
    if (this.reconcileQueued) return this.queue;
    this.reconcileQueued = true;
    return this.run(() => {
      this.reconcileQueued = false;
      return this.reconcile();
    });
  }

  /** Re-reads the world: gone guests detached, attached devices re-checked, new ones attached. */
  private async reconcile(): Promise<void> {
    await this.releaseScan();
    for (const d of this.registry.devices()) await this.onStart(d.domid, d.dev);
    await this.scanAll(true);
  }

  /** Feed every XenStore watch event here. */
  onWatch(path: string, token: string): void {
    if (token !== WATCH_TOKEN || this.stopping) return;
    if (path === '/local/domain') {
      // The watch's own path: its first event, or xenstored collapsed events we fell behind on.
      void this.requestReconcile();
      return;
    }
    if (path === '@introduceDomain') {
      void this.run(() => this.scanAll(false));
      return;
    }
    if (path === '@releaseDomain') {
      void this.run(() => this.releaseScan());
      return;
    }
    const start = matchStartPath(path);
    if (start) {
      void this.run(() => this.onStart(start.domid, start.dev));
      return;
    }
    const domid = matchDomainPath(path);
    if (domid !== null) void this.run(() => this.onDomainNode(domid));
  }

  /** Stops watching for work and detaches every device (the data plane lets go first). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    await this.queue;
    for (const d of this.registry.devices()) this.detach(d, 'shutdown', 'the back end is stopping');
  }

  /** Resolves when every queued step has run (for tests). */
  idle(): Promise<void> {
    return this.queue;
  }

  private run(step: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(step).catch((err: unknown) => {
      // Without a connection every step fails; reattach() reconciles what they missed.
      if (this.offlineFlag) this.log.debug({ err }, `control step skipped while XenStore is away: ${(err as Error).message}`);
      else this.log.error({ err }, `control step failed: ${(err as Error).message}`);
    });
    return this.queue;
  }

  /** Switch events and flag bytes, every pollMs. */
  poll(): void {
    for (const e of this.dataPlane.events()) {
      const d = this.registry.devices().find((x) => x.slot === e.slot && x.domid === e.domid && x.dev === e.dev);
      if (!d) continue;
      if (e.kind === 'quarantine') {
        this.log.warn({ domid: d.domid, dev: d.dev, reason: e.reason }, `quarantined domain ${d.domid} device ${d.dev}: ${e.reason}`);
        this.registry.detach(d, 'quarantine');
      } else {
        this.detach(d, 'dead', e.reason || 'its vring flag was cleared');
      }
    }
    for (const d of this.registry.deadDevices()) this.detach(d, 'dead', 'its vring flag was cleared');
    if (++this.ticks % SPOOF_CHECK_TICKS === 0) this.warnSpoofers();
  }

  /** One warn line per device the first time the switch drops a frame with a source MAC not its own. */
  private warnSpoofers(): void {
    for (const c of this.dataPlane.stats().devices) {
      const spoofed = c.drops.spoofed_src_mac ?? 0;
      const d = this.registry.devices().find((x) => x.slot === c.slot && x.domid === c.domid && x.dev === c.dev);
      if (!d || spoofed === 0 || this.spoofWarned.has(d)) continue;
      this.spoofWarned.add(d);
      this.log.warn(
        { domid: d.domid, dev: d.dev, reason: 'spoofed_src_mac' },
        `domain ${d.domid} device ${d.dev} sends frames with a source MAC that is not its own ${d.mac}: they are dropped and counted as spoofed_src_mac`,
      );
    }
  }

  private detach(d: Device, why: DetachWhy, text: string): void {
    this.registry.detach(d, why);
    this.log.info({ domid: d.domid, dev: d.dev, slot: d.slot }, `detached domain ${d.domid} device ${d.dev}: ${text}`);
  }

  private refuse(domid: number, dev: number, r: Refusal): void {
    this.registry.countRefusal(r.code);
    const key = `${domid}/${dev}`;
    const msg = `refused domain ${domid} device ${dev}: ${r.message}`;
    if (this.lastRefusal.get(key) === msg) {
      this.log.debug({ domid, dev, reason: r.code }, msg);
      return;
    }
    this.lastRefusal.set(key, msg);
    this.log.warn({ domid, dev, reason: r.code }, msg);
  }

  /**
   * The guests' domids. Only "no /local/domain" means none: any other failure
   * (the connection lost mid-scan) throws, so releaseScan never takes a
   * failed read for every guest gone.
   */
  private async domids(): Promise<number[]> {
    const names = await this.store.directory('/local/domain').catch((err: { code?: string }) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    return names.map(parseDomid).filter((d): d is number => d !== null && d !== 0);
  }

  /** Provisions new guests; at start, also attaches every device already announced. */
  private async scanAll(attachAnnounced: boolean): Promise<void> {
    for (const domid of await this.domids()) {
      await this.provision(domid);
      if (!attachAnnounced) continue;
      const keys = await this.store.directory(dpdkDir(domid)).catch(() => [] as string[]);
      for (const k of keys) {
        const s = matchStartPath(`${dpdkDir(domid)}/${k}`);
        if (s) await this.onStart(s.domid, s.dev);
      }
    }
  }

  /**
   * Makes /local/domain/<id>/control/dpdk writable by the guest: libxl makes
   * ~/control read-only, so the front end could not publish otherwise.
   */
  private async provision(domid: number): Promise<void> {
    if (this.provisioned.has(domid)) return;
    if ((await this.store.tryRead(`/local/domain/${domid}`)) === undefined) return;
    const dir = dpdkDir(domid);
    await this.store.mkdir(dir);
    await this.store.setPerms(dir, ['n0', `b${domid}`]);
    this.provisioned.add(domid);
    this.log.debug({ domid }, `provisioned ${dir} for domain ${domid}`);
  }

  private async onDomainNode(domid: number): Promise<void> {
    if ((await this.store.tryRead(`/local/domain/${domid}`)) === undefined) {
      this.forget(domid, `its XenStore directory was removed`);
      return;
    }
    await this.provision(domid);
  }

  /** Detaches guests whose domains are gone. */
  private async releaseScan(): Promise<void> {
    const alive = new Set(await this.domids());
    for (const domid of new Set([...this.registry.domids(), ...this.provisioned])) {
      if (!alive.has(domid)) this.forget(domid, 'the domain was released');
    }
  }

  private forget(domid: number, text: string): void {
    this.provisioned.delete(domid);
    for (const key of [...this.lastRefusal.keys()]) if (key.startsWith(`${domid}/`)) this.lastRefusal.delete(key);
    for (const d of this.registry.detachGuest(domid, 'released')) {
      this.log.info({ domid, dev: d.dev, slot: d.slot }, `detached domain ${domid} device ${d.dev}: ${text}`);
    }
  }

  private async onStart(domid: number, dev: number): Promise<void> {
    if (this.stopping) return;
    const startKey = deviceKeys(dev).start;
    if (dev >= this.opts.maxDevicesPerGuest) {
      this.refuse(domid, dev, new Refusal(
        'device_cap',
        `${startKey} is over the limit of ${this.opts.maxDevicesPerGuest} devices per guest (raise --max-devices-per-guest)`,
      ));
      return;
    }
    const value = await this.store.tryRead(`${dpdkDir(domid)}/${startKey}`);
    const existing = this.registry.find(domid, dev);
    if (value === undefined || !parseStart(value)) {
      if (existing) this.detach(existing, 'stopped', `${startKey} is no longer 1`);
      return;
    }
    let published;
    try {
      published = await readDevice(this.store, domid, dev);
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      if (existing) this.detach(existing, 'replaced', 'it was re-announced');
      this.refuse(domid, dev, err);
      return;
    }
    if (existing) {
      // The same keys and a live flag: a repeated event, not a new device.
      if (existing.fingerprint === published.fingerprint && existing.flagByte[0] !== 0) return;
      this.detach(existing, 'replaced', 'it was re-announced');
    }
    try {
      const d = this.registry.attach(published);
      this.lastRefusal.delete(`${domid}/${dev}`);
      this.log.info(
        { domid, dev, slot: d.slot, rx_ring: d.mapped.rxNum, tx_ring: d.mapped.txNum, pages: this.registry.pagesOf(domid) },
        `(${d.slot}) MAC_ADDRESS ${d.mac} and VLAN_TAG ${d.vlan} registered`,
      );
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      this.refuse(domid, dev, err);
    }
  }
}
