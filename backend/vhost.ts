// The back end's vhost-user ports (--vhost-user): one native port per
// socket (native/vhost/, addon.vhost), attached to the same switch as the
// Xen devices. The native side handles the socket on this thread's event
// loop; this module ticks the ports (client reconnects, MAC learning,
// quarantine), logs what they report, and gives their counters to the stats
// with "kind": "vhost-user".
import type { Logger } from 'pino';
import type { NativeVhostUserPort } from '../native/addon';
import { addon } from '../native/binding';
import type { DeviceStats, Switch } from '../native/switch';
import type { DeviceCounters } from './stats';
import type { VhostUserSpec } from './vhost-options';

/** Each port is its own guest for the switch's fairness; these ids are above every Xen domid. */
export const VHOST_DOMID_BASE = 0x8000;
const TICK_MS = 100;

export class VhostPorts {
  private readonly ports: { spec: VhostUserSpec; port: NativeVhostUserPort }[] = [];
  private timer: NodeJS.Timeout | undefined;

  /** Opens every port (listening ones bind now); throws Error with one sentence, nothing left open. */
  constructor(sw: Switch, specs: VhostUserSpec[], private readonly log: Logger) {
    try {
      specs.forEach((spec, i) => {
        const port = new (addon().vhost.VhostUserPort)(sw.nativeHandle(), { path: spec.path, client: spec.client, mac: spec.mac, domid: VHOST_DOMID_BASE + i });
        this.ports.push({ spec, port });
      });
    } catch (err) {
      this.close();
      throw err;
    }
    this.tick();
    if (this.ports.length > 0) this.timer = setInterval(() => this.tick(), TICK_MS);
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
   * final counters (state "removed") after its peer left, until the switch reuses the slot.
   */
  counters(devices: DeviceStats[]): DeviceCounters[] {
    const out: DeviceCounters[] = [];
    this.ports.forEach(({ spec }, i) => {
      const c = devices.find((d) => d.domid === VHOST_DOMID_BASE + i);
      if (c) out.push({ ...c, kind: 'vhost-user', path: spec.path });
    });
    return out;
  }

  tick(): void {
    for (const { spec, port } of this.ports) {
      for (const line of port.tick()) {
        if (line.level === 'warn') this.log.warn({ vhostUser: spec.path }, line.msg);
        else this.log.info({ vhostUser: spec.path }, line.msg);
      }
    }
  }

  /** Detaches every device and closes every socket. Idempotent; call before closing the switch. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const { port } of this.ports) port.close();
    this.ports.length = 0;
  }
}
