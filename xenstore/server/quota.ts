// Per-domain limits. Defaults are Xen 4.17's C xenstored (tools/xenstored/
// domain.c quotas[]). dom0 (privileged connections) is exempt from all of them.

export interface Quota {
  /** Nodes a domain may own (EQUOTA beyond). */
  nodes: number;
  /** Watches a domain may hold over all its connections (EQUOTA beyond). */
  watches: number;
  /** Transactions a domain may have open at once (EQUOTA beyond). */
  transactions: number;
  /** Bytes of one node's value (E2BIG beyond). */
  nodeSize: number;
  /** Replies and events queued to a domain's connection before the server stops reading its requests. */
  outstanding: number;
  /** Permission entries on one node (EQUOTA beyond). */
  permsPerNode: number;
  /** Length of the part of a path below /local/domain/<id>/ (EINVAL beyond; XENSTORE_REL_PATH_MAX). */
  pathLength: number;
}

export const XEN_DEFAULT_QUOTA: Readonly<Quota> = Object.freeze({
  nodes: 1000,
  watches: 128,
  transactions: 10,
  nodeSize: 2048,
  outstanding: 20,
  permsPerNode: 5,
  pathLength: 2048,
});
