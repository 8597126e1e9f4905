// Xen's netif protocol in XenStore (docs/man/xl-network-configuration.5.pod,
// public/io/netif.h): the back-end directory libxl writes in dom0's tree and
// the front end's keys, with strict parsers. Everything under the front end's
// directory is written by the guest: hostile input.

/** XenbusState (public/io/xenbus.h). */
export const XenbusState = {
  Unknown: 0,
  Initialising: 1,
  InitWait: 2,
  Initialised: 3,
  Connected: 4,
  Closing: 5,
  Closed: 6,
  Reconfiguring: 7,
  Reconfigured: 8,
} as const;

/** dom0's directory of vif back ends: backend/vif/<domid>/<devid>. */
export const VIF_BACKEND_ROOT = '/local/domain/0/backend/vif';
export const vifBackendDir = (domid: number, devid: number): string => `${VIF_BACKEND_ROOT}/${domid}/${devid}`;
export const vifFrontendDir = (domid: number, devid: number): string => `/local/domain/${domid}/device/vif/${devid}`;

/** backend/vif/<domid>/<devid>[/key] → its parts, or undefined. */
export function matchVifBackendPath(path: string): { domid: number; devid: number; key?: string } | undefined {
  const m = /^\/local\/domain\/0\/backend\/vif\/([0-9]{1,5})\/([0-9]{1,9})(?:\/(.+))?$/.exec(path);
  if (!m) return undefined;
  return { domid: Number(m[1]), devid: Number(m[2]), ...(m[3] ? { key: m[3] } : {}) };
}

/** /local/domain/<domid>/device/vif/<devid>[/key] → its parts, or undefined. */
export function matchVifFrontendPath(path: string): { domid: number; devid: number; key?: string } | undefined {
  const m = /^\/local\/domain\/([0-9]{1,5})\/device\/vif\/([0-9]{1,9})(?:\/(.+))?$/.exec(path);
  if (!m) return undefined;
  return { domid: Number(m[1]), devid: Number(m[2]), ...(m[3] ? { key: m[3] } : {}) };
}

/** What the back end advertises before InitWait (what netfront reads). */
export const BACKEND_FEATURES: [string, string][] = [
  ['feature-rx-copy', '1'],
  ['feature-rx-flip', '0'],
  ['feature-sg', '0'],
  ['feature-gso-tcpv4', '0'],
  ['feature-gso-tcpv6', '0'],
  ['feature-ipv6-csum-offload', '1'],
];

export type Parse<T> = { ok: true; value: T } | { ok: false; reason: string };

/** A decimal without sign or leading zeros, in [min, max]. */
export function parseDecimal(text: string | undefined, key: string, min: number, max: number): Parse<number> {
  if (text === undefined) return { ok: false, reason: `${key} is missing` };
  if (!/^(0|[1-9][0-9]{0,9})$/.test(text) || Number(text) < min || Number(text) > max) {
    return { ok: false, reason: `${key} is ${JSON.stringify(text.slice(0, 40))}, not a whole number from ${min} to ${max}` };
  }
  return { ok: true, value: Number(text) };
}

/** The front end's keys, once it says Connected. */
export interface FrontendRings {
  txRingRef: number;
  rxRingRef: number;
  txEvtchn: number;
  rxEvtchn: number;
}

/** Largest grant ref and event-channel port accepted (the sim's and Xen's defaults are far below). */
const MAX_REF = 0xffffffff;
const MAX_PORT = 1 << 17;

/**
 * Reads the front end's keys strictly: ring refs, one event channel (or a
 * tx/rx pair), request-rx-copy=1 and feature-rx-notify=1 (as Linux's netback
 * requires), one queue only (no multi-queue-num-queues above 1), no
 * multi-page rings. `read(key)` returns the key's value or undefined.
 */
export async function readFrontend(read: (key: string) => Promise<string | undefined>): Promise<Parse<FrontendRings>> {
  const get = async (k: string, min: number, max: number, optional = false): Promise<Parse<number | undefined>> => {
    const v = await read(k);
    if (v === undefined && optional) return { ok: true, value: undefined };
    return parseDecimal(v, k, min, max);
  };
  const queues = await get('multi-queue-num-queues', 1, 1, true);
  if (!queues.ok) return { ok: false, reason: `${queues.reason}: this back end serves one queue (it does not offer multi-queue-max-queues)` };
  const order = await get('tx-ring-order', 0, 0, true);
  if (!order.ok) return { ok: false, reason: `${order.reason}: this back end maps one-page rings only` };
  const tx = await get('tx-ring-ref', 1, MAX_REF);
  if (!tx.ok) return tx;
  const rx = await get('rx-ring-ref', 1, MAX_REF);
  if (!rx.ok) return rx;
  let txEvtchn: number;
  let rxEvtchn: number;
  const single = await read('event-channel');
  if (single !== undefined) {
    const p = parseDecimal(single, 'event-channel', 1, MAX_PORT);
    if (!p.ok) return p;
    txEvtchn = rxEvtchn = p.value;
  } else {
    const t = await get('event-channel-tx', 1, MAX_PORT);
    if (!t.ok) return { ok: false, reason: `${t.reason} (and there is no event-channel)` };
    const r = await get('event-channel-rx', 1, MAX_PORT);
    if (!r.ok) return r;
    txEvtchn = t.value as number;
    rxEvtchn = r.value as number;
  }
  const copy = await read('request-rx-copy');
  if (copy !== '1') return { ok: false, reason: `request-rx-copy is ${copy === undefined ? 'missing' : JSON.stringify(copy.slice(0, 20))}: this back end only copies (the front end must write request-rx-copy = 1)` };
  const notify = await read('feature-rx-notify');
  if (notify !== '1') return { ok: false, reason: `feature-rx-notify is ${notify === undefined ? 'missing' : JSON.stringify(notify.slice(0, 20))}: this back end needs it (as Linux's netback does)` };
  return { ok: true, value: { txRingRef: tx.value as number, rxRingRef: rx.value as number, txEvtchn, rxEvtchn } };
}
