// The narrow interfaces the back end's control plane needs from its
// neighbours: the grant mapper (native/grants.ts), the gref-list decoder
// (native/vring.ts), the data plane (native/switch.ts) and XenStore
// (xenstore/client.ts). The lifecycle code depends only on these, so unit
// tests drive it with in-memory fakes and cli.ts plugs in the real modules.

import type { DeviceSpec, DeviceStats as SwitchDeviceStats, NicStats, SwitchEvent, ThreadStats } from '../native/switch';

// The data plane's own types, re-exported (a type-only import: no addon load).
export type { DeviceSpec, SwitchDeviceStats, NicStats, SwitchEvent };

/** One contiguous mapping of a guest's pages (native/grants.ts). */
export interface Mapping {
  id: number;
  pages: number;
  buffer: ArrayBuffer;
  addr: bigint;
}

export interface GrantMapper {
  /** Maps all of `grefs` of `domid` as one contiguous range. Throws on an ungranted/reserved ref. */
  map(domid: number, grefs: number[], opts: { writable: boolean }): Mapping;
  unmap(m: Mapping): void;
}

/** Decodes gref-list pages (copied once, natively): the data refs, or why not. */
export type GrefListDecoder = (buffer: ArrayBuffer, maxEntries: number) => { refs: number[] } | { reason: string };

export interface DataPlane {
  /** Registers a device; returns its slot. Throws with .code 'EEXIST' for a MAC already registered. */
  addDevice(spec: DeviceSpec): number;
  /** Returns after the data plane has let go of the device's memory. */
  removeDevice(slot: number): void;
  /** threads: per data thread, from a switch with --cores (absent in fakes). */
  stats(): { devices: SwitchDeviceStats[]; nic: NicStats; threads?: ThreadStats[] };
  events(): SwitchEvent[];
  /** True if a frame from the NIC lately carried `mac` as its source (a host on the LAN uses it). */
  nicMacSeen(mac: string): boolean;
  /** Slots whose guest's event channel is bound (absent: a data plane without wake-ups). */
  wakeups?(): { bound: number[] };
  /** Poll loops the data plane has run; unchanged while its thread sleeps (absent: always treated as busy). */
  loops?(): number;
}

export type Perm = string; // 'n0', 'b3', … (XenStore permission strings)

/** The XenStore operations the back end uses (xenstore/client.ts). */
export interface Store {
  /** The value, or undefined when the node does not exist. */
  tryRead(path: string): Promise<string | undefined>;
  write(path: string, value: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  directory(path: string): Promise<string[]>;
  setPerms(path: string, perms: Perm[]): Promise<void>;
}
