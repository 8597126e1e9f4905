// The registry of attached devices: which guest device sits in which switch
// slot, what each guest has mapped (and how many pages, per guest and in
// total), the final counters of quarantined devices (until their domain
// goes), and refusal counts. attach() and detach() are
// synchronous so that nothing can interleave between the data plane letting
// go of a device and its pages being unmapped.
//
// Detach order (docs/backend.md, Detach): dataPlane.removeDevice(slot) returns
// only after the data plane let go; then the rings, the flag page and every
// mempool no other device of the guest uses are unmapped.
import { MappedDevice, MapContext, mapDevice, PoolMapping, PublishedDevice, Refusal, regionsOf } from './attach';
import { VLAN_BASE } from './identity';
import { NetworkConfig, networkCounters, NetworkCounters, place, Placement } from './networks';
import { deviceKeys } from '../schema/dpdk';
import type { DataPlane, GrantMapper, SwitchDeviceStats } from './dependencies';
import type { DeviceCounters, StatsSnapshot } from './stats';

export { VLAN_BASE };

export interface Device {
  slot: number;
  domid: number;
  dev: number;
  mac: string;
  /** The VLAN dom0 assigned, else 1000 + slot. */
  vlan: number;
  /** The device's network and its tag on the uplink (backend/networks.ts). */
  placement: Placement;
  /** True when dom0 assigned this device's MAC (schema/assignment.ts). */
  assigned: boolean;
  fingerprint: string;
  mapped: MappedDevice;
  /** Byte 0 of the flag page: 0xA5 while the guest's device lives. */
  flagByte: Uint8Array;
}

interface Guest {
  devices: Map<number, Device>;
  pools: Map<string, PoolMapping>;
  pages: number;
}

export type DetachWhy = 'dead' | 'quarantine' | 'released' | 'stopped' | 'replaced' | 'evicted' | 'shutdown';

export interface RegistryContext {
  grants: GrantMapper;
  decode: MapContext['decode'];
  dataPlane: DataPlane;
  maxPagesPerGuest: number;
  maxDevices: number;
  /** Pages all guests may have mapped together; default: no switch-wide cap. */
  maxPages?: number;
  /** --default-network and --native-vlan (backend/networks.ts). */
  networks?: NetworkConfig;
  /** Switch slots held by other kinds of device (netif), so VLAN 1000 + slot stays unique. */
  reservedSlots?: () => Iterable<number>;
  /** Slots of the switch held by devices this registry does not own (vhost-user ports). */
  slotTaken?: (slot: number) => boolean;
}

export class DeviceRegistry {
  private readonly guests = new Map<number, Guest>();
  private readonly bySlot = new Map<number, Device>();
  /** Final counters of quarantined devices, kept for the stats. */
  private readonly retired: DeviceCounters[] = [];
  /** Refusals by reason code. */
  readonly refused: Record<string, number> = {};
  quarantined = 0;
  /** Attaches and detaches so far (detaches by why), for the metrics. */
  readonly events = { attached: 0, detached: {} as Partial<Record<DetachWhy, number>> };

  constructor(private readonly ctx: RegistryContext) {}

  find(domid: number, dev: number): Device | undefined {
    return this.guests.get(domid)?.devices.get(dev);
  }

  devices(): Device[] {
    return [...this.bySlot.values()];
  }

  domids(): number[] {
    return [...this.guests.keys()];
  }

  /** Pages currently mapped for `domid` (rings, flags, mempools). */
  pagesOf(domid: number): number {
    return this.guests.get(domid)?.pages ?? 0;
  }

  /** Pages currently mapped for all guests. */
  pagesTotal(): number {
    let n = 0;
    for (const g of this.guests.values()) n += g.pages;
    return n;
  }

  /** The attached device that registered `mac`, if any. */
  ownerOf(mac: string): Device | undefined {
    for (const d of this.bySlot.values()) if (d.mac === mac) return d;
    return undefined;
  }

  /** Drops the final counters of `domid`'s quarantined devices (the domain is gone). */
  forgetRetired(domid: number): void {
    this.retired.splice(0, this.retired.length, ...this.retired.filter((r) => r.domid !== domid));
  }

  /** Drops the final counters of one quarantined device (an operator released it). */
  forgetRetiredDevice(domid: number, dev: number): void {
    this.retired.splice(0, this.retired.length, ...this.retired.filter((r) => r.domid !== domid || r.dev !== dev));
  }

  /** Counts a refusal under `code`. */
  countRefusal(code: string): void {
    this.refused[code] = (this.refused[code] ?? 0) + 1;
  }

  /**
   * Maps and registers a published device (which must not be attached).
   * Throws Refusal; on a refusal nothing stays mapped or registered.
   */
  attach(p: PublishedDevice): Device {
    const owner = this.ownerOf(p.mac);
    if (owner) {
      throw new Refusal(
        'mac_taken',
        `${deviceKeys(p.dev).mac} ${p.mac} is already registered by domain ${owner.domid} device ${owner.dev}; each device needs its own MAC`,
      );
    }
    const slot = this.freeSlot();
    if (slot === undefined) {
      throw new Refusal('no_slot', `all ${this.ctx.maxDevices} switch slots are in use (raise --max-devices, at most 64)`);
    }
    const guest = this.guests.get(p.domid) ?? { devices: new Map(), pools: new Map(), pages: 0 };
    const mapped = mapDevice({
      grants: this.ctx.grants,
      decode: this.ctx.decode,
      maxPagesPerGuest: this.ctx.maxPagesPerGuest,
      maxPages: this.ctx.maxPages,
      pagesMapped: this.pagesTotal(),
    }, guest, p);
    const placement = place(p.assigned, slot, this.ctx.networks ?? {});
    const vlan = placement.vlan;
    let switchSlot: number;
    try {
      switchSlot = this.ctx.dataPlane.addDevice({
        domid: p.domid,
        dev: p.dev,
        mac: p.mac,
        vlan: placement.nicTag,
        ...(placement.network !== undefined ? { network: placement.network } : {}),
        ...(p.evtchn !== undefined ? { evtchn: p.evtchn } : {}),
        tx: { addr: mapped.tx.addr, num: mapped.txNum, mapLen: mapped.tx.buffer.byteLength },
        rx: { addr: mapped.rx.addr, num: mapped.rxNum, mapLen: mapped.rx.buffer.byteLength },
        flag: { addr: mapped.flag.addr, mapLen: mapped.flag.buffer.byteLength },
        regions: regionsOf(mapped),
      });
    } catch (err) {
      this.unmapFresh(mapped);
      const e = err as { code?: string; message?: string };
      if (e.code === 'EEXIST') {
        throw new Refusal('mac_taken', `${deviceKeys(p.dev).mac} ${p.mac} is already registered in the switch; each device needs its own MAC`);
      }
      throw new Refusal('switch_refused', `the switch refused the device: ${e.message ?? String(err)}`);
    }
    for (const { pool, fresh } of mapped.pools) {
      if (fresh) guest.pools.set(pool.key, pool);
      pool.users++;
    }
    guest.pages += mapped.pages;
    const device: Device = {
      slot: switchSlot,
      domid: p.domid,
      dev: p.dev,
      mac: p.mac,
      vlan,
      placement,
      assigned: p.assigned.mac !== undefined,
      fingerprint: p.fingerprint,
      mapped,
      flagByte: new Uint8Array(mapped.flag.buffer, 0, 1),
    };
    guest.devices.set(p.dev, device);
    this.guests.set(p.domid, guest);
    this.bySlot.set(switchSlot, device);
    this.retired.splice(0, this.retired.length, ...this.retired.filter((r) => r.domid !== p.domid || r.dev !== p.dev));
    this.events.attached++;
    return device;
  }

  /**
   * Takes a device out of the data plane, then unmaps its pages (and its
   * guest's mempools when no other device uses them). With 'quarantine' its
   * last counters stay in the stats. Idempotent.
   */
  detach(d: Device, why: DetachWhy): void {
    if (this.bySlot.get(d.slot) !== d) return;
    let last: SwitchDeviceStats | undefined;
    if (why === 'quarantine') last = this.ctx.dataPlane.stats().devices.find((s) => s.slot === d.slot);
    this.ctx.dataPlane.removeDevice(d.slot);
    this.bySlot.delete(d.slot);
    this.events.detached[why] = (this.events.detached[why] ?? 0) + 1;
    const guest = this.guests.get(d.domid);
    if (guest) {
      guest.devices.delete(d.dev);
      const { grants } = this.ctx;
      for (const m of [d.mapped.rx, d.mapped.tx, d.mapped.flag]) {
        grants.unmap(m);
        guest.pages -= m.pages;
      }
      for (const { pool } of d.mapped.pools) {
        pool.users--;
        if (pool.users === 0) {
          grants.unmap(pool.mapping);
          guest.pools.delete(pool.key);
          guest.pages -= pool.mapping.pages;
        }
      }
      if (guest.devices.size === 0) this.guests.delete(d.domid);
    }
    if (why === 'quarantine') {
      this.quarantined++;
      this.retired.push({
        ...(last ?? emptyCounters(d)),
        slot: d.slot,
        domid: d.domid,
        dev: d.dev,
        mac: d.mac,
        vlan: d.vlan,
        network: d.placement.network ?? null,
        state: 'quarantined',
      });
    }
  }

  /** Detaches every device of `domid`; returns how many. */
  detachGuest(domid: number, why: DetachWhy): Device[] {
    const devices = [...(this.guests.get(domid)?.devices.values() ?? [])];
    for (const d of devices) this.detach(d, why);
    return devices;
  }

  /** Devices whose flag byte the guest (or its kernel, on exit) has cleared. */
  deadDevices(): Device[] {
    return this.devices().filter((d) => d.flagByte[0] === 0);
  }

  /** The stats: live devices from the data plane, plus quarantined ones, plus refusals. */
  snapshot(): StatsSnapshot & { refused: Record<string, number>; quarantined: number } {
    const s = this.ctx.dataPlane.stats();
    const live: DeviceCounters[] = [];
    for (const c of s.devices) {
      const d = this.bySlot.get(c.slot);
      if (d && d.domid === c.domid && d.dev === c.dev) live.push({ ...c, vlan: d.vlan, network: d.placement.network ?? null });
    }
    live.sort((a, b) => a.slot - b.slot);
    const devices = [...live, ...this.retired];
    const networks: NetworkCounters[] = networkCounters(devices, s.nic.vlans ?? [], this.ctx.networks?.nativeVlan);
    return {
      devices,
      ...(networks.length > 0 ? { networks } : {}),
      nic: { rx: s.nic.rx, tx: s.nic.tx, dropped: s.nic.dropped, drops: s.nic.drops },
      refused: { ...this.refused },
      quarantined: this.quarantined,
      ...(s.threads && s.threads.length > 1 ? { threads: s.threads } : {}),
    };
  }

  private freeSlot(): number | undefined {
    const reserved = new Set(this.ctx.reservedSlots?.() ?? []);
    for (let s = 0; s < this.ctx.maxDevices; s++) if (!this.bySlot.has(s) && !reserved.has(s) && !this.ctx.slotTaken?.(s)) return s;
    return undefined;
  }

  private unmapFresh(m: MappedDevice): void {
    for (const x of [m.rx, m.tx, m.flag]) this.ctx.grants.unmap(x);
    for (const { pool, fresh } of m.pools) if (fresh) this.ctx.grants.unmap(pool.mapping);
  }
}

function emptyCounters(d: Device): DeviceCounters {
  return {
    slot: d.slot, domid: d.domid, dev: d.dev, mac: d.mac, vlan: d.vlan, state: 'quarantined',
    tx_total: 0, tx_dropped: 0, rx_total: 0, rx_dropped: 0, drops: {},
  };
}
