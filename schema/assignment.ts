// The identity dom0 assigns to a guest's device: its MAC and, optionally, its
// VLAN: the network it belongs to, which the switch keeps it inside
// (backend/networks.ts, docs/multihost.md), like `mac=` and `bridge=` in an xl vif line. The nodes
// live under dom0's own tree, where libxl keeps backend directories, so no
// guest can write them (the guest may be given read access to its own):
//
//   /local/domain/0/backend/xsw/<domid>/<dev>/mac    xx:xx:xx:xx:xx:xx
//   /local/domain/0/backend/xsw/<domid>/<dev>/vlan   decimal 1..4094
//
// The toolstack writes them before the guest starts (xsw-sim create --mac,
// or xenstore-write) and removes /local/domain/0/backend/xsw/<domid> with the
// domain. docs/security.md says what the back end does with them.
import { Parsed, quote } from './dpdk';

export const ASSIGNMENT_ROOT = '/local/domain/0/backend/xsw';

/** The assignment directory of one guest. */
export const assignmentDir = (domid: number): string => `${ASSIGNMENT_ROOT}/${domid}`;

/** The assignment nodes of device `dev` of `domid` (absolute paths). */
export const assignmentKeys = (domid: number, dev: number) => ({
  dir: `${assignmentDir(domid)}/${dev}`,
  mac: `${assignmentDir(domid)}/${dev}/mac`,
  vlan: `${assignmentDir(domid)}/${dev}/vlan`,
});

/** An assigned VLAN id: decimal without leading zeros, 1..4094 (0 and 4095 are reserved by 802.1Q). */
export function parseAssignedVlan(value: string): Parsed<number> {
  if (value.length > 4 || !/^[1-9][0-9]*$/.test(value) || Number(value) > 4094) {
    return { ok: false, reason: `${quote(value)} is not a VLAN id from 1 to 4094` };
  }
  return { ok: true, value: Number(value) };
}

const ASSIGNMENT_PATH = /^\/local\/domain\/0\/backend\/xsw\/([1-9][0-9]{0,4})(?:\/(0|[1-9][0-9]{0,4})(?:\/(?:mac|vlan))?)?$/;

/**
 * A watch event path inside the assignment tree: the guest's domid, and the
 * device when the path names one (its directory or one of its nodes); null
 * for anything else.
 */
export function matchAssignmentPath(path: string): { domid: number; dev?: number } | null {
  const m = ASSIGNMENT_PATH.exec(path);
  if (!m) return null;
  const domid = Number(m[1]);
  if (domid >= 0x7ff0) return null;
  return m[2] === undefined ? { domid } : { domid, dev: Number(m[2]) };
}
