// The vif half of the sim's toolstack: the XenStore keys libxl writes for a
// network device (`vif = [ 'mac=…,script=…' ]` in an xl config) and the
// removal `xl network-detach` performs. The back end (xsw-backend's netif,
// or any other) serves what these keys describe.
import { parseMac } from '../../schema/mac';
import { VIF_BACKEND_ROOT, vifBackendDir, vifFrontendDir, XenbusState } from '../../schema/netif';
import type { XenStoreClient, XenStoreTransaction } from '../client';
import type { Perm } from '../wire';

export interface VifSpec {
  mac: string;
  /** The hotplug script libxl would run (recorded only; default /etc/xen/scripts/vif-xsw). */
  script?: string;
  bridge?: string;
}

/** Parses an xl vif spec: `mac=00:16:3e:00:00:11[,script=…][,bridge=…]`; throws a sentence. */
export function parseVifSpec(text: string): VifSpec {
  const spec: Partial<VifSpec> = {};
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq).trim();
    const v = eq < 0 ? '' : part.slice(eq + 1).trim();
    if (k === 'mac') {
      const m = parseMac(v);
      if (!m.ok) throw new Error(`the vif's mac ${JSON.stringify(v)} ${m.reason}`);
      spec.mac = v.toLowerCase();
    } else if (k === 'script' && v) spec.script = v;
    else if (k === 'bridge' && v) spec.bridge = v;
    else throw new Error(`unknown vif setting ${JSON.stringify(part)}: use mac=…, script=… or bridge=… (docs/xen.md)`);
  }
  if (!spec.mac) throw new Error('a vif needs mac=xx:xx:xx:xx:xx:xx (dom0 decides a vif\'s MAC, as in an xl vif line)');
  return spec as VifSpec;
}

/**
 * Writes device `devid`'s keys as libxl does: the back-end directory in dom0's
 * tree (dom0 owns it, the guest may read it), the front-end directory in the
 * guest's tree (the guest owns it, dom0 may read it), both at state 1.
 */
export async function writeVif(tx: XenStoreTransaction, domid: number, devid: number, spec: VifSpec): Promise<void> {
  const be = vifBackendDir(domid, devid);
  const fe = vifFrontendDir(domid, devid);
  const bePerm: Perm[] = [{ access: 'n', domid: 0 }, { access: 'r', domid }];
  const fePerm: Perm[] = [{ access: 'n', domid }, { access: 'r', domid: 0 }];
  const backend: [string, string][] = [
    ['frontend', fe],
    ['frontend-id', String(domid)],
    ['online', '1'],
    ['state', String(XenbusState.Initialising)],
    ['script', spec.script ?? '/etc/xen/scripts/vif-xsw'],
    ['mac', spec.mac],
    ['handle', String(devid)],
    ['type', 'vif'],
    ...(spec.bridge ? [['bridge', spec.bridge] as [string, string]] : []),
  ];
  const frontend: [string, string][] = [
    ['backend', be],
    ['backend-id', '0'],
    ['state', String(XenbusState.Initialising)],
    ['handle', String(devid)],
    ['mac', spec.mac],
  ];
  for (const [dir, keys, perms] of [[be, backend, bePerm], [fe, frontend, fePerm]] as const) {
    await tx.write(dir, '');
    await tx.setPerms(dir, [...perms]);
    for (const [k, v] of keys) {
      await tx.write(`${dir}/${k}`, v);
      await tx.setPerms(`${dir}/${k}`, [...perms]);
    }
  }
}

/**
 * `xl network-detach`: online=0 and state 5 (Closing) in the back-end
 * directory, then up to `ms` for the back end to say 6 (Closed), then both
 * directories go. Resolves with whether the back end answered in time.
 */
export async function detachVif(xs: XenStoreClient, domid: number, devid: number, ms = 10_000): Promise<boolean> {
  const be = vifBackendDir(domid, devid);
  if ((await xs.tryRead(`${be}/frontend`)) === undefined) throw new Error(`domain ${domid} has no vif ${devid}: see ${VIF_BACKEND_ROOT}/${domid}`);
  await xs.write(`${be}/online`, '0');
  await xs.write(`${be}/state`, String(XenbusState.Closing));
  const deadline = Date.now() + ms;
  let closed = false;
  while (Date.now() < deadline) {
    if ((await xs.tryRead(`${be}/state`)) === String(XenbusState.Closed)) {
      closed = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  await xs.rm(be).catch(() => {});
  await xs.rm(vifFrontendDir(domid, devid)).catch(() => {});
  return closed;
}

/** libxl removes a destroyed domain's back-end directories. */
export async function removeVifs(xs: XenStoreClient, domid: number): Promise<void> {
  if ((await xs.tryRead(`${VIF_BACKEND_ROOT}/${domid}`)) !== undefined) await xs.rm(`${VIF_BACKEND_ROOT}/${domid}`);
}
