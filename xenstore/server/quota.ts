// Per-domain limits, named and defaulted as Xen 4.17's C xenstored
// (tools/xenstore/xenstored_core.c quota_* and its -Q names) where it has
// one. Which ones also bind dom0 is said per limit; docs/xenstore.md has the
// table with each limit's error code and the reasons where we differ.

export interface Quota {
  /** Nodes a domain may own (ENOSPC beyond). */
  nodes: number;
  /** Watches a domain may hold over all its connections (E2BIG beyond, as 4.17). */
  watches: number;
  /** Transactions a domain may have open at once (ENOSPC beyond). */
  transactions: number;
  /**
   * Accounted size of one node written by a domain: 24 bytes of header, 8 per
   * permission entry, the value, and each child's name plus its NUL, as C
   * xenstored's record. A write that makes it reach this is ENOSPC.
   */
  nodeSize: number;
  /** Replies and events queued to a domain's connection before the server stops reading its requests. */
  outstanding: number;
  /** Permission entries on one node (ENOSPC beyond). */
  permsPerNode: number;
  /**
   * Length of a path below /local/domain/<id>/ (or of the whole path
   * elsewhere). Binds dom0 too, as in 4.17. EINVAL beyond (XENSTORE_REL_PATH_MAX).
   */
  pathLength: number;
  /** Nodes one transaction of a domain may touch, read or written (ENOSPC; XSA-326's transaction-nodes). */
  transactionNodes: number;
  /**
   * Bytes of watch events waiting to go to a domain (all its connections),
   * or to one dom0 connection. Beyond it a watch's further events collapse
   * into one event for the watch's own path (see connection.ts).
   */
  memory: number;
  /** Connections open at once on a domain's socket (more are closed at once). */
  connections: number;
}

export const XEN_DEFAULT_QUOTA: Readonly<Quota> = Object.freeze({
  nodes: 1000,
  watches: 128,
  transactions: 10,
  nodeSize: 2048,
  outstanding: 20,
  permsPerNode: 5,
  pathLength: 2048,
  transactionNodes: 1024,
  memory: 2 * 1024 * 1024 + 512 * 1024,
  connections: 16,
});

/** The quota names, for option parsing (`--quota nodes=2000`). */
export const QUOTA_NAMES = Object.keys(XEN_DEFAULT_QUOTA) as (keyof Quota)[];

/** Parses `name=value` pairs into a partial quota; throws with one sentence on a bad pair. */
export function parseQuotaArgs(pairs: readonly string[]): Partial<Quota> {
  const out: Partial<Quota> = {};
  for (const pair of pairs) {
    const m = /^([A-Za-z]+)=([0-9]{1,10})$/.exec(pair);
    const name = m?.[1] as keyof Quota | undefined;
    if (!m || !name || !QUOTA_NAMES.includes(name) || Number(m[2]) < 1) {
      throw new Error(`bad quota ${JSON.stringify(pair)}: use NAME=N with N >= 1 and NAME one of ${QUOTA_NAMES.join(', ')}`);
    }
    out[name] = Number(m[2]);
  }
  return out;
}
