// Attaching one guest device (domid, V): read its keys and parse them strictly
// (readDevice), then map its gref lists, rings, flag page and mempools in
// batched maps and check everything a guest could get wrong (mapDevice). Any
// problem is a Refusal: a counter name plus one sentence naming the key. On a
// refusal nothing stays mapped.
//
// Mempools are re-scanned at every device attach (DPDK scanned them once per
// guest, so pools created later were never mapped) and shared between the
// devices of a guest: a pool whose keys are unchanged is reused, not remapped.
//
// readDevice also reads what dom0 assigned to the device (schema/assignment.ts);
// backend/identity.ts decides whether the published MAC may be used.
import { DEFAULT_RING_SIZE, MAX_GREF_LIST_PAGES, PAGE_SIZE, VRING_FLAG_LIVE, vringLayout } from '../native/abi';
import { assignmentKeys, parseAssignedVlan } from '../schema/assignment';
import { deviceKeys, dpdkDir, mempoolKeys, parseEvtchn, parseGref, parseGrefList, parseEtherAddr, parseVa, Parsed } from '../schema/dpdk';
import type { GrantMapper, GrefListDecoder, Mapping, Store } from './dependencies';

/** DPDK's MAX_XENVIRT_MEMPOOL: mempools looked for per guest. */
export const MAX_MEMPOOLS = 16;
/** The largest split ring virtio allows. */
export const MAX_RING_SIZE = 32768;
/** Data pages one gref list may describe (64 list pages of 512 items). */
export const MAX_LIST_ENTRIES = MAX_GREF_LIST_PAGES * (PAGE_SIZE / 8);

/** Why a device was refused: `code` is the stats counter, `message` names the key. */
export class Refusal extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'Refusal';
  }
}

export interface PublishedPool {
  index: number;
  listRefs: number[];
  va: bigint;
  /** Identity of the pool's published keys: equal keys → the same pool. */
  key: string;
}

/** A device's keys, parsed and validated (nothing mapped yet). */
export interface PublishedDevice {
  domid: number;
  dev: number;
  mac: string;
  rxList: number[];
  txList: number[];
  flagRef: number;
  /** The guest's event channel port (V_event_channel), absent: a polled device. */
  evtchn?: number;
  pools: PublishedPool[];
  /** What dom0 assigned (schema/assignment.ts): absent fields were not assigned. */
  assigned: Assignment;
  /** All raw values (the assignment's too): an unchanged re-announcement has the same fingerprint. */
  fingerprint: string;
}

/** A device's identity as dom0 assigned it. */
export interface Assignment {
  mac?: string;
  vlan?: number;
}

async function readKey(store: Store, domid: number, key: string): Promise<string> {
  const value = await store.tryRead(`${dpdkDir(domid)}/${key}`);
  if (value === undefined) throw new Refusal('missing_key', `${key} is missing; the front end must publish it before event_type_start`);
  return value;
}

function need<T>(key: string, r: Parsed<T>): T {
  if (!r.ok) throw new Refusal('bad_key', `${key} ${r.reason}`);
  return r.value;
}

/** Reads and parses every key of device `dev` of `domid`. Throws Refusal. */
export async function readDevice(store: Store, domid: number, dev: number): Promise<PublishedDevice> {
  const k = deviceKeys(dev);
  const raw: string[] = [];
  const rxValue = await readKey(store, domid, k.rx);
  const txValue = await readKey(store, domid, k.tx);
  const macValue = await readKey(store, domid, k.mac);
  const flagValue = await readKey(store, domid, k.flag);
  raw.push(rxValue, txValue, macValue, flagValue);
  const rxList = need(k.rx, parseGrefList(rxValue));
  const txList = need(k.tx, parseGrefList(txValue));
  const mac = need(k.mac, parseEtherAddr(macValue));
  const flagRef = need(k.flag, parseGref(flagValue));
  const evtchnValue = await store.tryRead(`${dpdkDir(domid)}/${k.evtchn}`);
  raw.push(evtchnValue ?? '');
  const evtchn = evtchnValue === undefined ? undefined : need(k.evtchn, parseEvtchn(evtchnValue));

  const pools: PublishedPool[] = [];
  for (let m = 0; m < MAX_MEMPOOLS; m++) {
    const pk = mempoolKeys(m);
    const listValue = await store.tryRead(`${dpdkDir(domid)}/${pk.gref}`);
    if (listValue === undefined) break;
    const vaValue = await readKey(store, domid, pk.va);
    raw.push(listValue, vaValue);
    const listRefs = need(pk.gref, parseGrefList(listValue));
    const va = need(pk.va, parseVa(vaValue));
    pools.push({ index: m, listRefs, va, key: `${listValue}@${vaValue}` });
  }
  if (pools.length === 0) throw new Refusal('no_mempool', `${mempoolKeys(0).gref} is missing; the front end must publish at least one mempool`);
  const a = assignmentKeys(domid, dev);
  const macAssigned = await store.tryRead(a.mac);
  const vlanAssigned = await store.tryRead(a.vlan);
  raw.push(`assigned:${macAssigned ?? ''}/${vlanAssigned ?? ''}`);
  const assigned: Assignment = {};
  if (macAssigned !== undefined) assigned.mac = needAssigned(a.mac, parseEtherAddr(macAssigned));
  if (vlanAssigned !== undefined) assigned.vlan = needAssigned(a.vlan, parseAssignedVlan(vlanAssigned));
  return { domid, dev, mac, rxList, txList, flagRef, ...(evtchn !== undefined ? { evtchn } : {}), pools, assigned, fingerprint: JSON.stringify(raw) };
}

function needAssigned<T>(path: string, r: Parsed<T>): T {
  if (!r.ok) throw new Refusal('bad_assignment', `${path} ${r.reason}; dom0 must correct it (xenstore-write ${path} …)`);
  return r.value;
}

/**
 * The ring size for a ring of `pages` pages. The DPDK schema does not publish
 * it, so it is derived: 256 (the default) when its layout has that many pages,
 * else the largest power of two up to 32768 whose layout has exactly that many
 * pages, else null.
 */
export function ringSizeForPages(pages: number): number | null {
  // Only sizes from 256 up have a page count of their own (every smaller ring
  // takes 2 pages), so the front end publishes rings of 256..32768 entries.
  for (let num = MAX_RING_SIZE; num >= DEFAULT_RING_SIZE; num /= 2) {
    if (vringLayout(num).pages === pages) return num;
  }
  return null;
}

/** A mapped mempool, shared by the devices of one guest (refcounted by the registry). */
export interface PoolMapping {
  key: string;
  va: bigint;
  mapping: Mapping;
  users: number;
}

/** What the guest already has mapped: reusable pools and its page count. */
export interface GuestMappings {
  pools: Map<string, PoolMapping>;
  pages: number;
}

export interface MappedDevice {
  published: PublishedDevice;
  rx: Mapping;
  tx: Mapping;
  rxNum: number;
  txNum: number;
  flag: Mapping;
  /** The pools this device uses, in index order; `fresh` ones were mapped by this attach. */
  pools: { pool: PoolMapping; fresh: boolean }[];
  /** Pages this attach added to the guest (rings, flag, fresh pools). */
  pages: number;
}

export interface MapContext {
  grants: GrantMapper;
  decode: GrefListDecoder;
  maxPagesPerGuest: number;
  /** Pages all guests may have mapped together (default: no switch-wide cap). */
  maxPages?: number;
  /** Pages all guests have mapped now. */
  pagesMapped?: number;
}

const MAX_RING_PAGES = vringLayout(MAX_RING_SIZE).pages;

/**
 * Maps a published device. Throws Refusal, leaving nothing mapped; never
 * touches guest.pools (the caller commits the result).
 */
export function mapDevice(ctx: MapContext, guest: GuestMappings, p: PublishedDevice): MappedDevice {
  const { domid, dev } = p;
  const k = deviceKeys(dev);
  const held: Mapping[] = [];
  let pages = 0;

  const reserve = (n: number, what: string): void => {
    if (guest.pages + pages + n > ctx.maxPagesPerGuest) {
      throw new Refusal(
        'page_cap',
        `${what} needs ${n} more pages, over the limit of ${ctx.maxPagesPerGuest} mapped pages per guest (raise --max-pages-per-guest)`,
      );
    }
    if (ctx.maxPages !== undefined && (ctx.pagesMapped ?? 0) + pages + n > ctx.maxPages) {
      throw new Refusal(
        'total_page_cap',
        `${what} needs ${n} more pages, over the switch-wide limit of ${ctx.maxPages} mapped pages for all guests (raise --max-pages)`,
      );
    }
  };
  const map = (key: string, refs: number[], writable: boolean): Mapping => {
    reserve(refs.length, key);
    let m: Mapping;
    try {
      m = ctx.grants.map(domid, refs, { writable });
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'EIO';
      throw new Refusal('map_failed', `${key} names pages domain ${domid} has not granted to dom0${writable ? ' writable' : ''} (${code})`);
    }
    held.push(m);
    pages += m.pages;
    return m;
  };
  const unmapOne = (m: Mapping): void => {
    held.splice(held.indexOf(m), 1);
    pages -= m.pages;
    ctx.grants.unmap(m);
  };
  // A gref list: map its pages read-only, decode (one native copy), unmap.
  const dataRefs = (key: string, listRefs: number[], maxEntries: number): number[] => {
    const list = map(key, listRefs, false);
    const r = ctx.decode(list.buffer, maxEntries);
    unmapOne(list);
    if ('reason' in r) throw new Refusal('bad_gref_list', `${key} points to a bad gref list: ${r.reason}`);
    if (r.refs.length === 0) throw new Refusal('bad_gref_list', `${key} points to an empty gref list`);
    return r.refs;
  };
  const ring = (key: string, listRefs: number[]): { m: Mapping; num: number } => {
    const refs = dataRefs(key, listRefs, MAX_RING_PAGES);
    const num = ringSizeForPages(refs.length);
    if (num === null) {
      throw new Refusal('bad_ring_size', `${key} lists ${refs.length} ring pages, which fits no power-of-two ring size (256 needs ${vringLayout(256).pages})`);
    }
    return { m: map(key, refs, true), num };
  };

  try {
    const rx = ring(k.rx, p.rxList);
    const tx = ring(k.tx, p.txList);
    const flag = map(k.flag, [p.flagRef], false);
    if (new Uint8Array(flag.buffer, 0, 1)[0] !== VRING_FLAG_LIVE) {
      throw new Refusal('flag_dead', `${k.flag} page does not hold the live mark 0xA5; the device is not running`);
    }
    const pools: { pool: PoolMapping; fresh: boolean }[] = [];
    for (const pp of p.pools) {
      const known = guest.pools.get(pp.key);
      if (known) {
        pools.push({ pool: known, fresh: false });
        continue;
      }
      const key = mempoolKeys(pp.index).gref;
      const refs = dataRefs(key, pp.listRefs, MAX_LIST_ENTRIES);
      const mapping = map(key, refs, true);
      if (pp.va + BigInt(mapping.pages * PAGE_SIZE) > 1n << 64n) {
        throw new Refusal('bad_key', `${mempoolKeys(pp.index).va} plus the pool's ${mapping.pages} pages runs past the end of the address space`);
      }
      pools.push({ pool: { key: pp.key, va: pp.va, mapping, users: 0 }, fresh: true });
    }
    checkDisjoint(pools.map((x) => x.pool), p.pools);
    return { published: p, rx: rx.m, tx: tx.m, rxNum: rx.num, txNum: tx.num, flag, pools, pages };
  } catch (err) {
    for (const m of held.reverse()) ctx.grants.unmap(m);
    throw err;
  }
}

function checkDisjoint(pools: PoolMapping[], published: PublishedPool[]): void {
  for (let i = 0; i < pools.length; i++) {
    for (let j = i + 1; j < pools.length; j++) {
      const a = pools[i];
      const b = pools[j];
      const aEnd = a.va + BigInt(a.mapping.pages * PAGE_SIZE);
      const bEnd = b.va + BigInt(b.mapping.pages * PAGE_SIZE);
      if (a.va < bEnd && b.va < aEnd) {
        throw new Refusal(
          'region_overlap',
          `${mempoolKeys(published[i].index).va} and ${mempoolKeys(published[j].index).va} describe overlapping guest addresses`,
        );
      }
    }
  }
}

/**
 * The translation regions of a mapped device: one per mempool. `mapLen` is what the mapping's
 * buffer really holds (0 once unmapped), which the data plane checks against `len`.
 */
export function regionsOf(d: MappedDevice): { gva: bigint; len: number; hva: bigint; mapLen: number; writable: boolean }[] {
  return d.pools.map(({ pool }) => ({
    gva: pool.va,
    len: pool.mapping.pages * PAGE_SIZE,
    hva: pool.mapping.addr,
    mapLen: pool.mapping.buffer.byteLength,
    writable: true,
  }));
}
