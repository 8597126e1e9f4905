// Live capture sessions (`xsw-ctl capture`): the data plane copies the
// frames of the chosen ports into one bounded ring per session
// (native/switch/capture.h); here the control thread drains that ring every
// DRAIN_MS and streams it as pcapng on the client's connection: a section
// header, one interface block per port, then the data plane's packet blocks.
// A client that reads slowly is not waited for: while its socket is full the
// ring is not drained, fills up, and the data plane counts what it could not
// copy (capture drops); switching never waits for a capture.
import os from 'node:os';
import type net from 'node:net';
import type { CaptureChunk } from '../native/addon';
import { interfaceDescription, sectionHeader } from './pcapng';

/** Frames a session's ring holds. */
export const CAPTURE_SLOTS = 8192;
const DRAIN_MS = 10;
const CHUNK_BYTES = 1 << 20;

/** The data plane's capture calls (native/switch.ts Switch). */
export interface CaptureSwitch {
  captureStart(ports: (number | 'nic')[], snaplen: number, slots?: number): number;
  captureRead(id: number, maxBytes?: number, maxRecords?: number): CaptureChunk;
  captureStop(id: number): void;
}

export interface CapturePort {
  /** A switch slot, or 'nic'. */
  port: number | 'nic';
  /** The pcapng interface name: the device's id (`1:0`) or `nic`. */
  name: string;
  description: string;
}

interface Session {
  id: number;
  captured: number;
  dropped: number;
  stop(): void;
}

export class Captures {
  private readonly sessions = new Set<Session>();
  private done = { sessions: 0, captured: 0, dropped: 0 };

  constructor(private readonly sw: CaptureSwitch) {}

  /** Sessions running now, and frames captured and dropped by every session so far. */
  totals(): { active: number; sessions: number; captured: number; dropped: number } {
    let captured = this.done.captured;
    let dropped = this.done.dropped;
    for (const s of this.sessions) {
      captured += s.captured;
      dropped += s.dropped;
    }
    return { active: this.sessions.size, sessions: this.done.sessions + this.sessions.size, captured, dropped };
  }

  /**
   * Starts capturing `ports` and streams pcapng to `socket` until `count`
   * frames were sent (0: until the client goes away). Throws what
   * captureStart throws (ENOENT, EBUSY, EINVAL) before writing anything.
   * `before` is written first (the reply line).
   */
  stream(ports: CapturePort[], snaplen: number, count: number, socket: net.Socket, before: string): void {
    if (os.endianness() !== 'LE') throw Object.assign(new Error('live capture needs a little-endian host'), { code: 'ENOTSUP' });
    const id = this.sw.captureStart(ports.map((p) => p.port), snaplen, CAPTURE_SLOTS);
    let left = count > 0 ? count : Infinity;
    let timer: NodeJS.Timeout | undefined;
    const note = (c: CaptureChunk): void => {
      session.captured = c.captured;
      session.dropped = c.dropped;
    };
    const session: Session = {
      id,
      captured: 0,
      dropped: 0,
      stop: () => {
        if (!this.sessions.delete(session)) return;
        clearInterval(timer);
        note(this.sw.captureRead(id, 1, 0)); // the final counters, nothing drained
        this.sw.captureStop(id);
        this.done = {
          sessions: this.done.sessions + 1,
          captured: this.done.captured + session.captured,
          dropped: this.done.dropped + session.dropped,
        };
      },
    };
    this.sessions.add(session);
    socket.write(before);
    socket.write(Buffer.concat([sectionHeader(), ...ports.map((p) => interfaceDescription(p.name, p.description, snaplen))]));
    const drain = (): void => {
      if (socket.destroyed) return session.stop();
      // A slow reader: the ring is left to fill, and the data plane counts what it has no room for.
      if (socket.writableNeedDrain) return note(this.sw.captureRead(id, 1, 0));
      const c = this.sw.captureRead(id, CHUNK_BYTES, left === Infinity ? 0xffffffff : left);
      note(c);
      if (c.records > 0) {
        socket.write(c.blocks);
        left -= c.records;
      }
      if (left <= 0) {
        session.stop();
        socket.end();
      }
    };
    timer = setInterval(drain, DRAIN_MS);
    socket.on('close', () => session.stop());
  }

  /** Ends every session (the back end is stopping). */
  stopAll(): void {
    for (const s of [...this.sessions]) s.stop();
  }
}
