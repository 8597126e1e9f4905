// Rate limit for the warn lines a guest can cause (refusals, spoofing): at
// most `perWindow` lines per domain per window (10 per minute by default);
// the rest are counted and reported in one line when the window ends, so a
// guest cannot flood dom0's log with distinct messages.

export interface LimitVerdict {
  /** Log this line. */
  log: boolean;
  /** Lines suppressed in the window that just ended: report them first. */
  suppressedBefore: number;
}

interface Window {
  start: number;
  logged: number;
  suppressed: number;
}

export class DomainLogLimiter {
  private readonly windows = new Map<number, Window>();

  constructor(readonly perWindow = 10, readonly windowMs = 60_000) {}

  /** Whether a line about `domid` may be logged at `now`. */
  admit(domid: number, now: number): LimitVerdict {
    let w = this.windows.get(domid);
    let suppressedBefore = 0;
    if (!w || now - w.start >= this.windowMs) {
      suppressedBefore = w?.suppressed ?? 0;
      w = { start: now, logged: 0, suppressed: 0 };
      this.windows.set(domid, w);
    }
    if (w.logged < this.perWindow) {
      w.logged++;
      return { log: true, suppressedBefore };
    }
    w.suppressed++;
    return { log: false, suppressedBefore };
  }

  /** Windows that ended with suppressed lines, as [domid, count]; they are closed. */
  expired(now: number): [number, number][] {
    const out: [number, number][] = [];
    for (const [domid, w] of this.windows) {
      if (now - w.start < this.windowMs) continue;
      if (w.suppressed > 0) out.push([domid, w.suppressed]);
      this.windows.delete(domid);
    }
    return out;
  }

  /** Forgets `domid`; returns the lines suppressed and not reported yet. */
  forget(domid: number): number {
    const n = this.windows.get(domid)?.suppressed ?? 0;
    this.windows.delete(domid);
    return n;
  }
}
