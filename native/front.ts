// Typed view of the front end's N-API surface (addon.front,
// native/napi/front_napi.cc over native/pmd/): the granted mempool, devices
// with their rings, flag page and PMD, the engine thread, and the JS batch
// API. frontend/ builds on this.
import { addon } from './binding';

export type FwdMode = 'io' | 'mac' | 'macswap' | 'rxonly' | 'txonly' | 'tap';
export const FWD_MODES: readonly FwdMode[] = ['io', 'mac', 'macswap', 'rxonly', 'txonly', 'tap'];
export type PollMode = 'busy' | 'adaptive' | 'interrupt';

export interface PoolOptions {
  platform?: 'auto' | 'xen' | 'sim';
  /** sim only: the state directory (default XSW_SIM_DIR). */
  simDir?: string;
  /** sim only: the domain this process plays. */
  domid?: number;
  nbMbuf: number;
  /** Who may map the pages; dom0 unless a driver domain runs the back end. */
  backendDomid?: number;
}

export interface PoolInfo {
  /** M_mempool_va: "0x" + lower-case hex. */
  va: string;
  /** M_mempool_gref: the gref-list pages' grefs, comma-separated. */
  gref: string;
  pages: number;
  nbMbuf: number;
  unassigned: number;
  platform: 'xen' | 'sim';
}

export interface NativePool {
  info(): PoolInfo;
  /** Devices opened on it keep the memory until they close. */
  close(): void;
}

export interface DeviceOptions {
  mac: Buffer;
  ringSize?: number;
  /** This device's share of the pool's mbufs. */
  nbBufs: number;
  maxPktLen?: number;
  backendDomid?: number;
  /** Offer the back end an event channel (default true); false: a polled device, as DPDK's front end. */
  events?: boolean;
}

export interface DeviceInfo {
  txGref: string;
  rxGref: string;
  flagGref: number;
  rxPosted: number;
  rxSegs: number;
  maxPktLen: number;
  platform: 'xen' | 'sim';
  /** The event channel port offered to the back end (V_event_channel); absent: none (polled). */
  evtchn?: number;
}

export interface EngineOptions {
  mode: FwdMode;
  poll?: PollMode;
  burst?: number;
  peer?: Buffer;
  txpkts?: number;
  rate?: number;
  count?: number;
  verify?: boolean;
  /** tap mode: the TAP interface to create or attach to. */
  tap?: string;
}

/** Per-device counters, read in one call. */
export interface DeviceStats {
  rx_packets: number;
  rx_bytes: number;
  rx_dropped: number;
  tx_packets: number;
  tx_bytes: number;
  tx_dropped: number;
  rx_nombuf: number;
  rx_bad: number;
  rx_out_of_order: number;
  tx_done: number;
}

export interface NativeDevice {
  info(): DeviceInfo;
  /** true: fill the RX ring (unless the engine runs: it did), then write 0xA5 to the flag byte; false: write 0. */
  setLive(live: boolean): void;
  flag(): number;
  /** Up to max (<= 32) received frames, copied out. Throws EBUSY while an engine runs. */
  rxBurst(max?: number): Buffer[];
  /** Queues up to 32 frames; returns how many the TX ring took. Throws EBUSY while an engine runs. */
  txBurst(frames: Buffer[]): number;
  start(opts: EngineOptions): void;
  stop(): void;
  running(): boolean;
  stats(): DeviceStats;
  /** Stops the engine, clears the flag byte, releases the rings and the TAP. */
  close(): void;
}

/** Allocates and grants the mempool. Errors carry .code (ENOSPC at the gntalloc limit). */
export function openPool(opts: PoolOptions): NativePool {
  return new (addon().front.FrontPool)(opts);
}

/** Allocates and grants a device's rings and flag page, and takes its share of the pool. */
export function openDevice(pool: NativePool, opts: DeviceOptions): NativeDevice {
  return new (addon().front.FrontDevice)(pool, opts);
}
