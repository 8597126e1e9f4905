// The demo's wire frames: xsw-front's test frames (frontend/frame.ts) with
// an 802.1Q tag inserted, and the tally of what comes back out of the NIC:
// every returned frame must be one of ours, intact (magic, length, CRC-32 of
// the payload), with the expected MACs and VLAN, in sequence 0, 1, 2, ...
import { buildTestFrame, checkTestFrame, TEST_ETHERTYPE } from '../frontend/frame';
import { formatMac } from '../frontend/mac';

const TPID_8021Q = 0x8100;
const VLAN_ID_MASK = 0x0fff;

/** The frame with a VLAN tag (priority 0) after its source MAC. */
export function tagFrame(frame: Buffer, vlan: number): Buffer {
  const tag = Buffer.alloc(4);
  tag.writeUInt16BE(TPID_8021Q, 0);
  tag.writeUInt16BE(vlan & VLAN_ID_MASK, 2);
  return Buffer.concat([frame.subarray(0, 12), tag, frame.subarray(12)]);
}

/**
 * The untagged frame and its VLAN id: from the kernel's aux data when it
 * stripped the tag (auxVlan not null), else from an in-frame 802.1Q tag, else null.
 */
export function untagFrame(data: Buffer, auxVlan: number | null): { vlan: number | null; frame: Buffer } {
  if (auxVlan !== null) return { vlan: auxVlan, frame: data };
  if (data.length >= 18 && data.readUInt16BE(12) === TPID_8021Q) {
    return { vlan: data.readUInt16BE(14) & VLAN_ID_MASK, frame: Buffer.concat([data.subarray(0, 12), data.subarray(16)]) };
  }
  return { vlan: null, frame: data };
}

export interface WireSpec {
  /** Frames to send. */
  count: number;
  /** Untagged frame size in bytes (at least 34). */
  size: number;
  /** What the generator sends: dst, src, VLAN. */
  dst: Buffer;
  src: Buffer;
  vlan: number;
  /** What must come back out of the NIC. */
  expectDst: Buffer;
  expectSrc: Buffer;
  expectVlan: number;
}

/** The seq-th frame the generator sends (tagged). */
export function wireFrame(spec: WireSpec, seq: number): Buffer {
  return tagFrame(buildTestFrame(spec.size, spec.dst, spec.src, BigInt(seq)), spec.vlan);
}

export interface WireResult {
  sent: number;
  /** Test frames that came back (ethertype 0x88B5). */
  received: number;
  /** Of those, the ones with every check passed. */
  correct: number;
  /** Why the others failed: reason -> count (a frame counts under its first failed check). */
  wrong: Record<string, number>;
  /** The first wrong frame, described for people. */
  firstWrong?: string;
  /** Frames that were not test frames (kernel noise), ignored. */
  other: number;
}

const macText = (b: Buffer): string => formatMac(b.subarray(0, 6));

/** Counts and checks the frames that come back. */
export class WireTally {
  private received = 0;
  private correct = 0;
  private other = 0;
  private nextSeq = 0n;
  private readonly wrong: Record<string, number> = {};
  private firstWrong: string | undefined;

  constructor(private readonly spec: WireSpec) {}

  get ours(): number {
    return this.received;
  }

  add(data: Buffer, auxVlan: number | null): void {
    const { vlan, frame } = untagFrame(data, auxVlan);
    if (frame.length < 14 || frame.readUInt16BE(12) !== TEST_ETHERTYPE) {
      this.other++;
      return;
    }
    this.received++;
    const problem = this.check(frame, vlan);
    if (problem === undefined) {
      this.correct++;
      return;
    }
    this.wrong[problem.reason] = (this.wrong[problem.reason] ?? 0) + 1;
    this.firstWrong ??= `frame ${this.received}: ${problem.detail}`;
  }

  private check(frame: Buffer, vlan: number | null): { reason: string; detail: string } | undefined {
    const s = this.spec;
    const c = checkTestFrame(frame);
    if (c.check !== 'ok') return { reason: 'payload', detail: `payload check failed (${c.check})` };
    const seq = c.seq ?? -1n;
    if (seq !== this.nextSeq) {
      const detail = `sequence ${seq} where ${this.nextSeq} was expected`;
      if (seq >= 0n) this.nextSeq = seq + 1n;
      return { reason: 'order', detail };
    }
    this.nextSeq = seq + 1n;
    if (frame.length !== s.size) return { reason: 'length', detail: `${frame.length} bytes, not ${s.size}` };
    if (!frame.subarray(0, 6).equals(s.expectDst)) return { reason: 'dst', detail: `dst ${macText(frame)} instead of ${macText(s.expectDst)}` };
    if (!frame.subarray(6, 12).equals(s.expectSrc)) {
      return { reason: 'src', detail: `src ${macText(frame.subarray(6))} instead of ${macText(s.expectSrc)}` };
    }
    if (vlan !== s.expectVlan) return { reason: 'vlan', detail: `VLAN ${vlan ?? 'none'} instead of ${s.expectVlan}` };
    return undefined;
  }

  result(sent: number): WireResult {
    return {
      sent,
      received: this.received,
      correct: this.correct,
      wrong: { ...this.wrong },
      ...(this.firstWrong ? { firstWrong: this.firstWrong } : {}),
      other: this.other,
    };
  }
}

/** True when exactly `count` frames went out and came back, all correct. */
export function wirePassed(r: WireResult, count: number): boolean {
  return r.sent === count && r.received === count && r.correct === count;
}
