// The grant layer for TypeScript: allocate and grant pages (gntalloc), map
// another domain's grants (gntdev), on real Xen or on the simulated platform.
//
// `buffer` is an external ArrayBuffer over the mapping itself; it is detached
// when the allocation is freed or the mapping unmapped, so JS can never touch
// released memory. Native modules take `addr` (+ pages * PAGE_SIZE) instead.
import type { NativeGrants } from './addon';
import { addon } from './binding';

export type Platform = 'xen' | 'sim';

export interface GrantAllocation {
  id: number;
  grefs: number[];
  pfns: number[];
  pages: number;
  buffer: ArrayBuffer;
  addr: bigint;
}

export interface GrantMapping {
  id: number;
  pages: number;
  buffer: ArrayBuffer;
  addr: bigint;
}

export interface GrantsOpenOptions {
  /** Default: env XSW_PLATFORM, else 'auto' (xen when /dev/xen/gntalloc or gntdev exists). */
  platform?: 'auto' | Platform;
  /** sim only: the state directory. Default: env XSW_SIM_DIR, else defaultSimDir(). */
  simDir?: string;
  /** sim only: the domain this process plays. Default: env XSW_SIM_DOMID, else 0 (dom0). */
  domid?: number;
}

// Each buffer keeps its native owner alive: the native object's finalizer
// unmaps everything, so it must not run while any buffer is reachable.
const owners = new WeakMap<ArrayBuffer, NativeGrants>();

const MAX_DOMID = 0x7fef;

function checkDomid(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_DOMID) {
    throw new RangeError(`Expected ${name} to be a domain id from 0 to ${MAX_DOMID}, got ${String(v)}`);
  }
  return v;
}

function handleId(what: string, v: { id: number } | number): number {
  const id = typeof v === 'number' ? v : v?.id;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 1) {
    throw new TypeError(`Expected a ${what} (or its id) from this Grants object`);
  }
  return id;
}

function envDomid(): number {
  const raw = process.env.XSW_SIM_DOMID;
  if (raw === undefined || raw === '') return 0;
  if (!/^\d+$/.test(raw) || Number(raw) > MAX_DOMID) {
    throw new RangeError(`XSW_SIM_DOMID must be a domain id from 0 to ${MAX_DOMID}, got '${raw}'`);
  }
  return Number(raw);
}

function envPlatform(): 'auto' | Platform {
  const raw = process.env.XSW_PLATFORM;
  if (raw === undefined || raw === '') return 'auto';
  if (raw !== 'auto' && raw !== 'xen' && raw !== 'sim') {
    throw new RangeError(`XSW_PLATFORM must be auto, xen or sim, got '${raw}'`);
  }
  return raw;
}

export class Grants {
  readonly platform: Platform;
  private native: NativeGrants | undefined;

  private constructor(native: NativeGrants) {
    this.native = native;
    this.platform = native.platform;
  }

  static open(opts: GrantsOpenOptions = {}): Grants {
    const platform = opts.platform ?? envPlatform();
    if (platform !== 'auto' && platform !== 'xen' && platform !== 'sim') {
      throw new RangeError(`Expected platform to be auto, xen or sim, got '${String(platform)}'`);
    }
    const domid = opts.domid === undefined ? envDomid() : checkDomid('domid', opts.domid);
    const native = addon().grant.open({ platform, simDir: opts.simDir, domid });
    return new Grants(native);
  }

  private get n(): NativeGrants {
    if (!this.native) throw new Error('this Grants object is closed: open a new one with Grants.open()');
    return this.native;
  }

  /** gntalloc: `pages` zeroed pages granted to `toDomid` (writable unless `writable: false`). */
  alloc(toDomid: number, pages: number, opts: { writable?: boolean } = {}): GrantAllocation {
    checkDomid('toDomid', toDomid);
    if (!Number.isInteger(pages) || pages < 1) throw new RangeError(`Expected pages to be a positive integer, got ${pages}`);
    const a = this.n.alloc(toDomid, pages, opts.writable ?? true);
    owners.set(a.buffer, this.n);
    return a;
  }

  /** Ends the grants and unmaps locally; a page the peer still maps is released at its unmap. */
  free(a: GrantAllocation | number): void {
    this.n.free(handleId('GrantAllocation', a));
  }

  /** UNMAP_NOTIFY_CLEAR_BYTE: the byte is set to 0 when the grant ends, process death included. */
  setUnmapNotify(a: GrantAllocation | number, byteOffset: number): void {
    if (!Number.isInteger(byteOffset) || byteOffset < 0) {
      throw new RangeError(`Expected byteOffset to be a non-negative integer, got ${byteOffset}`);
    }
    this.n.setUnmapNotify(handleId('GrantAllocation', a), byteOffset);
  }

  /** gntdev: maps every gref of `fromDomid` as one contiguous mapping, or none. */
  map(fromDomid: number, grefs: readonly number[] | Uint32Array, opts: { writable?: boolean } = {}): GrantMapping {
    checkDomid('fromDomid', fromDomid);
    if (grefs.length === 0) throw new RangeError('Expected at least one gref to map');
    let refs: Uint32Array;
    if (grefs instanceof Uint32Array) {
      refs = grefs;
    } else {
      for (const g of grefs) {
        if (!Number.isInteger(g) || g < 0 || g > 0xffffffff) throw new RangeError(`Expected grefs to be unsigned 32-bit integers, got ${g}`);
      }
      refs = Uint32Array.from(grefs);
    }
    const m = this.n.map(fromDomid, refs, opts.writable ?? true);
    owners.set(m.buffer, this.n);
    return m;
  }

  /** munmap, then release the grant mapping. */
  unmap(m: GrantMapping | number): void {
    this.n.unmap(handleId('GrantMapping', m));
  }

  /** Frees and unmaps everything still held; the object is unusable afterwards. */
  close(): void {
    if (!this.native) return;
    this.native.close();
    this.native = undefined;
  }
}

export function detectPlatform(): Platform {
  return addon().grant.detectPlatform();
}

/** Creates the sim directory; `gntallocLimit` sets the per-domain page limit (default 1024). */
export function simInit(dir: string, opts: { gntallocLimit?: number } = {}): void {
  const limit = opts.gntallocLimit;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new RangeError(`Expected gntallocLimit to be a positive integer, got ${limit}`);
  }
  addon().grant.simInit(dir, limit);
}

/** The hypervisor destroying a domain; call it after killing the domain's processes. */
export function simDestroyDomain(dir: string, domid: number): void {
  addon().grant.simDestroyDomain(dir, checkDomid('domid', domid));
}

/** Where the sim keeps its state when neither an option nor XSW_SIM_DIR says otherwise. */
export function defaultSimDir(): string {
  return addon().grant.defaultSimDir();
}
