// The back end's control loop: XenStore watches, provisioning of each guest's
// control/dpdk node, attach on event_type_start_V = 1, detach on a dead flag,
// on @releaseDomain, on quarantine, and at shutdown.
//
// Work queue. A watch event only records what must be looked at; one worker
// runs the steps one at a time (so two steps for one device never interleave
// their reads and maps) and always picks the most urgent:
//   1. @releaseDomain scans and changes to a domain's own node
//      /local/domain/<id> (which only the toolstack writes: creation and
//      removal), so a dead domain's devices go before anything is attached;
//   2. @introduceDomain scans (provisioning);
//   3. device checks: at most one pending per (domid, device) however many
//      events arrive (they merge), taken round robin across domains, so one
//      guest delays another by at most one step per turn.
// Incarnations: every event on a domain's own node bumps its generation, in
// event order. A device check re-reads that node after reading the keys and
// gives up if the generation moved (nothing is mapped); devices attached
// under an older generation are detached when the node's step runs. So a
// domid reused while work was queued never keeps the dead domain's devices.
//
// The timer that polls switch events and flag bytes is synchronous and runs
// between steps. It runs every pollMs (50 ms) while the data plane works,
// and every idlePollMs (250 ms) once the data plane's loop counter stood
// still since the last tick: a sleeping data thread finds no faults, so only
// a flag byte cleared by a dead guest's kernel can be waiting, and an idle
// back end wakes four times a second instead of twenty. Not slower: a timer
// set while idle also bounds how late a guest that dies just after traffic
// resumes is detached (an operator expects well under a second). Quarantine is
// sticky (quarantines.ts) and the warn lines a guest can cause are
// rate-limited per domain (log-limit.ts).
//
// When the XenStore connection is lost (service.ts reconnects), attached
// devices stay attached, the poll timer keeps running and the worker pauses;
// on a new connection, reattach() sets the watches again and reconciles:
// every known domain and attached device is checked again and every guest
// rescanned (guests whose domain went away are detached, devices no longer
// announced - or announced differently - are detached or replaced, new ones
// attached). The same reconcile runs when xenstored reports a watch on its
// own path (/local/domain): it collapses a watch's events that way when this
// client falls behind (docs/xenstore.md).
import type { Logger } from 'pino';
import { matchAssignmentPath } from '../schema/assignment';
import { PublishedDevice, readDevice, Refusal } from './attach';
import { Device, DeviceRegistry, DetachWhy } from './devices';
import { checkIdentity, MacPolicy } from './identity';
import { domainPath, matchDomainPath, parseDomid } from '../schema/domain';
import { deviceKeys, dpdkDir, matchStartPath, parseStart } from '../schema/dpdk';
import { DomainLogLimiter } from './log-limit';
import { describePlacement } from './networks';
import type { DataPlane, Store } from './dependencies';
import { BackoffOptions, DEFAULT_BACKOFF, QuarantineEntry, Quarantines } from './quarantines';

export const WATCH_TOKEN = 'xsw';
/** Spoofing and suppressed-line reports are checked at most this often, ms. */
const SLOW_CHECK_MS = 1000;

export interface DiscoveryOptions {
  maxDevicesPerGuest: number;
  /** How often switch events and flag bytes are polled while the data plane works, ms (default 50). */
  pollMs?: number;
  /** ... and while its thread sleeps (its loop counter stands still), ms (default 250). */
  idlePollMs?: number;
  /** 'guest' (default): guests choose their MAC unless dom0 assigned one; 'dom0': only assigned MACs. */
  macPolicy?: MacPolicy;
  /** Quarantine back-off; default 1 s doubling up to 5 min. */
  backoff?: BackoffOptions;
  /** Warn lines per domain per minute (default 10). */
  linesPerMinute?: number;
  /** The clock, ms (tests). */
  now?: () => number;
}

/** A store that can also set watches (events arrive through Discovery.onWatch). */
export interface WatchingStore extends Store {
  watch(path: string, token: string): Promise<void>;
}

type Step = () => Promise<void>;

export class Discovery {
  // Pending work (see the header).
  private releaseWanted = false;
  private readonly domainChecks = new Set<number>();
  private scanWanted: 'provision' | 'attach' | undefined;
  /** domid -> devices to check, both in first-event order; a domain goes to the back after each turn. */
  private readonly checks = new Map<number, Set<number>>();
  private working = false;
  private worker: Promise<void> = Promise.resolve();
  /** The XenStore connection is gone: the worker pauses until reattach(). */
  private offlineFlag = false;

  private timer: NodeJS.Timeout | undefined;
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  /** domid -> generation: bumped by every event on /local/domain/<id>. */
  private readonly generations = new Map<number, number>();
  /** domid -> the generation its control/dpdk was provisioned for. */
  private readonly provisioned = new Map<number, number>();
  private readonly attachedIn = new WeakMap<Device, number>();
  /** The last refusal message per device (or `<domid>/over` for indexes over the cap): a repeat logs at debug. */
  private readonly lastRefusal = new Map<string, string>();
  private readonly quarantines: Quarantines;
  private readonly limiter: DomainLogLimiter;
  private readonly now: () => number;
  private stopping = false;
  private lastSlowCheck = 0;
  private lastLoops: number | undefined;
  private readonly spoofWarned = new WeakSet<Device>();
  /** For tests and diagnostics: device checks run, and start events merged into a pending one. */
  readonly counters = { deviceChecks: 0, merged: 0 };

  constructor(
    private store: WatchingStore,
    private readonly registry: DeviceRegistry,
    private readonly dataPlane: DataPlane,
    private readonly log: Logger,
    private readonly opts: DiscoveryOptions,
  ) {
    this.quarantines = new Quarantines(opts.backoff ?? DEFAULT_BACKOFF);
    this.limiter = new DomainLogLimiter(opts.linesPerMinute ?? 10, 60_000);
    this.now = opts.now ?? Date.now;
  }

  /**
   * Watches, then provisions every guest and attaches every device already
   * announced (watching first, so nothing announced meanwhile is missed; a
   * duplicate event for a device just attached is ignored).
   */
  async start(): Promise<void> {
    await this.watchAll();
    this.scanWanted = 'attach';
    this.kick();
    await this.idle();
    this.schedulePoll();
  }

  /** The next poll: soon while the data plane loops, later while it sleeps (see the header). */
  private schedulePoll(): void {
    if (this.stopping) return;
    const loops = this.dataPlane.loops?.();
    const idle = loops !== undefined && loops === this.lastLoops;
    this.lastLoops = loops;
    this.timer = setTimeout(() => {
      this.poll();
      this.schedulePoll();
    }, idle ? (this.opts.idlePollMs ?? 250) : (this.opts.pollMs ?? 50));
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
    await this.idle(); // a step that was running when the connection went has failed by now
    this.store = store;
    this.offlineFlag = false;
    // A restarted xenstored may have lost control/dpdk: provision again.
    this.provisioned.clear();
    await this.watchAll();
    this.reconcile();
    await this.idle();
  }

  private async watchAll(): Promise<void> {
    await this.store.watch('/local/domain', WATCH_TOKEN);
    await this.store.watch('@introduceDomain', WATCH_TOKEN);
    await this.store.watch('@releaseDomain', WATCH_TOKEN);
  }

  /**
   * Re-reads the world, through the ordinary queue: a release scan, every
   * known domain's node, every attached device, then every guest's devices.
   * Each is merged with the same work already pending.
   */
  private reconcile(): void {
    this.releaseWanted = true;
    for (const domid of new Set([...this.registry.domids(), ...this.generations.keys()])) this.domainChecks.add(domid);
    for (const d of this.registry.devices()) this.wantCheck(d.domid, d.dev);
    this.scanWanted = 'attach';
    this.kick();
  }

  /** Feed every XenStore watch event here. */
  onWatch(path: string, token: string): void {
    if (token !== WATCH_TOKEN || this.stopping) return;
    if (path === '/local/domain') {
      // The watch's own path: its first event, or xenstored collapsed events we fell behind on.
      this.reconcile();
      return;
    }
    if (path === '@introduceDomain') {
      this.scanWanted ??= 'provision';
    } else if (path === '@releaseDomain') {
      this.releaseWanted = true;
    } else if (this.onDevicePath(path)) {
      // queued (or refused) above
    } else {
      const domid = matchDomainPath(path);
      if (domid === null) return;
      if (path === domainPath(domid)) this.generations.set(domid, this.generation(domid) + 1);
      this.domainChecks.add(domid);
    }
    this.kick();
  }

  /** Stops watching for work and detaches every device (the data plane lets go first). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    for (const t of this.retryTimers.values()) clearTimeout(t);
    this.retryTimers.clear();
    await this.idle();
    for (const d of this.registry.devices()) this.detach(d, 'shutdown', 'the back end is stopping');
  }

  /** Resolves when no step is running or pending (for tests). */
  async idle(): Promise<void> {
    while (this.working) await this.worker;
  }

  /** Device checks pending, all domains together (for tests). */
  pendingChecks(): number {
    let n = 0;
    for (const devs of this.checks.values()) n += devs.size;
    return n;
  }

  private onDevicePath(path: string): boolean {
    const start = matchStartPath(path);
    if (start) {
      this.wantCheck(start.domid, start.dev);
      return true;
    }
    const assigned = matchAssignmentPath(path);
    if (!assigned) return false;
    if (assigned.dev !== undefined) this.wantCheck(assigned.domid, assigned.dev);
    else for (const d of this.registry.devices()) if (d.domid === assigned.domid) this.wantCheck(d.domid, d.dev);
    return true;
  }

  /** Queues a check of (domid, dev), merged with one already pending. */
  private wantCheck(domid: number, dev: number): void {
    if (dev >= this.opts.maxDevicesPerGuest) {
      this.refuse(domid, dev, new Refusal(
        'device_cap',
        `${deviceKeys(dev).start} is over the limit of ${this.opts.maxDevicesPerGuest} devices per guest (raise --max-devices-per-guest)`,
      ));
      return;
    }
    const devs = this.checks.get(domid) ?? new Set<number>();
    if (devs.has(dev)) {
      this.counters.merged++;
      return;
    }
    devs.add(dev);
    this.checks.set(domid, devs);
  }

  private kick(): void {
    if (this.working) return;
    this.working = true;
    this.worker = (async () => {
      for (;;) {
        const step = this.nextStep();
        if (!step) {
          this.working = false;
          return;
        }
        try {
          await step();
        } catch (err) {
          // Without a connection steps fail; reattach() reconciles what they missed.
          if (this.offlineFlag) this.log.debug({ err }, `control step skipped while XenStore is away: ${(err as Error).message}`);
          else this.log.error({ err }, `control step failed: ${(err as Error).message}`);
        }
      }
    })();
  }

  private nextStep(): Step | undefined {
    if (this.stopping || this.offlineFlag) return undefined;
    if (this.releaseWanted) {
      this.releaseWanted = false;
      return () => this.releaseScan();
    }
    for (const domid of this.domainChecks) {
      this.domainChecks.delete(domid);
      return () => this.checkDomain(domid);
    }
    if (this.scanWanted) {
      const attach = this.scanWanted === 'attach';
      this.scanWanted = undefined;
      return () => this.scanAll(attach);
    }
    for (const [domid, devs] of this.checks) {
      const dev = devs.values().next().value as number;
      devs.delete(dev);
      this.checks.delete(domid);
      if (devs.size > 0) this.checks.set(domid, devs); // to the back: round robin
      return () => this.checkDevice(domid, dev);
    }
    return undefined;
  }

  private generation(domid: number): number {
    return this.generations.get(domid) ?? 0;
  }

  /** Switch events and flag bytes, every pollMs (idlePollMs while the data plane sleeps). */
  poll(): void {
    for (const e of this.dataPlane.events()) {
      const d = this.registry.devices().find((x) => x.slot === e.slot && x.domid === e.domid && x.dev === e.dev);
      if (!d) continue;
      if (e.kind === 'quarantine') {
        const { strikes, waitMs } = this.quarantines.strike(d.domid, d.dev, this.now(), e.reason);
        this.log.warn(
          { domid: d.domid, dev: d.dev, reason: e.reason, strikes },
          `quarantined domain ${d.domid} device ${d.dev}: ${e.reason} (strike ${strikes}: it may attach again once it unpublishes and republishes ${deviceKeys(d.dev).start}, in ${waitMs / 1000} s at the earliest)`,
        );
        this.registry.detach(d, 'quarantine');
      } else {
        this.detach(d, 'dead', e.reason || 'its vring flag was cleared');
      }
    }
    for (const d of this.registry.deadDevices()) this.detach(d, 'dead', 'its vring flag was cleared');
    const now = this.now();
    if (now - this.lastSlowCheck >= SLOW_CHECK_MS) {
      this.lastSlowCheck = now;
      this.warnSpoofers();
      for (const [domid, n] of this.limiter.expired(now)) this.reportSuppressed(domid, n);
    }
  }

  /** One warn line per device the first time the switch drops a frame with a source MAC not its own. */
  private warnSpoofers(): void {
    for (const c of this.dataPlane.stats().devices) {
      const spoofed = c.drops.spoofed_src_mac ?? 0;
      const d = this.registry.devices().find((x) => x.slot === c.slot && x.domid === c.domid && x.dev === c.dev);
      if (!d || spoofed === 0 || this.spoofWarned.has(d)) continue;
      this.spoofWarned.add(d);
      this.warnAbout(
        d.domid,
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
    const key = dev < this.opts.maxDevicesPerGuest ? `${domid}/${dev}` : `${domid}/over`;
    const msg = `refused domain ${domid} device ${dev}: ${r.message}`;
    if (this.lastRefusal.get(key) === msg) {
      this.log.debug({ domid, dev, reason: r.code }, msg);
      return;
    }
    this.lastRefusal.set(key, msg);
    this.warnAbout(domid, { domid, dev, reason: r.code }, msg);
  }

  /** A warn line a guest caused: at most linesPerMinute per domain, the rest counted. */
  private warnAbout(domid: number, fields: Record<string, unknown>, msg: string): void {
    const v = this.limiter.admit(domid, this.now());
    if (v.suppressedBefore > 0) this.reportSuppressed(domid, v.suppressedBefore);
    if (v.log) this.log.warn(fields, msg);
  }

  private reportSuppressed(domid: number, n: number): void {
    this.log.warn(
      { domid, suppressed: n },
      `domain ${domid}: suppressed ${n} more warning line${n === 1 ? '' : 's'} about it (at most ${this.limiter.perWindow} per domain per minute are logged)`,
    );
  }

  /**
   * The guests' domids. Only "no /local/domain" means none: any other failure
   * (the connection lost mid-scan) throws, so releaseScan never takes a
   * failed read for every guest gone.
   */
  private async domids(): Promise<number[]> {
    // Only a missing /local/domain means "no domains": any other failure (a
    // lost connection) must not look like every guest went away.
    const names = await this.store.directory('/local/domain').catch((err: { code?: string }) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    return names.map(parseDomid).filter((d): d is number => d !== null && d !== 0);
  }

  /** Provisions new guests; at start, also queues every device already announced. */
  private async scanAll(attachAnnounced: boolean): Promise<void> {
    for (const domid of await this.domids()) {
      await this.provision(domid);
      if (attachAnnounced) await this.queueAnnounced(domid);
    }
  }

  /** Queues a check of every event_type_start_V the guest has written. */
  private async queueAnnounced(domid: number): Promise<void> {
    const keys = await this.store.directory(dpdkDir(domid)).catch(() => [] as string[]);
    for (const k of keys) {
      const s = matchStartPath(`${dpdkDir(domid)}/${k}`);
      if (s) this.wantCheck(s.domid, s.dev);
    }
  }

  /**
   * Makes /local/domain/<id>/control/dpdk writable by the guest: libxl makes
   * ~/control read-only, so the front end could not publish otherwise. Once
   * per incarnation of the domain.
   */
  private async provision(domid: number): Promise<void> {
    const gen = this.generation(domid);
    if (this.provisioned.get(domid) === gen) return;
    if ((await this.store.tryRead(domainPath(domid))) === undefined) return;
    const dir = dpdkDir(domid);
    await this.store.mkdir(dir);
    await this.store.setPerms(dir, ['n0', `b${domid}`]);
    this.provisioned.set(domid, gen);
    this.log.debug({ domid }, `provisioned ${dir} for domain ${domid}`);
  }

  /** /local/domain/<id> or its control node changed: removed, created, or re-created. */
  private async checkDomain(domid: number): Promise<void> {
    const gen = this.generation(domid);
    if ((await this.store.tryRead(domainPath(domid))) === undefined) {
      this.forget(domid, 'its XenStore directory was removed');
      return;
    }
    const stale = this.registry.devices().some((d) => d.domid === domid && (this.attachedIn.get(d) ?? 0) < gen);
    if (stale) {
      // The node was rewritten under attached devices: a new domain with the same domid.
      this.forget(domid, 'its domid now names a new domain (its XenStore directory was re-created)');
      await this.provision(domid);
      await this.queueAnnounced(domid);
      return;
    }
    await this.provision(domid);
  }

  /** Detaches guests whose domains are gone. */
  private async releaseScan(): Promise<void> {
    const alive = new Set(await this.domids());
    const known = new Set([...this.registry.domids(), ...this.provisioned.keys(), ...this.checks.keys()]);
    for (const domid of known) {
      if (!alive.has(domid)) this.forget(domid, 'the domain was released');
    }
  }

  /** Everything about `domid` goes: its devices, pending work, strikes, counters and log state. */
  private forget(domid: number, text: string): void {
    this.provisioned.delete(domid);
    this.checks.delete(domid);
    for (const [key, t] of this.retryTimers) {
      if (!key.startsWith(`${domid}/`)) continue;
      clearTimeout(t);
      this.retryTimers.delete(key);
    }
    for (const key of [...this.lastRefusal.keys()]) if (key.startsWith(`${domid}/`)) this.lastRefusal.delete(key);
    this.quarantines.forget(domid);
    const suppressed = this.limiter.forget(domid);
    if (suppressed > 0) this.reportSuppressed(domid, suppressed);
    for (const d of this.registry.detachGuest(domid, 'released')) {
      this.log.info({ domid, dev: d.dev, slot: d.slot }, `detached domain ${domid} device ${d.dev}: ${text}`);
    }
    this.registry.forgetRetired(domid);
  }

  /** Devices in quarantine (with strikes), for the control socket. */
  quarantineList(): QuarantineEntry[] {
    return this.quarantines.list();
  }

  /**
   * An operator's release (xsw-ctl quarantine release): forgets the device's
   * strikes and checks it at once, so it attaches again if its guest still
   * publishes it. False when it was not quarantined.
   */
  release(domid: number, dev: number): boolean {
    if (!this.quarantines.release(domid, dev)) return false;
    this.registry.forgetRetiredDevice(domid, dev);
    this.log.info({ domid, dev }, `released domain ${domid} device ${dev} from quarantine: it attaches again if its guest still publishes it`);
    this.wantCheck(domid, dev);
    this.kick();
    return true;
  }

  /** Checks (domid, dev) again after `ms` (a quarantine back-off). */
  private retryLater(domid: number, dev: number, ms: number): void {
    const key = `${domid}/${dev}`;
    if (this.retryTimers.has(key)) return;
    const t = setTimeout(() => {
      this.retryTimers.delete(key);
      if (this.stopping) return;
      this.wantCheck(domid, dev);
      this.kick();
    }, ms);
    t.unref();
    this.retryTimers.set(key, t);
  }

  /**
   * True if `domid` is still the incarnation of generation `gen`. Re-reads its
   * node: every event XenStore sent before the reply has been seen by then.
   */
  private async sameIncarnation(domid: number, gen: number): Promise<boolean> {
    const alive = (await this.store.tryRead(domainPath(domid))) !== undefined;
    return alive && gen === this.generation(domid) && !this.stopping;
  }

  private async checkDevice(domid: number, dev: number): Promise<void> {
    if (this.stopping) return;
    this.counters.deviceChecks++;
    const gen = this.generation(domid);
    const startKey = deviceKeys(dev).start;
    const value = await this.store.tryRead(`${dpdkDir(domid)}/${startKey}`);
    const existing = this.registry.find(domid, dev);
    if (value === undefined || !parseStart(value)) {
      this.quarantines.unpublished(domid, dev);
      if (existing) this.detach(existing, 'stopped', `${startKey} is no longer 1`);
      return;
    }
    if (!existing) {
      const verdict = this.quarantines.verdict(domid, dev, this.now());
      if (!verdict.ok) {
        // Sticky: said once in the quarantine line; a guest republishing in a loop costs one read.
        if (verdict.why === 'backoff') this.retryLater(domid, dev, verdict.waitMs);
        this.log.debug({ domid, dev }, `domain ${domid} device ${dev} stays quarantined (${verdict.why})`);
        return;
      }
    }
    let published: PublishedDevice | Refusal;
    try {
      published = await readDevice(this.store, domid, dev);
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      published = err;
    }
    if (!(await this.sameIncarnation(domid, gen))) {
      this.log.debug({ domid, dev }, `dropped a check of domain ${domid} device ${dev}: the domain changed meanwhile`);
      return;
    }
    if (published instanceof Refusal) {
      if (existing) this.detach(existing, 'replaced', 'it was re-announced');
      this.refuse(domid, dev, published);
      return;
    }
    if (existing) {
      // The same keys and a live flag: a repeated event, not a new device.
      if (existing.fingerprint === published.fingerprint && existing.flagByte[0] !== 0) return;
      this.detach(existing, 'replaced', 'it was re-announced');
    }
    try {
      checkIdentity(published, this.opts.macPolicy ?? 'guest', (mac) => this.dataPlane.nicMacSeen(mac));
      this.evictSquatter(published);
      const d = this.registry.attach(published);
      this.attachedIn.set(d, gen);
      this.lastRefusal.delete(`${domid}/${dev}`);
      const woken = published.evtchn !== undefined && (this.dataPlane.wakeups?.().bound.includes(d.slot) ?? false);
      if (published.evtchn !== undefined && !woken) {
        this.log.warn({ domid, dev, slot: d.slot }, `(${d.slot}) event channel ${published.evtchn} of domain ${domid} could not be bound: the device is polled`);
      }
      this.log.info(
        { domid, dev, slot: d.slot, rx_ring: d.mapped.rxNum, tx_ring: d.mapped.txNum, pages: this.registry.pagesOf(domid), assigned: d.assigned, wakeup: woken ? 'evtchn' : 'polled' },
        `(${d.slot}) MAC_ADDRESS ${d.mac} and VLAN_TAG ${d.vlan} registered${describePlacement(d.placement)}`,
      );
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      this.refuse(domid, dev, err);
    }
  }

  /**
   * A device with a dom0-assigned MAC wins over one that chose the same MAC
   * itself: the squatter is detached (it would otherwise lock the owner out).
   */
  private evictSquatter(p: PublishedDevice): void {
    if (p.assigned.mac === undefined) return;
    const owner = this.registry.ownerOf(p.mac);
    if (!owner || owner.assigned) return;
    this.registry.detach(owner, 'evicted');
    this.log.warn(
      { domid: owner.domid, dev: owner.dev, reason: 'mac_assigned_elsewhere' },
      `detached domain ${owner.domid} device ${owner.dev}: its MAC ${owner.mac} is assigned by dom0 to domain ${p.domid} device ${p.dev}`,
    );
  }
}
