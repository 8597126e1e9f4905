// The embedded xenstored's socket side. dom0 connects on `<dir>/socket`
// (privileged); each introduced domain gets `<dir>/dom<id>.sock`, and whoever
// connects there is that domain (unprivileged, relative paths under
// /local/domain/<id>), as a real domain's xenstore ring is bound to it.
//
// Scheduling, as C xenstored's main loop: each turn answers at most one
// request per connection, and turns are separate event-loop iterations, so a
// client that pipelines 20,000 requests gets one answered per turn like
// everyone else.
//
// Flow control, per connection: a connection's input is read while less
// than INPUT_HIGH bytes of it wait to be parsed. Its requests are answered
// while its transport holds less than HIGH_WATER unsent bytes, nothing waits
// in its queue, and (for a domain) fewer than its `outstanding` quota of
// messages are unsent. Watch events are bounded by the connection's byte
// budget (connection.ts). Nobody is disconnected for being slow; a
// connection is closed only for a broken header (over 4096 bytes), when its
// domain is released, or at once when its domain already has its
// `connections` quota of connections open.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { encode, Message, Parser } from '../wire';
import { Connection } from './connection';
import { Core } from './core';
import { Quota } from './quota';

const HIGH_WATER = 64 * 1024;
const INPUT_HIGH = 64 * 1024;

export interface XenStoredOptions {
  /** Directory for the sockets: `socket` (dom0) and `dom<id>.sock`. */
  dir: string;
  quota?: Partial<Quota>;
  logger?: pino.Logger;
}

/** One accepted socket: its parser, its connection, and its flow-control state. */
interface Session {
  socket: net.Socket;
  parser: Parser;
  conn: Connection;
  /** Messages written to the socket and not yet flushed by it. */
  unflushed: number;
  reading: boolean;
  log: pino.Logger;
}

export class XenStored {
  readonly core: Core;
  readonly dir: string;
  private readonly log: pino.Logger;
  private readonly servers = new Map<number | 'dom0', net.Server>();
  private readonly sessions = new Set<Session>();
  /** Sessions that may have a request to answer, in turn order. */
  private readonly ready = new Set<Session>();
  private turnScheduled = false;
  /** Open connections per domain, for the `connections` quota. */
  private readonly perDomain = new Map<number, number>();
  /** Domains whose over-the-cap refusal has been logged since they were last under it. */
  private readonly capLogged = new Set<number>();

  constructor(opts: XenStoredOptions) {
    this.dir = opts.dir;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'xenstored' });
    this.core = new Core({
      quota: opts.quota,
      hooks: {
        introduced: (domid) => this.openDomainSocket(domid),
        released: (domid) => this.closeDomainSocket(domid),
      },
    });
  }

  /** The privileged socket: what XENSTORED_PATH points at. */
  get socketPath(): string {
    return path.join(this.dir, 'socket');
  }

  domainSocketPath(domid: number): string {
    return path.join(this.dir, `dom${domid}.sock`);
  }

  /** Starts listening on the privileged socket (replacing a stale socket file). */
  async listen(): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    const server = this.makeServer(0, true);
    this.servers.set('dom0', server);
    await listenOn(server, this.socketPath);
    this.log.info({ socket: this.socketPath }, 'xenstored listening');
  }

  /** Stops listening, disconnects everyone and removes the socket files. */
  async close(): Promise<void> {
    for (const s of this.sessions) s.socket.destroy();
    const closing = [...this.servers.entries()].map(async ([key, server]) => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(key === 'dom0' ? this.socketPath : this.domainSocketPath(key), { force: true });
    });
    this.servers.clear();
    await Promise.all(closing);
  }

  private openDomainSocket(domid: number): void {
    const server = this.makeServer(domid, false);
    this.servers.set(domid, server);
    listenOn(server, this.domainSocketPath(domid)).then(
      () => this.log.info({ domid }, 'domain introduced'),
      (err: Error) => this.log.error({ domid, err: err.message }, 'cannot open the domain socket'),
    );
  }

  private closeDomainSocket(domid: number): void {
    const server = this.servers.get(domid);
    if (!server) return;
    this.servers.delete(domid);
    server.close();
    fs.rmSync(this.domainSocketPath(domid), { force: true });
    this.capLogged.delete(domid);
    this.log.info({ domid }, 'domain released');
  }

  private makeServer(domid: number, privileged: boolean): net.Server {
    return net.createServer((socket) => this.accept(socket, domid, privileged));
  }

  private accept(socket: net.Socket, domid: number, privileged: boolean): void {
    socket.on('error', () => undefined);
    if (!privileged && !this.core.isIntroduced(domid)) {
      socket.destroy();
      return;
    }
    if (!privileged) {
      const open = this.perDomain.get(domid) ?? 0;
      if (open >= this.core.quota.connections) {
        if (!this.capLogged.has(domid)) {
          this.capLogged.add(domid);
          this.log.warn({ domid, limit: this.core.quota.connections },
            `domain ${domid} already has ${open} XenStore connections open, its limit: closing further ones until one closes`);
        }
        socket.destroy();
        return;
      }
      this.perDomain.set(domid, open + 1);
    }
    const s: Session = {
      socket, parser: new Parser(), conn: undefined as unknown as Connection, unflushed: 0, reading: true, log: this.log.child({ domid }),
    };
    s.conn = new Connection(this.core, domid, privileged, {
      send: (msg: Message) => {
        s.unflushed++;
        socket.write(encode(msg), () => {
          s.unflushed--;
          this.makeReady(s);
        });
      },
      writable: () => !socket.destroyed && socket.writableLength < HIGH_WATER,
    }, () => socket.destroy());
    this.sessions.add(s);

    socket.on('data', (chunk: Buffer) => {
      s.parser.feed(chunk);
      if (s.parser.buffered >= INPUT_HIGH) this.setReading(s, false);
      this.makeReady(s);
    });
    socket.on('drain', () => {
      s.conn.flush();
      this.makeReady(s);
    });
    socket.on('close', () => {
      this.sessions.delete(s);
      this.ready.delete(s);
      s.conn.close();
      if (!privileged) {
        const n = (this.perDomain.get(domid) ?? 1) - 1;
        if (n === 0) this.perDomain.delete(domid);
        else this.perDomain.set(domid, n);
        if (n < this.core.quota.connections) this.capLogged.delete(domid);
      }
    });
  }

  private makeReady(s: Session): void {
    if (s.conn.closed) return;
    this.ready.add(s);
    if (!this.turnScheduled) {
      this.turnScheduled = true;
      setImmediate(() => this.turn());
    }
  }

  /** One turn: at most one request from each ready connection. */
  private turn(): void {
    this.turnScheduled = false;
    const now = [...this.ready];
    this.ready.clear();
    for (const s of now) this.step(s);
  }

  /** Answers one request of `s` if it may be answered now; keeps `s` ready while it has more. */
  private step(s: Session): void {
    const { conn, parser, socket } = s;
    if (conn.closed) return;
    conn.flush();
    if (!conn.ready(s.unflushed)) {
      // Resumed by a write callback or 'drain', which make the session ready again.
      this.setReading(s, false);
      return;
    }
    const r = parser.next();
    if (r?.kind === 'oversize') {
      s.log.warn({ len: r.len }, 'message over 4096 bytes: closing the connection');
      socket.destroy();
      return;
    }
    if (r) {
      conn.handle(r.msg);
      this.makeReady(s);
    }
    this.setReading(s, parser.buffered < INPUT_HIGH);
  }

  private setReading(s: Session, on: boolean): void {
    if (on === s.reading || s.socket.destroyed) return;
    s.reading = on;
    if (on) s.socket.resume();
    else s.socket.pause();
  }
}

function listenOn(server: net.Server, file: string): Promise<void> {
  fs.rmSync(file, { force: true });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // A deep backlog: many clients (a whole test bed of guests) may connect at once.
    server.listen({ path: file, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
