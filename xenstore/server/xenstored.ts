// The embedded xenstored's socket side. dom0 connects on `<dir>/socket`
// (privileged); each introduced domain gets `<dir>/dom<id>.sock`, and whoever
// connects there is that domain (unprivileged, relative paths under
// /local/domain/<id>), as a real domain's xenstore ring is bound to it.
//
// Flow control, per connection: while more than HIGH_WATER bytes wait to go
// out, or (for a domain) more than its `outstanding` quota of messages, the
// server stops reading that connection's requests. Watch events are not
// requests and cannot be held back that way, so a connection whose unsent
// output exceeds maxQueuedBytes is disconnected: a client that never reads
// cannot make the server hold unbounded memory, and nobody else notices.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { encode, Message, Parser } from '../wire';
import { Connection } from './connection';
import { Core } from './core';
import { Quota } from './quota';

const HIGH_WATER = 64 * 1024;

export interface XenStoredOptions {
  /** Directory for the sockets: `socket` (dom0) and `dom<id>.sock`. */
  dir: string;
  quota?: Partial<Quota>;
  /** Unsent bytes after which a connection is cut off (default 1 MiB). */
  maxQueuedBytes?: number;
  logger?: pino.Logger;
}

export class XenStored {
  readonly core: Core;
  readonly dir: string;
  private readonly log: pino.Logger;
  private readonly maxQueued: number;
  private readonly servers = new Map<number | 'dom0', net.Server>();
  private readonly sockets = new Set<net.Socket>();

  constructor(opts: XenStoredOptions) {
    this.dir = opts.dir;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'xenstored' });
    this.maxQueued = opts.maxQueuedBytes ?? 1024 * 1024;
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
    for (const s of this.sockets) s.destroy();
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
    this.log.info({ domid }, 'domain released');
  }

  private makeServer(domid: number, privileged: boolean): net.Server {
    return net.createServer((socket) => this.accept(socket, domid, privileged));
  }

  private accept(socket: net.Socket, domid: number, privileged: boolean): void {
    this.sockets.add(socket);
    const parser = new Parser();
    let outstanding = 0;
    let reading = true;
    const log = this.log.child({ domid });

    const blocked = (): boolean =>
      socket.writableLength > HIGH_WATER || (!privileged && outstanding >= this.core.quota.outstanding);

    const pump = (): void => {
      while (!conn.closed) {
        if (blocked()) {
          if (reading) {
            reading = false;
            socket.pause();
          }
          return;
        }
        const r = parser.next();
        if (!r) break;
        if (r.kind === 'oversize') {
          log.warn({ len: r.len }, 'message over 4096 bytes: closing the connection');
          socket.destroy();
          return;
        }
        conn.handle(r.msg);
      }
      if (!reading && !conn.closed) {
        reading = true;
        socket.resume();
      }
    };

    const send = (msg: Message): void => {
      if (socket.destroyed) return;
      const bytes = encode(msg);
      if (socket.writableLength + bytes.length > this.maxQueued) {
        log.warn({ queued: socket.writableLength }, 'client does not read its replies or events: disconnecting it');
        socket.destroy();
        conn.close();
        return;
      }
      outstanding++;
      socket.write(bytes, () => {
        outstanding--;
        if (!reading) setImmediate(pump);
      });
    };

    const conn = new Connection(this.core, domid, privileged, send, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      parser.feed(chunk);
      pump();
    });
    socket.on('drain', pump);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.sockets.delete(socket);
      conn.close();
    });
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
