// Where a domain lives in XenStore (/local/domain/<domid>) and which domids a
// guest can have. The DPDK schema (dpdk.ts), and the schemas that will sit
// beside it, hang their nodes under these paths.

/** Domids from here up are reserved by Xen (DOMID_FIRST_RESERVED): never a guest. */
export const DOMID_FIRST_RESERVED = 0x7ff0;

/** A domain's home directory. */
export const domainPath = (domid: number): string => `/local/domain/${domid}`;

/** A domid spelled in a path or a `domid` key: decimal, no leading zero, at most 5 digits. */
const DOMID = /^(0|[1-9][0-9]{0,4})$/;

/** A `/local/domain` directory entry (or a `domid` key) as a domid (0..0x7fef), or null. */
export function parseDomid(name: string): number | null {
  if (!DOMID.test(name)) return null;
  const domid = Number(name);
  return domid < DOMID_FIRST_RESERVED ? domid : null;
}

const DOMAIN_PATH = /^\/local\/domain\/([1-9][0-9]{0,4})(\/control)?$/;

/** `/local/domain/<domid>` or `/local/domain/<domid>/control` (not dom0): the domid, or null. */
export function matchDomainPath(path: string): number | null {
  const m = DOMAIN_PATH.exec(path);
  if (!m) return null;
  const domid = Number(m[1]);
  return domid < DOMID_FIRST_RESERVED ? domid : null;
}
