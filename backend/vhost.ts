// The back end's vhost-user ports (--vhost-user, and `xsw-ctl vhost-user add
// / remove` at run time): one native port per socket (native/vhost/,
// addon.vhost), attached to the same switch as the Xen devices. The native
// side handles the socket on this thread's event loop; this module ticks the
// ports (client reconnects, MAC learning, quarantine), logs what they report,
// and gives their counters to the stats with "kind": "vhost-user".
import type { Logger } from 'pino';
import type { NativeVhostUserPort } from '../native/addon';
import { addon } from '../native/binding';
import type { DeviceStats, Switch } from '../native/switch';
import type { DeviceCounters } from './stats';
import type { VhostUserSpec } from './vhost-options';

/** Each port is its own guest for the switch's fairness; these ids are above every Xen domid. */
export const VHOST_DOMID_BASE = 0x8000;
const VHOST_DOMIDS = 0x7fff;
const TICK_MS = 100;

interface OpenPort {
  spec: VhostUserSpec;
  port: NativeVhostUserPort;
  /** Its fairness group, and how its counters are found in the switch's stats. */
  domid: number;
}

export class VhostPorts {
  private readonly ports: OpenPort[] = [];
  private timer: NodeJS.Timeout | undefined;
  private nextId = 0;

  /** Opens every port (listening ones bind now); throws Error with one sentence, nothing left open. */
  constructor(private readonly sw: Switch, specs: VhostUserSpec[], private readonly log: Logger) {
    try {
      for (const spec of specs) this.open(spec);
    } catch (err) {
      this.close();
      throw err;
    }
    this.tick();
  }

  /** The open ports' specs, in the order they were added. */
  specs(): VhostUserSpec[] {
    return this.ports.map((p) => ({ ...p.spec }));
  }

  /**
   * Adds a port at run time. Throws Error with one sentence (the path already has a port, the
   * socket cannot be listened on, …); nothing is left open then.
   */
  add(spec: VhostUserSpec): void {
    if (this.ports.some((p) => p.spec.path === spec.path)) {
      throw new Error(`A vhost-user port on ${spec.path} exists already: remove it first, or give another path.`);
    }
    this.open(spec);
    this.tick();
  }

  /**
   * Removes the port on `path`: its device leaves the switch, its memory is unmapped, its socket
   * closed (and its file removed when xsw listened on it). False when there is no such port.
   */
  remove(path: string): boolean {
    const i = this.ports.findIndex((p) => p.spec.path === path);
    if (i < 0) return false;
    const [p] = this.ports.splice(i, 1);
    this.drain(p);
    p.port.close();
    this.log.info({ vhostUser: path }, `vhost-user ${path}: port removed; its device left the switch and its memory is unmapped`);
    if (this.ports.length === 0) this.stopTimer();
    return true;
  }

  /** Switch slots held by vhost-user devices (the Xen registry must not count on them). */
  slots(): Set<number> {
    const s = new Set<number>();
    for (const { port } of this.ports) {
      const slot = port.slot();
      if (slot >= 0) s.add(slot);
    }
    return s;
  }

  /**
   * The vhost-user devices' counters, for the stats: each port's device while attached, and its
   * final counters (state "removed") after its peer left, until the switch reuses the slot. A
   * port removed at run time is gone from them.
   */
  counters(devices: DeviceStats[]): DeviceCounters[] {
    const out: DeviceCounters[] = [];
    for (const { spec, domid } of this.ports) {
      const c = devices.find((d) => d.domid === domid);
      if (c) out.push({ ...c, kind: 'vhost-user', path: spec.path });
    }
    return out;
  }

  tick(): void {
    for (const p of this.ports) this.drain(p);
  }

  /** Detaches every device and closes every socket. Idempotent; call before closing the switch. */
  close(): void {
    this.stopTimer();
    for (const { port } of this.ports) port.close();
    this.ports.length = 0;
  }

  private open(spec: VhostUserSpec): void {
    // A fresh fairness id per port, never one a removed port's last counters still carry.
    const used = new Set(this.sw.stats().devices.map((d) => d.domid));
    let domid = VHOST_DOMID_BASE + this.nextId;
    for (let n = 0; n < VHOST_DOMIDS && (used.has(domid) || this.ports.some((p) => p.domid === domid)); n++) {
      this.nextId = (this.nextId + 1) % VHOST_DOMIDS;
      domid = VHOST_DOMID_BASE + this.nextId;
    }
    this.nextId = (this.nextId + 1) % VHOST_DOMIDS;
    const port = new (addon().vhost.VhostUserPort)(this.sw.nativeHandle(), { path: spec.path, client: spec.client, mac: spec.mac, domid });
    this.ports.push({ spec, port, domid });
    if (!this.timer) this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  private drain({ spec, port }: OpenPort): void {
    for (const line of port.tick()) {
      if (line.level === 'warn') this.log.warn({ vhostUser: spec.path }, line.msg);
      else this.log.info({ vhostUser: spec.path }, line.msg);
    }
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
