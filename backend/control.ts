// The back end's control socket (docs/operations.md): a unix socket, mode
// 0600 by default, where `xsw-ctl` (or any script) sends one JSON request per
// line and reads one JSON response per line:
//   → {"cmd":"devices"}
//   ← {"ok":true,"result":[…]}    or    {"ok":false,"code":"EINVAL","error":"one sentence"}
// Everything a client sends is untrusted: a line longer than MAX_LINE bytes
// gets an error and the connection is closed (it cannot be resynchronised);
// a line that is not a JSON object, or names no known command, gets an error
// and the connection stays. At most MAX_CLIENTS connections at once (the next
// is told so and closed), and a connection that completes no request within
// IDLE_MS is closed. Nothing here runs on the data plane's thread: a client
// costs the control thread a little time and the switch nothing.
//
// Commands are registered by name (control-commands.ts registers the
// built-in ones); a command may take the connection over (capture streams
// pcapng on it). Device kinds register a lister (ControlServer.addDeviceKind)
// so `devices` shows every kind the back end runs.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';

export const MAX_LINE = 64 * 1024;
export const MAX_CLIENTS = 64;
export const IDLE_MS = 30_000;
const REFUSED_LINGER_MS = 1000;

/** An error a command reports to its client: one sentence, and an errno-like code. */
export class ControlError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'ControlError';
  }
}

export type Request = Record<string, unknown> & { cmd: string };

/** What a handler returns: a result for the reply, or TAKEN when it took the connection over. */
export const TAKEN = Symbol('taken');
export type Handler = (req: Request, conn: ControlConnection) => unknown;

export interface ControlConnection {
  socket: net.Socket;
  /** Writes one reply line. */
  reply(o: object): void;
  /** The connection is closing or closed. */
  readonly closed: boolean;
}

/**
 * One device as `xsw-ctl devices` shows it, whatever its kind. `id` is how a
 * person names it (`domid:device` for Xen PMD devices), `slot` its switch slot
 * when it has one (capture needs it).
 */
export interface DeviceInfo {
  kind: string;
  id: string;
  slot?: number;
  mac: string;
  vlan: number;
  state: string;
  [field: string]: unknown;
}

/** A kind of device the back end runs ("pmd"; "vhost-user" and "netif" register their own). */
export interface DeviceKind {
  kind: string;
  list(): DeviceInfo[];
}

export class ControlServer {
  private readonly server: net.Server;
  private readonly commands = new Map<string, Handler>();
  private readonly kinds: DeviceKind[] = [];
  private readonly clients = new Set<net.Socket>();
  /** Requests refused as malformed, oversized or unknown, and connections refused as too many. */
  readonly counters = { requests: 0, errors: 0, refusedClients: 0 };

  private constructor(readonly path: string, private readonly log: Logger) {
    this.server = net.createServer((s) => this.accept(s));
  }

  /**
   * Listens on `file` with `mode` (0o600: root only). A socket left there by
   * an earlier back end is replaced (the caller holds the instance lock, so
   * it cannot be a live one); anything else there is an error.
   */
  static async listen(file: string, mode: number, log: Logger): Promise<ControlServer> {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    const st = fs.lstatSync(file, { throwIfNoEntry: false });
    if (st && !st.isSocket()) throw new Error(`${file} exists and is not a socket: remove it or give another --control-socket`);
    if (st) fs.unlinkSync(file);
    const c = new ControlServer(file, log);
    const old = process.umask(0o777 & ~mode);
    try {
      await new Promise<void>((resolve, reject) => {
        c.server.once('error', reject);
        c.server.listen(file, () => {
          c.server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(old);
    }
    fs.chmodSync(file, mode);
    c.server.on('error', (err) => log.error({ err }, `control socket ${file}: ${err.message}`));
    return c;
  }

  /** Registers a command (a name taken twice is a programming error). */
  command(name: string, handler: Handler): this {
    if (this.commands.has(name)) throw new Error(`control command ${name} registered twice`);
    this.commands.set(name, handler);
    return this;
  }

  /** Registers a device kind for `devices`, `macs` and DEV lookups. */
  addDeviceKind(k: DeviceKind): void {
    this.kinds.push(k);
  }

  /** Every device of every kind. */
  devices(): DeviceInfo[] {
    return this.kinds.flatMap((k) => k.list());
  }

  get clientCount(): number {
    return this.clients.size;
  }

  async close(): Promise<void> {
    for (const s of this.clients) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    fs.rmSync(this.path, { force: true });
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => undefined); // a client going away is not our error
    if (this.clients.size >= MAX_CLIENTS) {
      this.counters.refusedClients++;
      // Say so, and read (and discard) what it sends for a moment so that its
      // request does not meet a closed socket before it reads the reply.
      socket.end(`${JSON.stringify({ ok: false, code: 'EBUSY', error: `The back end already serves ${MAX_CLIENTS} control clients: try again in a moment.` })}\n`);
      socket.resume();
      setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
      return;
    }
    this.clients.add(socket);
    socket.on('close', () => this.clients.delete(socket));
    socket.setTimeout(IDLE_MS, () => socket.destroy());
    let buf: Buffer = Buffer.alloc(0);
    let busy = false;
    let taken = false;
    const conn: ControlConnection = {
      socket,
      reply: (o) => {
        if (!socket.destroyed) socket.write(`${JSON.stringify(o)}\n`);
      },
      get closed() {
        return socket.destroyed || !socket.writable;
      },
    };
    const pump = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      try {
        for (;;) {
          if (taken || socket.destroyed) return;
          const nl = buf.indexOf(0x0a);
          if (nl < 0 || nl > MAX_LINE) break;
          const line = buf.subarray(0, nl).toString('utf8');
          buf = buf.subarray(nl + 1);
          socket.setTimeout(IDLE_MS);
          const out = await this.handle(line, conn);
          if (out === TAKEN) {
            taken = true;
            socket.setTimeout(0);
            return;
          }
          conn.reply(out as object);
        }
        if (buf.length > MAX_LINE && !(buf.indexOf(0x0a) >= 0 && buf.indexOf(0x0a) <= MAX_LINE)) {
          this.counters.errors++;
          // As for a refused client: read and discard what it still sends for
          // a moment, so that its next write does not meet a closed socket
          // (EPIPE) before it has read the reply.
          socket.end(`${JSON.stringify({ ok: false, code: 'E2BIG', error: `A request line is longer than ${MAX_LINE} bytes: send one JSON object per line.` })}\n`);
          taken = true;
          setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
          buf = Buffer.alloc(0);
        }
      } finally {
        busy = false;
      }
    };
    socket.on('data', (chunk: Buffer) => {
      if (taken) return;
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      void pump();
    });
  }

  private async handle(line: string, conn: ControlConnection): Promise<unknown> {
    this.counters.requests++;
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch {
      this.counters.errors++;
      return { ok: false, code: 'EINVAL', error: 'The request is not JSON: send one JSON object per line, such as {"cmd":"show"}.' };
    }
    if (typeof req !== 'object' || req === null || Array.isArray(req) || typeof (req as Request).cmd !== 'string') {
      this.counters.errors++;
      return { ok: false, code: 'EINVAL', error: 'The request has no "cmd": send a JSON object such as {"cmd":"show"}.' };
    }
    const r = req as Request;
    const handler = this.commands.get(r.cmd);
    if (!handler) {
      this.counters.errors++;
      return { ok: false, code: 'ENOSYS', error: `Unknown command "${r.cmd.slice(0, 64)}": known commands are ${[...this.commands.keys()].join(', ')}.` };
    }
    try {
      const result = await handler(r, conn);
      if (result === TAKEN) return TAKEN;
      return { ok: true, result };
    } catch (err) {
      this.counters.errors++;
      if (err instanceof ControlError) return { ok: false, code: err.code, error: err.message };
      this.log.error({ err, cmd: r.cmd }, `control command ${r.cmd} failed: ${(err as Error).message}`);
      return { ok: false, code: 'EIO', error: `The command ${r.cmd} failed inside the back end: ${(err as Error).message}` };
    }
  }
}

/** The control socket's default path: /run/xsw/backend.sock on Xen, <XSW_SIM_DIR>/backend.sock on the simulated platform. */
export function defaultControlSocket(lockFile: string): string {
  return path.join(path.dirname(lockFile), 'backend.sock');
}
