// The JS API for applications that want packets in JavaScript: open a device
// (published exactly like xsw-front does it, but without an engine thread),
// move batches with rxBurst/txBurst (one native call per batch), close.
//
//   const dev = await FrontDevice.open({ mac: '00:16:3e:00:00:01' });
//   const frames = dev.rxBurst();        // up to 32 Buffers, copied out
//   dev.txBurst(frames);                 // how many the TX ring took
//   await dev.close();
//
// All devices of one process share one XenStore session, so their indexes
// count from 0 and the first open clears the keys a previous run left.
import type { Logger } from 'pino';
import type { DeviceStats } from '../native/front';
import { FrontError } from './errors';
import { formatMac, parseDeviceMac } from './mac';
import { DeviceHandle, FrontSession, PoolHandle, SessionOptions } from './session';

export interface FrontDeviceOptions {
  mac: string;
  /** Entries per ring, a power of two (default 256). */
  ringSize?: number;
  /** Mbufs of this device's own mempool (default 8192). */
  nbMbuf?: number;
  /** Largest frame to receive; above 2048, RX chains span several buffers. */
  maxPktLen?: number;
  platform?: SessionOptions['platform'];
  simDir?: string;
  logger?: Logger;
}

let shared: { session: Promise<FrontSession>; users: number } | undefined;

async function acquireSession(opts: SessionOptions): Promise<FrontSession> {
  if (!shared) {
    const entry = { session: FrontSession.open(opts), users: 0 };
    shared = entry;
    entry.session.catch(() => {
      if (shared === entry) shared = undefined;
    });
  }
  shared.users++;
  try {
    return await shared.session;
  } catch (err) {
    shared = undefined;
    throw err;
  }
}

async function releaseSession(): Promise<void> {
  if (!shared) return;
  if (--shared.users > 0) return;
  const session = await shared.session;
  shared = undefined;
  await session.close();
}

export class FrontDevice {
  private closed = false;

  private constructor(
    private readonly session: FrontSession,
    private readonly pool: PoolHandle,
    private readonly dev: DeviceHandle,
  ) {}

  /** Grants a mempool and the device's rings, fills the RX ring and publishes the device. */
  static async open(opts: FrontDeviceOptions): Promise<FrontDevice> {
    const mac = parseDeviceMac(opts.mac);
    const nbMbuf = opts.nbMbuf ?? 8192;
    if (!Number.isInteger(nbMbuf) || nbMbuf < 1) throw new FrontError(`nbMbuf ${nbMbuf} is not a positive integer: use e.g. 8192`);
    const session = await acquireSession({ platform: opts.platform, simDir: opts.simDir, logger: opts.logger });
    let pool: PoolHandle | undefined;
    try {
      pool = await session.addPool(nbMbuf);
      const dev = session.addDevice(pool, { mac, ringSize: opts.ringSize, nbBufs: nbMbuf, maxPktLen: opts.maxPktLen });
      await session.publish(dev);
      return new FrontDevice(session, pool, dev);
    } catch (err) {
      for (const d of session.list().filter((d) => d.pool === pool)) await session.removeDevice(d).catch(() => undefined);
      if (pool) await session.removePool(pool).catch(() => undefined);
      await releaseSession().catch(() => undefined);
      throw err;
    }
  }

  /** The device index V of its XenStore keys. */
  get index(): number {
    return this.dev.index;
  }

  /** The mempool index M of its XenStore keys. */
  get poolIndex(): number {
    return this.pool.index;
  }

  get mac(): string {
    return formatMac(this.dev.mac);
  }

  get domid(): number {
    return this.session.domid;
  }

  /** Up to `max` (<= 32) received frames, each copied into its own Buffer. */
  rxBurst(max = 32): Buffer[] {
    this.check();
    return this.dev.native.rxBurst(max);
  }

  /** Queues up to 32 frames (14 bytes to the max packet length); returns how many the TX ring took. */
  txBurst(frames: Buffer[]): number {
    this.check();
    return this.dev.native.txBurst(frames);
  }

  stats(): DeviceStats {
    this.check();
    return this.dev.native.stats();
  }

  /** Drops the flag byte to 0, removes the device's keys and releases its grants. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.session.removeDevice(this.dev);
      await this.session.removePool(this.pool);
    } finally {
      await releaseSession();
    }
  }

  private check(): void {
    if (this.closed) throw new FrontError('this FrontDevice is closed: open a new one with FrontDevice.open()', 'EBADF');
  }
}
