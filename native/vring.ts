// Typed view of the vring, gref-list, mempool and region bindings
// (addon.shm, native/napi/shm_napi.cc, and the test memory of addon.testing).
// For tests and tools: the data planes drive the C++ classes from their own
// threads, not through JS.
import { addon } from './binding';

/**
 * Stable names of ring violations, in code order after "none" (native/shm/violation.h's table;
 * test/native-names.test.ts checks this list against the addon's, both ways). Stats keys and
 * log words.
 */
export const VIOLATION_NAMES = [
  'avail_idx_jump',
  'desc_index',
  'chain_loop',
  'chain_too_long',
  'addr_outside_region',
  'len_overflow',
  'write_to_readonly',
  'read_from_writeonly',
  'out_after_in',
  'indirect_desc',
  'memory_truncated',
] as const;
export type ViolationName = (typeof VIOLATION_NAMES)[number];

/** Memory for a ring or region: a Buffer (bounds-checked, kept alive) or a raw address. */
export type Memory = Buffer | bigint;

/** A gva range the device may reach: backed by `buffer`, or by `hva` + `len`. */
export type RegionSpec =
  | { gva: bigint; writable: boolean; buffer: Buffer; len?: number | bigint }
  | { gva: bigint; writable: boolean; hva: bigint; len: number | bigint };

/** Which descriptors a device ring accepts: the guest's TX ring is device-reads, its RX ring device-writes. */
export type RingDirection = 'any' | 'device-reads' | 'device-writes';

export interface VringDriver {
  /** Zeroes the ring memory and frees every descriptor. */
  init(): void;
  /**
   * Adds up to `chains` chains; descriptors come in order from gvas/lens, each
   * chain taking nOut[i] device-readable then nIn[i] device-writable ones
   * (null: 1 out, 0 in). Returns the chains added; they are visible after publish().
   */
  addBurst(chains: number, gvas: BigUint64Array, lens: Uint32Array, nOut: Uint8Array | null, nIn: Uint8Array | null, cookies: BigUint64Array): number;
  /** One release store of avail->idx. */
  publish(): void;
  /** Completed chains into cookies/lens; returns how many. Bad used entries are counted in badUsed and skipped. */
  harvest(cookies: BigUint64Array, lens: Uint32Array): number;
  readonly freeDescs: number;
  readonly inFlight: number;
  readonly badUsed: number;
}

export interface BurstResult {
  count: number;
  violation: ViolationName | null;
}

export interface VringDevice {
  /** Restart from the ring's own indexes (last avail = used->idx). */
  resume(): void;
  avail(): BurstResult;
  /**
   * Reads avail once and pops up to `max` validated chains: head, device-readable
   * and device-writable byte totals, and optionally the first segment's host
   * address and the segment count. Stops at the first violation.
   */
  popBurst(max: number, heads: Uint16Array, outLens: Uint32Array, inLens: Uint32Array, firstHva?: BigUint64Array | null, nsegs?: Uint8Array | null): BurstResult;
  /** Queues used elements; visible after publishUsed(). */
  pushUsedBurst(count: number, heads: Uint16Array, lens: Uint32Array): void;
  publishUsed(): void;
  readonly lastAvail: number;
  readonly usedIdx: number;
}

export interface MempoolLayout {
  nbMbuf: number;
  bufSize: number;
  stride: number;
  bufsPerPage: number;
  pages: number;
  bytes: number;
  offsets?: Float64Array;
}

export interface GrefListDecode {
  ok: boolean;
  grefs: Uint32Array;
  reason: string | null;
}

/** The vring, gref-list, mempool and region bindings and the shared-file helpers, in one object. */
export interface VringNative {
  VringDriver: new (mem: Memory, num: number) => VringDriver;
  VringDevice: new (mem: Memory, num: number, regions: RegionSpec[], maxChainLen: number, direction?: RingDirection) => VringDevice;
  /** Index = violation code; [0] is "none". */
  violationNames(): string[];
  grefListPages(entries: number): number;
  /** nPages defaults to grefListPages(grefs.length). Throws RangeError when they do not fit. */
  encodeGrefList(grefs: Uint32Array, pfns: Uint32Array | null, nPages?: number): Buffer;
  decodeGrefList(pages: Buffer, maxEntries: number): GrefListDecode;
  /** null when the layout is impossible (0 buffers, size 0 or > 4096, too many pages). */
  mempoolLayout(nbMbuf: number, bufSize?: number, withOffsets?: boolean): MempoolLayout | null;
  regionTranslate(regions: RegionSpec[], gva: bigint, len: number | bigint, forWrite: boolean): { hva: bigint | null; violation: ViolationName | null };
  /** Maps a file (created and grown as needed) shared and read-write. */
  mapSharedFile(path: string, bytes: number): { buffer: Buffer; addr: bigint };
  bufferAddress(view: ArrayBufferView): bigint;
}

let cached: VringNative | undefined;

export function vringNative(): VringNative {
  if (cached) return cached;
  const { shm, testing } = addon();
  cached = {
    VringDriver: shm.VringDriver,
    VringDevice: shm.VringDevice,
    violationNames: () => [...shm.violationNames],
    grefListPages: shm.grefListPages,
    encodeGrefList: shm.encodeGrefList,
    decodeGrefList: shm.decodeGrefList,
    mempoolLayout: shm.mempoolLayout,
    regionTranslate: shm.regionTranslate,
    mapSharedFile: testing.mapSharedFile,
    bufferAddress: testing.bufferAddress,
  };
  return cached;
}
