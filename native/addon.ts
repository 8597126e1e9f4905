// The shape of the product addon, build/Release/xsw.node: its exports grouped
// by concern, one group per C++ layer's N-API surface (native/napi/*_napi.cc,
// each registering one group). native/binding.ts loads the addon as this
// type; the rest of the code uses the typed wrappers beside it (abi.ts,
// grants.ts, vring.ts, switch.ts, front.ts) rather than the addon itself.
// test/addon-exports.test.ts checks the addon exports exactly these names.
//
// Errors thrown by the addon carry `code` (an errno name such as 'ENOSPC')
// and `errno` (its number), and one sentence naming the thing and the fix;
// a bad argument is a TypeError or RangeError naming the argument.
import type { DeviceOptions, NativeDevice, NativePool, PoolOptions } from './front';
import type { GrantAllocation, GrantMapping, Platform } from './grants';
import type { DeviceSpec, DeviceStats, NicStats, ProbeFrame, SwitchEvent, ThreadStats } from './switch';
import type { GrefListDecode, Memory, MempoolLayout, RegionSpec, RingDirection, VringDevice, VringDriver, ViolationName } from './vring';

/** addon.abi: the C++ side's sizes and offsets of native/abi/abi.h (test/abi.test.ts compares them with abi.ts). */
export interface AbiAddon {
  layout: AbiLayout;
  vringLayout(num: number): { avail: number; used: number; size: number; pages: number };
}

export interface AbiLayout {
  pageSize: number;
  grantEntrySize: number;
  grantEntryFlags: number;
  grantEntryDomid: number;
  grantEntryFrame: number;
  GTF_permit_access: number;
  GTF_readonly: number;
  GTF_reading: number;
  GTF_writing: number;
  reservedRefs: number;
  grefItemSize: number;
  grefItemPfn: number;
  grefItemsPerPage: number;
  maxGrefListPages: number;
  descSize: number;
  descLen: number;
  descFlags: number;
  descNext: number;
  availIdx: number;
  availRing: number;
  usedIdx: number;
  usedRing: number;
  usedElemSize: number;
  vringAlign: number;
  availOffset256: number;
  usedOffset256: number;
  vringSize256: number;
  virtioNetHdrLen: number;
  vringFlagLive: number;
}

/** addon.grant: the grant layer (native/grant/), wrapped by grants.ts. */
export interface GrantAddon {
  NativeGrants: new (opts?: NativeGrantsOptions) => NativeGrants;
  open(opts?: NativeGrantsOptions): NativeGrants;
  detectPlatform(): Platform;
  defaultSimDir(): string;
  /** gntallocLimit undefined or 0 keeps the configured limit. */
  simInit(dir: string, gntallocLimit?: number): void;
  simDestroyDomain(dir: string, domid: number): void;
  /** The gntalloc/gntdev uapi's ioctl numbers and struct sizes as the build saw them. */
  xenUapi: Record<string, number>;
}

export interface NativeGrantsOptions {
  platform?: 'auto' | Platform;
  simDir?: string;
  domid?: number;
}

export interface NativeGrants {
  readonly platform: Platform;
  alloc(toDomid: number, pages: number, writable: boolean): GrantAllocation;
  free(id: number): void;
  setUnmapNotify(id: number, byteOffset: number): void;
  map(fromDomid: number, grefs: Uint32Array | readonly number[], writable: boolean): GrantMapping;
  unmap(id: number): void;
  close(): void;
}

/** addon.shm: vrings, gref lists, mempool layout and regions (native/shm/), wrapped by vring.ts. */
export interface ShmAddon {
  VringDriver: new (mem: Memory, num: number) => VringDriver;
  VringDevice: new (mem: Memory, num: number, regions: RegionSpec[], maxChainLen: number, direction?: RingDirection) => VringDevice;
  /** Index = violation code; [0] is "none" (native/shm/violation.h). */
  violationNames: readonly string[];
  grefListPages(entries: number): number;
  encodeGrefList(grefs: Uint32Array, pfns: Uint32Array | null, nPages?: number): Buffer;
  decodeGrefList(pages: Buffer, maxEntries: number): GrefListDecode;
  mempoolLayout(nbMbuf: number, bufSize?: number, withOffsets?: boolean): MempoolLayout | null;
  regionTranslate(regions: RegionSpec[], gva: bigint, len: number | bigint, forWrite: boolean): { hva: bigint | null; violation: ViolationName | null };
}

/** addon.switch: the back end's switch and NIC ports (native/switch/), wrapped by switch.ts. */
export interface SwitchAddon {
  NativeSwitch: new (opts: NativeSwitchOptions) => NativeSwitch;
  NicPortProbe: new (port: string, mtu: number) => NativeNicPortProbe;
  /** Every drop counter name, index = counter ([0] is "none"): native/switch/drops.h. */
  dropNames: readonly string[];
}

export interface NativeSwitchOptions {
  vm2vm: boolean;
  busy: boolean;
  /** Sleep on the devices' wake-ups after one idle loop instead of 64. */
  interrupt?: boolean;
  mtu: number;
  maxDevices: number;
  port?: string;
  /** One data thread per CPU id, pinned there; absent: one thread, not pinned. */
  cores?: number[];
  /** Open this platform's event channels (guests' ports are bound there). */
  events?: { platform: string; simDir?: string };
}

/** How the data thread sleeps (NativeSwitch.wakeups()). */
export interface SwitchWakeups {
  /** The event channels opened, or null (none asked for, or they could not be opened: `error`). */
  events: 'sim' | 'xen' | null;
  error?: string;
  /** Times the data thread went to sleep. */
  sleeps: number;
  /** Slots whose guest's event channel is bound (the others are polled). */
  bound: number[];
}

export interface NativeSwitch {
  start(): void;
  stop(): void;
  addDevice(spec: DeviceSpec): number;
  removeDevice(slot: number): void;
  stats(): { devices: DeviceStats[]; nic: NicStats; threads: ThreadStats[] };
  events(): SwitchEvent[];
  pollOnce(thread?: number): number;
  /** Whether a frame from the NIC had this source MAC within the last maxAgeS seconds. */
  nicMacSeen(mac: string, maxAgeS: number): boolean;
  close(): void;
  /** Live capture: ports are slots, -1 the NIC; returns the session's id. */
  captureStart(ports: number[], snaplen: number, slots: number): number;
  captureStop(id: number): void;
  captureRead(id: number, maxBytes: number, maxRecords: number): CaptureChunk;
  /** Poll loops run so far. */
  loops(): number;
  wakeups(): SwitchWakeups;
}

/** What one captureRead drained: pcapng Enhanced Packet Blocks, and the session's counters. */
export interface CaptureChunk {
  blocks: Buffer;
  records: number;
  captured: number;
  dropped: number;
}

export interface NativeNicPortProbe {
  send(frame: Buffer): boolean;
  recv(): ProbeFrame[];
  close(): void;
}

/** addon.front: the guest's devices (native/pmd/), wrapped by front.ts. */
export interface FrontAddon {
  FrontPool: new (opts: PoolOptions) => NativePool;
  FrontDevice: new (pool: NativePool, opts: DeviceOptions) => NativeDevice;
}

/** addon.testing: memory for tests and tools, never used by the data planes. */
export interface TestingAddon {
  /** Maps a file (created and grown as needed) shared and read-write. */
  mapSharedFile(path: string, bytes: number): { buffer: Buffer; addr: bigint };
  bufferAddress(view: ArrayBufferView): bigint;
  /** Page-aligned anonymous shared pages, as a guest's granted pages would be. */
  allocPages(pages: number): { buffer: ArrayBuffer; addr: bigint };
  /** Detaches the buffer, then unmaps its pages. */
  unmapPages(buffer: ArrayBuffer): void;
}

/** addon.vhost: vhost-user ports of the back end's switch (native/vhost/), wrapped by backend/vhost.ts. */
export interface VhostAddon {
  VhostUserPort: new (sw: NativeSwitch, opts: { path: string; client: boolean; mac?: string; domid: number }) => NativeVhostUserPort;
}

export interface NativeVhostUserPort {
  /** Periodic work (reconnects, MAC learning, quarantine) and the log lines since the last call. */
  tick(): { level: 'info' | 'warn'; msg: string }[];
  /** The attached device's switch slot, or -1. */
  slot(): number;
  /** Detaches the device, closes the socket (a listening one's file is removed). */
  close(): void;
}

export interface LockAddon {
  /** The fd holding an flock on path, or -1 when another process holds it (native/common/file_lock.h). */
  lockFileExclusive(path: string): number;
}

/** Platform selection shared by the netif objects (sim: `simDir`, and `self`, this process's domid). */
export interface NetifPlatformOptions {
  platform?: 'auto' | 'xen' | 'sim';
  simDir?: string;
  self?: number;
}

export interface NativeVifOptions extends NetifPlatformOptions {
  domid: number;
  devid: number;
  txRingRef: number;
  rxRingRef: number;
  txEvtchn: number;
  rxEvtchn: number;
  maxFrame?: number;
  busy?: boolean;
}

/** One vif's engine (native/netif/engine.h). */
export interface NativeVif {
  /** The local device to hand to the switch (addresses in this process). */
  local(): { txRing: bigint; rxRing: bigint; ringSize: number; ringLen: number; flag: bigint; pool: bigint; poolLen: number };
  start(): void;
  /** 'none', or the quarantine reason (tx_req_overflow, tx_too_many_slots, …). */
  fault(): string;
  counters(): Record<string, number>;
  /** Stops, unbinds, unmaps: only after the switch let go of the device. */
  close(): void;
}

/** Event channels (native/grant/evtchn.h). */
export interface NativeEventChannels {
  allocateUnbound(remoteDomid: number): number;
  bindInterdomain(remoteDomid: number, remotePort: number): number;
  unbind(port: number): void;
  notify(port: number): boolean;
  pending(): number[];
  unmask(port: number): void;
  close(): void;
}

/** addon.netif: the netif (vif) back end's engine and event channels. */
export interface NetifAddon {
  NativeVif: new (opts: NativeVifOptions) => NativeVif;
  NativeEventChannels: new (opts?: NetifPlatformOptions) => NativeEventChannels;
}

export interface Addon {
  abi: AbiAddon;
  lock: LockAddon;
  grant: GrantAddon;
  shm: ShmAddon;
  switch: SwitchAddon;
  front: FrontAddon;
  testing: TestingAddon;
  netif: NetifAddon;
  vhost: VhostAddon;
}
