// The DPDK XenStore schema: the contract between xsw-front (the writer,
// frontend/publish.ts) and xsw-backend (the reader, backend/attach.ts and
// backend/discovery.ts), as native/abi.h is the contract for shared memory.
// See docs/architecture.md ("XenStore schema").
//
// Under /local/domain/<domid>/control/dpdk, M = mempool index, V = device
// index, both from 0, written in this order with the start key last:
//   M_mempool_gref      decimal grefs, comma-separated, of the pool's gref-list pages
//   M_mempool_va        hex guest virtual address of the pool's first page
//   V_rx_vring_gref     decimal grefs of the RX ring's gref-list page(s)
//   V_tx_vring_gref     the same for the TX ring
//   V_ether_addr        the device's MAC, xx:xx:xx:xx:xx:xx
//   V_vring_flag        gref of the page whose byte 0 is 0xA5 while the device lives
//   V_event_channel     optional (xsw): the guest's unbound event channel port for
//                       notifications; absent = the device is polled (DPDK's front end)
//   event_type_start_V  1: the device is ready
//
// Every value a guest writes is hostile input to the reader: each parser
// accepts exactly one spelling, bounds the length first, and returns either
// the value or one phrase saying what is wrong, quoting the value through
// JSON.stringify (escaped, clipped) so a guest cannot inject newlines or
// control characters into a log line.
import { MAX_GREF_LIST_PAGES, PAGE_SIZE, RESERVED_REFS } from '../native/abi';
import { DOMID_FIRST_RESERVED, domainPath } from './domain';
import { formatMac, parseMac } from './mac';

/** The schema's node, relative to a domain's home (a guest writes relative paths). */
export const DPDK_NODE = 'control/dpdk';

/** The schema's node of domain `domid`, absolute (as dom0 reads it). */
export const dpdkDir = (domid: number): string => `${domainPath(domid)}/${DPDK_NODE}`;

const START_PREFIX = 'event_type_start_';

/** The key names of mempool M. */
export const mempoolKeys = (m: number) => ({ gref: `${m}_mempool_gref`, va: `${m}_mempool_va` });

/** The key names of device V. */
export const deviceKeys = (v: number) => ({
  rx: `${v}_rx_vring_gref`,
  tx: `${v}_tx_vring_gref`,
  mac: `${v}_ether_addr`,
  flag: `${v}_vring_flag`,
  evtchn: `${v}_event_channel`,
  start: `${START_PREFIX}${v}`,
});

/** Whether a key under the node is a device's start key. */
export const isStartKey = (name: string): boolean => name.startsWith(START_PREFIX);

export type Entry = [name: string, value: string];

/** Mempool M's keys with their values, in publish order. */
export function mempoolEntries(m: number, pool: { gref: string; va: string }): Entry[] {
  const k = mempoolKeys(m);
  return [
    [k.gref, pool.gref],
    [k.va, pool.va],
  ];
}

/** Device V's keys with their values, in publish order: `event_type_start_V = 1` last. */
export function deviceEntries(
  v: number,
  dev: { rxGref: string; txGref: string; mac: string; flagGref: number; evtchn?: number },
): Entry[] {
  const k = deviceKeys(v);
  const entries: Entry[] = [
    [k.rx, dev.rxGref],
    [k.tx, dev.txGref],
    [k.mac, dev.mac],
    [k.flag, String(dev.flagGref)],
  ];
  if (dev.evtchn !== undefined && dev.evtchn > 0) entries.push([k.evtchn, String(dev.evtchn)]);
  entries.push([k.start, '1']);
  return entries;
}

// ------------------------------------------------------------------ parsers

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(reason: string): Parsed<T> => ({ ok: false, reason });

/** The longest value any key may hold: 64 refs of 10 digits plus commas. */
export const MAX_VALUE_LEN = MAX_GREF_LIST_PAGES * 11;
/** Highest grant reference (grant_ref_t is a u32). */
export const MAX_GREF = 0xffffffff;

/** A guest value made safe to quote in a log line: escaped and clipped. */
export function quote(value: string): string {
  const clipped = value.length > 40 ? `${value.slice(0, 40)}...` : value;
  return JSON.stringify(clipped);
}

/** One grant reference, decimal, 8..2^32-1 (refs 0-7 are reserved by Xen): `V_vring_flag`. */
export function parseGref(value: string): Parsed<number> {
  if (value.length > 10 || !/^[0-9]+$/.test(value)) return bad(`${quote(value)} is not a decimal grant reference`);
  const ref = Number(value);
  if (ref < RESERVED_REFS) return bad(`${quote(value)} is a reserved grant reference (refs 0-7 are Xen's)`);
  if (ref > MAX_GREF) return bad(`${quote(value)} is larger than a grant reference can be`);
  return ok(ref);
}

/**
 * A comma-separated list of 1..64 grant references (the pages of a gref
 * list): `M_mempool_gref`, `V_rx_vring_gref`, `V_tx_vring_gref`. Duplicates
 * are refused: one page listed twice is a guest bug.
 */
export function parseGrefList(value: string, maxEntries = MAX_GREF_LIST_PAGES): Parsed<number[]> {
  if (value.length === 0) return bad('is empty; it must list grant references');
  if (value.length > MAX_VALUE_LEN || !/^[0-9]+(,[0-9]+)*$/.test(value)) {
    return bad(`${quote(value)} is not a comma-separated list of decimal grant references`);
  }
  const parts = value.split(',');
  if (parts.length > maxEntries) return bad(`lists ${parts.length} grant references, more than the ${maxEntries} allowed`);
  const refs: number[] = [];
  for (const part of parts) {
    const r = parseGref(part);
    if (!r.ok) return r;
    if (refs.includes(r.value)) return bad(`lists grant reference ${r.value} twice`);
    refs.push(r.value);
  }
  return ok(refs);
}

/** `M_mempool_va`: a guest virtual address in hex (0x optional), non-zero and page aligned. */
export function parseVa(value: string): Parsed<bigint> {
  if (value.length > 18 || !/^(0x)?[0-9a-fA-F]{1,16}$/.test(value)) return bad(`${quote(value)} is not a hex address`);
  const va = BigInt(value.startsWith('0x') ? value : `0x${value}`);
  if (va === 0n) return bad(`${quote(value)} is the null address`);
  if (va % BigInt(PAGE_SIZE) !== 0n) return bad(`${quote(value)} is not page aligned`);
  return ok(va);
}

/** `V_event_channel`: an event channel port, decimal, 1..2^32-1 (port 0 is never a channel). */
export function parseEvtchn(value: string): Parsed<number> {
  if (value.length > 10 || !/^[0-9]+$/.test(value)) return bad(`${quote(value)} is not a decimal event channel port`);
  const port = Number(value);
  if (port === 0 || port > 0xffffffff) return bad(`${quote(value)} is not an event channel port (1..4294967295)`);
  return ok(port);
}

/** `V_ether_addr`: a device MAC (schema/mac.ts's rule: unicast, non-zero), returned lower case. */
export function parseEtherAddr(value: string): Parsed<string> {
  const r = parseMac(value);
  return r.ok ? ok(formatMac(r.value)) : bad(`${quote(value)} ${r.reason}`);
}

/** The `event_type_start_V` value: `1` starts the device; anything else does not. */
export function parseStart(value: string): boolean {
  return value === '1';
}

/** Where a watch event path names a device's start key: its domid and device index. */
export interface StartKey { domid: number; dev: number }

const START_PATH = new RegExp(`^/local/domain/([1-9][0-9]{0,4})/${DPDK_NODE}/${START_PREFIX}(0|[1-9][0-9]{0,4})$`);

/**
 * Matches `/local/domain/<domid>/control/dpdk/event_type_start_<V>` strictly:
 * domid 1..0x7fef (not dom0, not a reserved id), V a decimal without leading
 * zeros below 100000 (the caller applies the per-guest device cap, so that a
 * device over it is refused with a log line rather than ignored). Anything
 * else (another key, a leading zero, a sign) is null.
 */
export function matchStartPath(path: string): StartKey | null {
  const m = START_PATH.exec(path);
  if (!m) return null;
  const domid = Number(m[1]);
  if (domid >= DOMID_FIRST_RESERVED) return null;
  return { domid, dev: Number(m[2]) };
}
