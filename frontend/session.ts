// One xsw-front process's presence in XenStore and in granted memory: it
// finds the guest, checks control/dpdk, clears its stale keys, then hands out
// mempool indexes (M) and device indexes (V) from independent counters, as
// DPDK's process-global counters did, publishes each device, and takes it all
// back on close. Used by the CLI and by the JS API (frontend/api.ts).
import type { Logger } from 'pino';
import { NativeDevice, NativePool, openDevice, openPool, PoolInfo } from '../native/front';
import { deviceEntries, Entry, mempoolEntries } from '../schema/dpdk';
import { XenStoreClient } from '../xenstore/client';
import { FrontError } from './errors';
import { formatMac } from './mac';
import { checkDpdkNode, clearStaleKeys, findSelf, removeKeys, Self, writeKeys, XenStore } from './publish';

export interface SessionOptions {
  /** Grant platform: auto (default: xen when /dev/xen/gntalloc exists, else sim), xen or sim. */
  platform?: 'auto' | 'xen' | 'sim';
  /** sim only: the state directory (default XSW_SIM_DIR). */
  simDir?: string;
  /** A XenStore connection to use (default: XenStoreClient.connect()). */
  xenstore?: XenStoreClient;
  logger?: Logger;
}

export interface PoolHandle {
  index: number;
  native: NativePool;
  info: PoolInfo;
  keys: string[];
}

export interface DeviceHandle {
  index: number;
  mac: Buffer;
  native: NativeDevice;
  pool: PoolHandle;
  keys: string[];
  published: boolean;
}

export interface DeviceSpec {
  mac: Buffer;
  ringSize?: number;
  nbBufs: number;
  maxPktLen?: number;
  /** Offer the back end an event channel (default true); false: a polled device. */
  notify?: boolean;
}

function grantError(err: unknown): Error {
  const e = err as { code?: string; message?: string };
  // The native layer's sentences already name the thing and the fix.
  if (typeof e?.code === 'string' && typeof e.message === 'string') return new FrontError(e.message, e.code);
  return err as Error;
}

export class FrontSession {
  private nextPool = 0;
  private nextDevice = 0;
  private readonly pools: PoolHandle[] = [];
  private readonly devices: DeviceHandle[] = [];
  private closed = false;

  private constructor(
    readonly xs: XenStoreClient,
    private readonly ownsXs: boolean,
    readonly self: Self,
    private readonly opts: SessionOptions,
  ) {}

  /** Connects, finds this guest, checks control/dpdk and clears the keys a previous run left. */
  static async open(opts: SessionOptions = {}): Promise<FrontSession> {
    let xs = opts.xenstore;
    if (!xs) {
      try {
        xs = await XenStoreClient.connect();
      } catch (err) {
        throw new FrontError(
          `cannot reach XenStore (${(err as Error).message}): run xsw-front inside a Xen guest (with /dev/xen/xenbus), or set XENSTORED_PATH (the simulation's 'xsw-sim exec' does)`,
          'ENOENT',
        );
      }
    }
    try {
      const self = await findSelf(xs);
      await checkDpdkNode(xs, self);
      const stale = await clearStaleKeys(xs, self);
      if (stale.length > 0) opts.logger?.info({ keys: stale }, 'removed stale keys from control/dpdk');
      return new FrontSession(xs, !opts.xenstore, self, opts);
    } catch (err) {
      if (!opts.xenstore) xs.close();
      throw err;
    }
  }

  get domid(): number {
    return this.self.domid;
  }

  /** Allocates and grants a mempool, then writes M_mempool_gref and M_mempool_va. */
  async addPool(nbMbuf: number): Promise<PoolHandle> {
    let native: NativePool;
    try {
      native = openPool({
        platform: this.opts.platform ?? 'auto',
        simDir: this.opts.simDir,
        domid: this.self.domid,
        nbMbuf,
      });
    } catch (err) {
      throw grantError(err);
    }
    const info = native.info();
    const index = this.nextPool++;
    const keys = mempoolEntries(index, info);
    const pool: PoolHandle = { index, native, info, keys: keys.map(([k]) => k) };
    this.pools.push(pool);
    await writeKeys(this.xs, this.self, keys);
    this.opts.logger?.info({ pool: index, nbMbuf, pages: info.pages, va: info.va, platform: info.platform }, 'mempool granted');
    return pool;
  }

  /** Allocates and grants a device's rings and flag page (not yet announced). */
  addDevice(pool: PoolHandle, spec: DeviceSpec): DeviceHandle {
    let native: NativeDevice;
    try {
      native = openDevice(pool.native, {
        mac: spec.mac, ringSize: spec.ringSize, nbBufs: spec.nbBufs, maxPktLen: spec.maxPktLen, events: spec.notify ?? true,
      });
    } catch (err) {
      throw grantError(err);
    }
    const dev: DeviceHandle = { index: this.nextDevice++, mac: spec.mac, native, pool, keys: [], published: false };
    this.devices.push(dev);
    return dev;
  }

  /**
   * Fills the RX ring and raises the flag byte, then writes the device's keys
   * in the guide's order, `event_type_start_V = 1` last.
   */
  async publish(dev: DeviceHandle): Promise<void> {
    dev.native.setLive(true);
    const info = dev.native.info();
    const keys: Entry[] = deviceEntries(dev.index, { ...info, mac: formatMac(dev.mac) });
    dev.keys = keys.map(([k]) => k);
    await writeKeys(this.xs, this.self, keys);
    dev.published = true;
    this.opts.logger?.info(
      { dev: dev.index, mac: formatMac(dev.mac), rxPosted: info.rxPosted, flagGref: info.flagGref },
      'device published',
    );
  }

  /** Stops the device's engine, drops its flag to 0, removes its keys and frees its grants. */
  async removeDevice(dev: DeviceHandle): Promise<void> {
    const at = this.devices.indexOf(dev);
    if (at < 0) return;
    this.devices.splice(at, 1);
    dev.native.stop();
    dev.native.setLive(false);
    try {
      if (dev.keys.length > 0) await removeKeys(this.xs, dev.keys);
    } finally {
      dev.native.close();
    }
  }

  /** Removes a mempool's keys and drops it (its memory goes when its last device closes). */
  async removePool(pool: PoolHandle): Promise<void> {
    const at = this.pools.indexOf(pool);
    if (at < 0) return;
    this.pools.splice(at, 1);
    try {
      await removeKeys(this.xs, pool.keys);
    } finally {
      pool.native.close();
    }
  }

  /** Removes every device and pool (keys and grants) and closes the connection it opened. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const dev of this.devices) {
      dev.native.stop();
      dev.native.setLive(false);
    }
    let firstError: unknown;
    for (const dev of [...this.devices]) {
      await this.removeDevice(dev).catch((err) => (firstError ??= err));
    }
    for (const pool of this.pools.splice(0)) {
      await removeKeys(this.xs, pool.keys).catch((err) => (firstError ??= err));
      pool.native.close();
    }
    if (this.ownsXs) this.xs.close();
    if (firstError) throw firstError;
  }

  /** The live devices, in index order. */
  list(): readonly DeviceHandle[] {
    return this.devices;
  }
}

export type { XenStore };
