// Permission rules, as Xen's perm_for_conn: the first entry names the owner
// and the access everyone else gets by default; later entries give specific
// domains their access. The owner and privileged callers get everything.
import { Perm } from '../wire';

export const PERM_READ = 1;
export const PERM_WRITE = 2;
export const PERM_OWNER = 8;

/** Who is asking. */
export interface Caller {
  domid: number;
  privileged: boolean;
}

function bits(p: Perm): number {
  switch (p.access) {
    case 'n': return 0;
    case 'r': return PERM_READ;
    case 'w': return PERM_WRITE;
    case 'b': return PERM_READ | PERM_WRITE;
  }
}

/** The access bits `caller` has on a node with these perms. */
export function accessFor(caller: Caller, perms: readonly Perm[]): number {
  if (caller.privileged || perms[0].domid === caller.domid) return PERM_READ | PERM_WRITE | PERM_OWNER;
  for (let i = 1; i < perms.length; i++) {
    if (perms[i].domid === caller.domid) return bits(perms[i]);
  }
  return bits(perms[0]);
}

/** True if `caller` has every bit of `want`. */
export function allows(caller: Caller, perms: readonly Perm[], want: number): boolean {
  return (accessFor(caller, perms) & want) === want;
}

/** Perms of a node created by `caller` under a parent with `parentPerms`: inherited, creator owns it. */
export function inheritPerms(caller: Caller, parentPerms: readonly Perm[]): Perm[] {
  const perms = parentPerms.map((p) => ({ ...p }));
  if (!caller.privileged) perms[0] = { access: perms[0].access, domid: caller.domid };
  return perms;
}
