// Strict parsers for the values a guest writes under
// /local/domain/<domid>/control/dpdk (DESIGN.md section 6). Every value here is
// hostile input: each parser accepts exactly one spelling, bounds the length
// first, and returns either the value or one sentence saying what is wrong.
// The sentence quotes the value through JSON.stringify (escaped, clipped), so a
// guest cannot inject newlines or control characters into the log.
import { MAX_GREF_LIST_PAGES, PAGE_SIZE, RESERVED_REFS } from '../native/abi';

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

/** One grant reference, decimal, 8..2^32-1 (refs 0-7 are reserved by Xen). */
export function parseGref(value: string): Parsed<number> {
  if (value.length > 10 || !/^[0-9]+$/.test(value)) return bad(`${quote(value)} is not a decimal grant reference`);
  const ref = Number(value);
  if (ref < RESERVED_REFS) return bad(`${quote(value)} is a reserved grant reference (refs 0-7 are Xen's)`);
  if (ref > MAX_GREF) return bad(`${quote(value)} is larger than a grant reference can be`);
  return ok(ref);
}

/**
 * A comma-separated list of 1..64 grant references (the pages of a gref
 * list). Duplicates are refused: one page listed twice is a guest bug.
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

/** A guest virtual address in hex (0x optional), non-zero and page aligned. */
export function parseVa(value: string): Parsed<bigint> {
  if (value.length > 18 || !/^(0x)?[0-9a-fA-F]{1,16}$/.test(value)) return bad(`${quote(value)} is not a hex address`);
  const va = BigInt(value.startsWith('0x') ? value : `0x${value}`);
  if (va === 0n) return bad(`${quote(value)} is the null address`);
  if (va % BigInt(PAGE_SIZE) !== 0n) return bad(`${quote(value)} is not page aligned`);
  return ok(va);
}

/** A unicast, non-zero MAC address `xx:xx:xx:xx:xx:xx`, returned lower case. */
export function parseMac(value: string): Parsed<string> {
  if (value.length !== 17 || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(value)) {
    return bad(`${quote(value)} is not a MAC address like 00:00:00:00:00:11`);
  }
  const mac = value.toLowerCase();
  if (mac === '00:00:00:00:00:00') return bad(`${quote(value)} is the zero MAC address`);
  if ((parseInt(mac.slice(0, 2), 16) & 1) !== 0) return bad(`${quote(value)} is a multicast MAC address`);
  return ok(mac);
}

/** The `event_type_start_V` value: `1` starts the device; anything else does not. */
export function parseStart(value: string): boolean {
  return value === '1';
}

/** Where a watch event path names a device's start key: its domid and device index. */
export interface StartKey { domid: number; dev: number }

const START_PATH = /^\/local\/domain\/([1-9][0-9]{0,4})\/control\/dpdk\/event_type_start_(0|[1-9][0-9]{0,4})$/;

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
  if (domid >= 0x7ff0) return null;
  return { domid, dev: Number(m[2]) };
}

const DOMAIN_PATH = /^\/local\/domain\/([1-9][0-9]{0,4})(\/control)?$/;

/** `/local/domain/<domid>` or `/local/domain/<domid>/control` (not dom0): the domid, or null. */
export function matchDomainPath(path: string): number | null {
  const m = DOMAIN_PATH.exec(path);
  if (!m) return null;
  const domid = Number(m[1]);
  return domid < 0x7ff0 ? domid : null;
}

const DOMID = /^(0|[1-9][0-9]{0,4})$/;

/** A `/local/domain` directory entry as a domid (0..0x7fef), or null. */
export function parseDomid(name: string): number | null {
  if (!DOMID.test(name)) return null;
  const domid = Number(name);
  return domid < 0x7ff0 ? domid : null;
}

/** The XenStore directory of a guest's schema. */
export const dpdkDir = (domid: number): string => `/local/domain/${domid}/control/dpdk`;

/** The keys of device V and mempool M, relative to dpdkDir(domid). */
export const deviceKeys = (dev: number) => ({
  rx: `${dev}_rx_vring_gref`,
  tx: `${dev}_tx_vring_gref`,
  mac: `${dev}_ether_addr`,
  flag: `${dev}_vring_flag`,
  start: `event_type_start_${dev}`,
});
export const mempoolKeys = (m: number) => ({ gref: `${m}_mempool_gref`, va: `${m}_mempool_va` });
