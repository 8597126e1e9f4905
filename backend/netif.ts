// The netif (vif) back end: stock xen-netfront guests on the same switch as
// the PMD guests. One record per backend/vif/<domid>/<devid> that the
// toolstack (libxl, or xsw-sim create --vif) wrote in dom0's tree, driven
// through Xen's xenbus states:
//
//   online=1, state 1 → write our features, state 2 (InitWait), watch the
//   front end's state; front end Connected (4) → read its keys strictly
//   (schema/netif.ts), map its rings and bind its event channel
//   (native/netif.ts), add a switch device (MAC from the back end's `mac`
//   key, which only dom0 writes; VLAN 1000 + slot like every device), state
//   4; front end Closing/Closed → detach, state 5/6; front end Initialising
//   again → InitWait; online=0 (libxl's removal) or the guest gone → detach
//   and state 6 (Closed), which libxl waits for.
//
// The engine's quarantine (a protocol violation, native/netif/engine.h) is
// polled every 100 ms: one warn line, the device leaves the switch, the vif
// stays down until its front end reconnects (Closed, then Initialising).
// Work is serialised per vif; events for one vif merge while it is queued.
import type { Logger } from 'pino';
import { openVif, NativeVif } from '../native/netif';
import { parseMac } from '../schema/mac';
import {
  BACKEND_FEATURES, matchVifBackendPath, matchVifFrontendPath, parseDecimal, readFrontend, VIF_BACKEND_ROOT,
  vifBackendDir, vifFrontendDir, XenbusState,
} from '../schema/netif';
import type { DataPlane } from './dependencies';
import type { WatchingStore } from './discovery';
import { VLAN_BASE } from './identity';
import type { DeviceCounters, StatsSnapshot } from './stats';

export const NETIF_WATCH_TOKEN = 'xsw-netif';
const POLL_MS = 100;

export interface NetifOptions {
  platform: 'xen' | 'sim';
  maxDevices: number;
  /** Switch slots other back ends hold right now (the PMD registry's). */
  slotsInUse: () => Iterable<number>;
  /** Largest frame either way (1514: netfront without scatter-gather). */
  maxFrame?: number;
  busy?: boolean;
}

interface Vif {
  domid: number;
  devid: number;
  advertised: boolean;
  watchedFrontend: boolean;
  engine?: NativeVif;
  slot?: number;
  mac?: string;
  vlan?: number;
  /** Set by a quarantine: stays down until the front end goes through Closed. */
  quarantined?: string;
  /** The last refusal logged, so that a repeat logs at debug. */
  lastRefusal?: string;
}

const key = (domid: number, devid: number): string => `${domid}/${devid}`;
const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err)).replace(/\.$/, '');

export class NetifBackend {
  private readonly vifs = new Map<string, Vif>();
  private readonly queued = new Set<string>();
  private work: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  /** Final counters of quarantined vifs, for the stats. */
  private readonly retired: DeviceCounters[] = [];

  constructor(
    private store: WatchingStore,
    private readonly dataPlane: DataPlane,
    private readonly log: Logger,
    private readonly opts: NetifOptions,
  ) {}

  /** Watches backend/vif and serves every vif already there. */
  async start(): Promise<void> {
    await this.store.watch(VIF_BACKEND_ROOT, NETIF_WATCH_TOKEN);
    await this.scan();
  }

  /** The fault poll runs only while some vif has an engine: an idle back end without vifs never wakes for it. */
  private armPoll(): void {
    const engines = [...this.vifs.values()].some((v) => v.engine !== undefined);
    if (engines && !this.timer && !this.stopping) {
      this.timer = setInterval(() => this.poll(), POLL_MS);
      this.timer.unref();
    } else if (!engines && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** A new XenStore connection: watch again and look at every vif. */
  async reattach(store: WatchingStore): Promise<void> {
    this.store = store;
    for (const v of this.vifs.values()) v.watchedFrontend = false;
    await this.store.watch(VIF_BACKEND_ROOT, NETIF_WATCH_TOKEN);
    await this.scan();
  }

  onWatch(path: string, token: string): void {
    if (token !== NETIF_WATCH_TOKEN || this.stopping) return;
    if (path === VIF_BACKEND_ROOT) {
      void this.scan().catch((err: unknown) => this.log.warn(`cannot list ${VIF_BACKEND_ROOT}: ${errText(err)}`));
      return;
    }
    const m = matchVifBackendPath(path) ?? matchVifFrontendPath(path);
    if (m) this.enqueue(m.domid, m.devid);
    else {
      const dom = /^\/local\/domain\/0\/backend\/vif\/([0-9]{1,5})$/.exec(path);
      if (dom) void this.scanDomain(Number(dom[1])).catch(() => {});
    }
  }

  /** Switch slots the vifs hold. */
  slots(): number[] {
    return [...this.vifs.values()].flatMap((v) => (v.slot === undefined ? [] : [v.slot]));
  }

  /** Marks the PMD devices' kind and adds the vifs (with their engine counters). */
  augment(snap: StatsSnapshot): void {
    for (const d of snap.devices) d.kind ??= 'pmd';
    const live = this.dataPlane.stats().devices;
    for (const v of this.vifs.values()) {
      if (v.slot === undefined || !v.engine) continue;
      const c = live.find((s) => s.slot === v.slot);
      if (!c) continue;
      snap.devices.push({ ...c, dev: v.devid, vlan: v.vlan ?? c.vlan, kind: 'netif', netif: v.engine.counters() });
    }
    snap.devices.push(...this.retired);
  }

  /** Detaches every vif (the guests see the back end stop answering, as after a netback crash). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    await this.work.catch(() => {});
    for (const v of this.vifs.values()) this.detach(v);
  }

  /** Engines' quarantines. */
  poll(): void {
    for (const v of this.vifs.values()) {
      if (!v.engine) continue;
      const fault = v.engine.fault();
      if (fault === 'none') continue;
      const last = this.dataPlane.stats().devices.find((s) => s.slot === v.slot);
      const counters = v.engine.counters();
      this.log.warn(
        { domid: v.domid, devid: v.devid, reason: fault },
        `quarantined vif ${v.domid}/${v.devid} (netif): ${fault}; it stays down until its front end reconnects`,
      );
      if (last) this.retired.push({ ...last, dev: v.devid, vlan: v.vlan ?? last.vlan, state: 'quarantined', kind: 'netif', netif: counters });
      this.detach(v);
      v.quarantined = fault;
    }
  }

  private async scan(): Promise<void> {
    const domains = await this.store.directory(VIF_BACKEND_ROOT).catch(() => [] as string[]);
    for (const d of domains) if (/^[0-9]{1,5}$/.test(d)) await this.scanDomain(Number(d));
    for (const v of this.vifs.values()) this.enqueue(v.domid, v.devid);
  }

  private async scanDomain(domid: number): Promise<void> {
    const devs = await this.store.directory(`${VIF_BACKEND_ROOT}/${domid}`).catch(() => [] as string[]);
    for (const dev of devs) if (/^[0-9]{1,9}$/.test(dev)) this.enqueue(domid, Number(dev));
    for (const v of this.vifs.values()) if (v.domid === domid) this.enqueue(v.domid, v.devid);
  }

  private enqueue(domid: number, devid: number): void {
    const k = key(domid, devid);
    if (this.queued.has(k)) return;
    this.queued.add(k);
    this.work = this.work.then(async () => {
      this.queued.delete(k);
      if (this.stopping) return;
      try {
        await this.check(domid, devid);
      } catch (err) {
        this.log.warn({ domid, devid }, `vif ${k}: ${errText(err)}`);
      }
    });
  }

  private async check(domid: number, devid: number): Promise<void> {
    const be = vifBackendDir(domid, devid);
    const k = key(domid, devid);
    const read = (p: string): Promise<string | undefined> => this.store.tryRead(p);
    const frontend = await read(`${be}/frontend`);
    const existing = this.vifs.get(k);
    if (frontend === undefined) {
      // The toolstack removed the back-end directory (the guest is gone).
      if (existing) {
        this.detach(existing);
        this.vifs.delete(k);
        this.log.info({ domid, devid }, `vif ${k} removed`);
      }
      return;
    }
    const v: Vif = existing ?? { domid, devid, advertised: false, watchedFrontend: false };
    this.vifs.set(k, v);
    const frontendId = await read(`${be}/frontend-id`);
    if (frontend !== vifFrontendDir(domid, devid) || frontendId !== String(domid)) {
      this.refuse(v, `its back-end keys name the front end ${JSON.stringify(frontend)} of domain ${JSON.stringify(frontendId)}, not ${vifFrontendDir(domid, devid)}: the toolstack wrote them wrong`);
      return;
    }
    const online = await read(`${be}/online`);
    const beState = await read(`${be}/state`);
    if (online !== '1') {
      if (v.engine) this.log.info({ domid, devid }, `vif ${k} going offline (online=${online ?? 'missing'})`);
      this.detach(v);
      if (online === '0' && beState !== String(XenbusState.Closed)) await this.setState(be, XenbusState.Closed);
      return;
    }
    if (!v.advertised) {
      for (const [name, value] of BACKEND_FEATURES) await this.store.write(`${be}/${name}`, value);
      // A restarted back end finds its vifs Connected: it reconnects them without stepping back.
      if (beState !== String(XenbusState.Connected)) await this.setState(be, XenbusState.InitWait);
      v.advertised = true;
    }
    if (!v.watchedFrontend) {
      await this.store.watch(`${frontend}/state`, NETIF_WATCH_TOKEN);
      v.watchedFrontend = true;
    }
    const feStateText = await read(`${frontend}/state`);
    const fe = parseDecimal(feStateText, 'state', 0, 8);
    if (feStateText === undefined) {
      // The guest's device directory is gone: it vanished (or was never set up).
      if (v.engine) {
        this.log.info({ domid, devid }, `vif ${k}: its front end disappeared; detached`);
        this.detach(v);
        await this.setState(be, XenbusState.Closed);
      }
      return;
    }
    const feState = fe.ok ? fe.value : XenbusState.Unknown;
    switch (feState) {
      case XenbusState.Connected:
        if (!v.engine && !v.quarantined) await this.attach(v, be, frontend);
        return;
      case XenbusState.Closing:
        this.detach(v);
        await this.setState(be, XenbusState.Closing);
        return;
      case XenbusState.Closed:
        this.detach(v);
        v.quarantined = undefined;
        await this.setState(be, XenbusState.Closed);
        return;
      case XenbusState.Initialising:
      case XenbusState.Unknown:
        if (v.engine) this.detach(v);
        if (beState === String(XenbusState.Closed) || beState === String(XenbusState.Closing)) {
          v.quarantined = undefined;
          await this.setState(be, XenbusState.InitWait);
        }
        return;
      default:
        return;
    }
  }

  private async attach(v: Vif, be: string, frontend: string): Promise<void> {
    const k = key(v.domid, v.devid);
    const macText = await this.store.tryRead(`${be}/mac`);
    const mac = macText === undefined ? undefined : parseMac(macText);
    if (!mac || !mac.ok) {
      this.refuse(v, `its back-end mac key ${macText === undefined ? 'is missing' : `${JSON.stringify(macText)} ${mac && !mac.ok ? mac.reason : ''}`}: set mac= in the vif line`);
      return;
    }
    const keys = await readFrontend((name) => this.store.tryRead(`${frontend}/${name}`));
    if (!keys.ok) {
      this.refuse(v, `its front end's keys are not acceptable: ${keys.reason}`);
      return;
    }
    const slot = this.freeSlot();
    if (slot === undefined) {
      this.refuse(v, `all ${this.opts.maxDevices} switch slots are in use (raise --max-devices, at most 64)`);
      return;
    }
    let engine: NativeVif;
    try {
      engine = openVif({
        platform: this.opts.platform, self: 0, domid: v.domid, devid: v.devid,
        txRingRef: keys.value.txRingRef, rxRingRef: keys.value.rxRingRef,
        txEvtchn: keys.value.txEvtchn, rxEvtchn: keys.value.rxEvtchn,
        maxFrame: this.opts.maxFrame ?? 1514, busy: this.opts.busy ?? false,
      });
    } catch (err) {
      this.refuse(v, errText(err));
      return;
    }
    const l = engine.local();
    const vlan = VLAN_BASE + slot;
    let got: number;
    try {
      got = this.dataPlane.addDevice({
        domid: v.domid, dev: v.devid, mac: macText as string, vlan,
        tx: { addr: l.txRing, num: l.ringSize, mapLen: l.ringLen },
        rx: { addr: l.rxRing, num: l.ringSize, mapLen: l.ringLen },
        flag: { addr: l.flag, mapLen: 1 },
        regions: [{ gva: l.pool, len: l.poolLen, hva: l.pool, mapLen: l.poolLen, writable: true }],
      });
    } catch (err) {
      engine.close();
      const e = err as { code?: string };
      this.refuse(v, e.code === 'EEXIST' ? `its MAC ${macText as string} is already registered in the switch; each device needs its own MAC` : `the switch refused it: ${errText(err)}`);
      return;
    }
    v.engine = engine;
    v.slot = got;
    v.mac = macText;
    v.vlan = vlan;
    v.lastRefusal = undefined;
    engine.start();
    this.armPoll();
    await this.setState(be, XenbusState.Connected);
    this.log.info(
      { domid: v.domid, devid: v.devid, slot: got, mac: macText, vlan },
      `vif ${k} (netif) connected: MAC_ADDRESS ${macText as string} and VLAN_TAG ${vlan} registered`,
    );
  }

  /** Out of the switch first, then the engine stops, unbinds and unmaps. */
  private detach(v: Vif): void {
    if (!v.engine) return;
    if (v.slot !== undefined) {
      try {
        this.dataPlane.removeDevice(v.slot);
      } catch {
        // already gone
      }
    }
    v.engine.close();
    v.engine = undefined;
    v.slot = undefined;
    this.armPoll();
  }

  private freeSlot(): number | undefined {
    const used = new Set<number>([...this.opts.slotsInUse(), ...this.slots()]);
    for (let s = 0; s < this.opts.maxDevices; s++) if (!used.has(s)) return s;
    return undefined;
  }

  private refuse(v: Vif, why: string): void {
    const line = `vif ${key(v.domid, v.devid)} refused: ${why}`;
    if (v.lastRefusal === line) this.log.debug({ domid: v.domid, devid: v.devid }, line);
    else this.log.warn({ domid: v.domid, devid: v.devid }, line);
    v.lastRefusal = line;
  }

  private async setState(be: string, state: number): Promise<void> {
    if ((await this.store.tryRead(`${be}/frontend`)) === undefined) return; // removed meanwhile: never recreate it
    await this.store.write(`${be}/state`, String(state));
  }
}
