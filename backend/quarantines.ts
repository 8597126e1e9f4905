// Sticky quarantine (docs/security.md, "Quarantine"). A device the data plane
// quarantined may attach again only after its guest has unpublished it
// (event_type_start_V removed or not 1, as seen by the back end) and
// published it again, and no sooner than its back-off: 1 s after the first
// quarantine, doubling with every further one (a repeat offender waits
// longer), capped at 5 minutes. The strikes are forgotten with the domain.

export interface BackoffOptions {
  /** Wait after the first quarantine, ms. */
  baseMs: number;
  /** The longest wait, ms. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 1000, maxMs: 300_000 };

interface Penalty {
  strikes: number;
  /** Not before this time (ms, the caller's clock). */
  until: number;
  /** The guest has unpublished the device since its last quarantine. */
  unpublished: boolean;
  /** The ring violation of the last quarantine, when the caller gave it. */
  reason?: string;
  /** When the last quarantine happened (ms, the caller's clock). */
  at: number;
}

/** One quarantined device, as the control socket lists it. */
export interface QuarantineEntry {
  domid: number;
  dev: number;
  strikes: number;
  reason?: string;
  at: number;
  until: number;
  unpublished: boolean;
}

export type Verdict = { ok: true } | { ok: false; why: 'unpublish' } | { ok: false; why: 'backoff'; waitMs: number };

export class Quarantines {
  private readonly byDevice = new Map<string, Penalty>();

  constructor(private readonly opts: BackoffOptions = DEFAULT_BACKOFF) {}

  /** The wait after the n-th quarantine (n ≥ 1). */
  backoffMs(strikes: number): number {
    return Math.min(this.opts.baseMs * 2 ** Math.min(strikes - 1, 40), this.opts.maxMs);
  }

  /** Records a quarantine of (domid, dev) at `now`; returns its strike count and wait. */
  strike(domid: number, dev: number, now: number, reason?: string): { strikes: number; waitMs: number } {
    const key = `${domid}/${dev}`;
    const strikes = (this.byDevice.get(key)?.strikes ?? 0) + 1;
    const waitMs = this.backoffMs(strikes);
    this.byDevice.set(key, { strikes, until: now + waitMs, unpublished: false, reason, at: now });
    return { strikes, waitMs };
  }

  /** The guest's event_type_start_V is absent or not 1. */
  unpublished(domid: number, dev: number): void {
    const p = this.byDevice.get(`${domid}/${dev}`);
    if (p) p.unpublished = true;
  }

  /** May (domid, dev), published now, attach at `now`? */
  verdict(domid: number, dev: number, now: number): Verdict {
    const p = this.byDevice.get(`${domid}/${dev}`);
    if (!p) return { ok: true };
    if (!p.unpublished) return { ok: false, why: 'unpublish' };
    if (now < p.until) return { ok: false, why: 'backoff', waitMs: p.until - now };
    return { ok: true };
  }

  /** Strikes of (domid, dev) so far. */
  strikes(domid: number, dev: number): number {
    return this.byDevice.get(`${domid}/${dev}`)?.strikes ?? 0;
  }

  /** Forgets every device of `domid` (the domain is gone). */
  forget(domid: number): void {
    for (const key of [...this.byDevice.keys()]) if (key.startsWith(`${domid}/`)) this.byDevice.delete(key);
  }

  /** Every device with strikes (the control socket's quarantine list). */
  list(): QuarantineEntry[] {
    return [...this.byDevice.entries()].map(([key, p]) => {
      const [domid, dev] = key.split('/').map(Number);
      return { domid, dev, strikes: p.strikes, reason: p.reason, at: p.at, until: p.until, unpublished: p.unpublished };
    });
  }

  /** An operator released (domid, dev): its strikes are forgotten. False if it had none. */
  release(domid: number, dev: number): boolean {
    return this.byDevice.delete(`${domid}/${dev}`);
  }

  get size(): number {
    return this.byDevice.size;
  }
}
