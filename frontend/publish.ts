// Device publication in XenStore, DPDK-compatible (schema/dpdk.ts; see
// docs/architecture.md): everything lives under the guest's own
// `control/dpdk/` (relative paths), written in the schema's order with
// `event_type_start_V = 1` last.
//
// Under libxl `~/control` is read-only to guests, so dom0's back end (or
// xsw-sim) provisions `control/dpdk` writable for the guest; the front end
// therefore clears its stale children but never removes the node itself.
import { parseDomid } from '../schema/domain';
import { DPDK_NODE, Entry, isStartKey } from '../schema/dpdk';
import type { Perm, XenStoreClient } from '../xenstore/client';
import { FrontError } from './errors';

/** The subset of the XenStore client publication uses (a test may fake it). */
export type XenStore = Pick<XenStoreClient, 'tryRead' | 'write' | 'rm' | 'directory' | 'getPerms' | 'getDomainPath'>;

export interface Self {
  domid: number;
  domainPath: string;
}

function code(err: unknown): string | undefined {
  return (err as { code?: string } | undefined)?.code;
}

/** This guest's domain id (the relative `domid` key) and domain path. */
export async function findSelf(xs: XenStore): Promise<Self> {
  let raw: string | undefined;
  try {
    raw = await xs.tryRead('domid');
  } catch (err) {
    raw = undefined;
    if (code(err) !== 'EACCES' && code(err) !== 'ENOENT') throw err;
  }
  const domid = raw === undefined ? null : parseDomid(raw.trim());
  if (domid === null) {
    throw new FrontError(
      "cannot find this guest's domain id (the XenStore key 'domid' is missing): run xsw-front inside a Xen guest, or under the simulation with 'xsw-sim exec NAME -- xsw-front ...'",
    );
  }
  return { domid, domainPath: await xs.getDomainPath(domid) };
}

export function notWritable(self: Self): FrontError {
  return new FrontError(
    `control/dpdk in domain ${self.domid}'s XenStore (${self.domainPath}/${DPDK_NODE}) is missing or not writable by this guest: dom0's xsw-backend provisions it when it sees the domain (start the back end first, or create it writable for this domain)`,
    'EACCES',
  );
}

/** Whether `domid` may write a node with these permissions (owner first; its letter is everyone's default). */
export function canWrite(perms: Perm[], domid: number): boolean {
  if (domid === 0 || perms.length === 0) return domid === 0;
  if (perms[0].domid === domid) return true;
  const own = perms.slice(1).find((p) => p.domid === domid);
  const access = own ? own.access : perms[0].access;
  return access === 'w' || access === 'b';
}

/** Checks that control/dpdk exists and this guest may write it; throws the sentence for people otherwise. */
export async function checkDpdkNode(xs: XenStore, self: Self): Promise<void> {
  let perms: Perm[];
  try {
    perms = await xs.getPerms(DPDK_NODE);
  } catch (err) {
    if (code(err) === 'ENOENT' || code(err) === 'EACCES') throw notWritable(self);
    throw err;
  }
  if (!canWrite(perms, self.domid)) throw notWritable(self);
}

/** Removes every child of control/dpdk (a previous run's keys), never the node. Returns their names. */
export async function clearStaleKeys(xs: XenStore, self: Self): Promise<string[]> {
  const children = await xs.directory(DPDK_NODE);
  for (const child of children) {
    try {
      await xs.rm(`${DPDK_NODE}/${child}`);
    } catch (err) {
      if (code(err) === 'EACCES') throw notWritable(self);
      if (code(err) !== 'ENOENT') throw err;
    }
  }
  return children;
}

/** Writes keys one by one, in order (each write is what a watching back end may see next). */
export async function writeKeys(xs: XenStore, self: Self, keys: Entry[]): Promise<void> {
  for (const [name, value] of keys) {
    try {
      await xs.write(`${DPDK_NODE}/${name}`, value);
    } catch (err) {
      if (code(err) === 'EACCES' || code(err) === 'ENOENT') throw notWritable(self);
      throw err;
    }
  }
}

/** Removes keys, the start key first so a back end never re-attaches a half-removed device. */
export async function removeKeys(xs: XenStore, names: string[]): Promise<void> {
  const ordered = [...names.filter(isStartKey), ...names.filter((n) => !isStartKey(n))];
  for (const name of ordered) {
    try {
      await xs.rm(`${DPDK_NODE}/${name}`);
    } catch (err) {
      if (code(err) !== 'ENOENT') throw err;
    }
  }
}
