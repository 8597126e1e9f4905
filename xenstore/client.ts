// XenStore client over an injected transport. Requests carry increasing
// req_ids and replies are matched by req_id; watch events are emitted as
// 'watch' (path, token) and are also available as an async iterator.
//
// Transactions: every operation takes an optional transaction id as its last
// argument (0 or omitted: none). transaction(fn) runs fn with a handle whose
// methods are bound to a new transaction, commits, and redoes the whole thing
// when the commit (or any step) fails with EAGAIN.
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import {
  describeError, encode, ErrorCode, formatPerm, isErrorCode, Message, Op, OpName, opName, parsePerm, Perm, Parser,
  splitStrings, strings,
} from './wire';
import { Transport, unixSocketTransport, xenbusTransport } from './transport';

export type { Perm } from './wire';

export type XenStoreErrorCode = ErrorCode | 'ECONNRESET' | 'EPROTO';

/** A failed XenStore operation: the errno name, the operation, and the path when there is one. */
export class XenStoreError extends Error {
  constructor(
    readonly code: XenStoreErrorCode,
    readonly op: string,
    readonly path?: string,
    detail?: string,
  ) {
    const what = path !== undefined ? `${op} ${path}` : op;
    const why = isErrorCode(code) ? describeError(code) : detail ?? code;
    super(`XenStore ${what} failed: ${code} (${why})`);
    this.name = 'XenStoreError';
  }
}

export interface WatchEvent {
  path: string;
  token: string;
}

export interface ConnectOptions {
  /** A unix socket path; default XENSTORED_PATH, else /var/run/xenstored/socket if present, else /dev/xen/xenbus if present. */
  path?: string;
  /** Use this transport instead of opening one. */
  transport?: Transport;
}

interface Pending {
  resolve(msg: Message): void;
  reject(err: Error): void;
  op: string;
  path?: string;
}

/** The operations available inside a transaction (bound to its id). */
export interface XenStoreTransaction {
  readonly id: number;
  read(path: string): Promise<string>;
  readBuffer(path: string): Promise<Buffer>;
  tryRead(path: string): Promise<string | undefined>;
  write(path: string, value: string | Buffer): Promise<void>;
  mkdir(path: string): Promise<void>;
  rm(path: string): Promise<void>;
  directory(path: string): Promise<string[]>;
  getPerms(path: string): Promise<Perm[]>;
  setPerms(path: string, perms: (Perm | string)[]): Promise<void>;
}

const XENSTORED_SOCKET = '/var/run/xenstored/socket';
const XENBUS_DEVICE = '/dev/xen/xenbus';

/**
 * Where XenStore is, in libxenstore's order: XENSTORED_PATH, else xenstored's
 * socket where it runs (dom0), else the xenbus device (a guest). dom0 has the
 * device too, but through it a closing back end could hang (docs/xen.md).
 */
export function defaultXenStorePath(exists: (file: string) => boolean = fs.existsSync): string {
  if (process.env.XENSTORED_PATH) return process.env.XENSTORED_PATH;
  if (exists(XENSTORED_SOCKET)) return XENSTORED_SOCKET;
  return exists(XENBUS_DEVICE) ? XENBUS_DEVICE : XENSTORED_SOCKET;
}

export class XenStoreClient extends EventEmitter {
  private nextReqId = 1;
  private pending = new Map<number, Pending>();
  private parser = new Parser();
  private closed = false;
  private closeError: Error | undefined;

  constructor(private readonly transport: Transport) {
    super();
    transport.onData((chunk) => this.receive(chunk));
    transport.onClose((err) => this.closedByPeer(err));
  }

  /** Connects: an explicit transport or path, else defaultXenStorePath(). */
  static async connect(opts: ConnectOptions = {}): Promise<XenStoreClient> {
    if (opts.transport) return new XenStoreClient(opts.transport);
    const where = opts.path ?? defaultXenStorePath();
    const isDevice = fs.existsSync(where) && fs.statSync(where).isCharacterDevice();
    return new XenStoreClient(await (isDevice ? xenbusTransport(where) : unixSocketTransport(where)));
  }

  /** Reads a value as UTF-8. */
  async read(path: string, tx = 0): Promise<string> {
    return (await this.readBuffer(path, tx)).toString('utf8');
  }

  async readBuffer(path: string, tx = 0): Promise<Buffer> {
    return (await this.request(Op.READ, tx, strings(path), path)).payload;
  }

  /** Reads a value, or undefined if the node does not exist. */
  async tryRead(path: string, tx = 0): Promise<string | undefined> {
    try {
      return await this.read(path, tx);
    } catch (err) {
      if (err instanceof XenStoreError && err.code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async write(path: string, value: string | Buffer, tx = 0): Promise<void> {
    const data = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    await this.request(Op.WRITE, tx, Buffer.concat([strings(path), data]), path);
  }

  async mkdir(path: string, tx = 0): Promise<void> {
    await this.request(Op.MKDIR, tx, strings(path), path);
  }

  /** Removes a node and everything below it. */
  async rm(path: string, tx = 0): Promise<void> {
    await this.request(Op.RM, tx, strings(path), path);
  }

  /** Names of the children, in creation order. Falls back to DIRECTORY_PART for long listings. */
  async directory(path: string, tx = 0): Promise<string[]> {
    try {
      const reply = await this.request(Op.DIRECTORY, tx, strings(path), path);
      return this.stringList(reply, 'directory', path);
    } catch (err) {
      if (!(err instanceof XenStoreError && err.code === 'E2BIG')) throw err;
    }
    return this.directoryPart(path, tx);
  }

  async getPerms(path: string, tx = 0): Promise<Perm[]> {
    const reply = await this.request(Op.GET_PERMS, tx, strings(path), path);
    return this.stringList(reply, 'get-perms', path).map((s) => {
      const p = parsePerm(s);
      if (!p) throw new XenStoreError('EPROTO', 'get-perms', path, `xenstored sent a bad permission ${JSON.stringify(s)}`);
      return p;
    });
  }

  /** Sets perms: objects or their text form ("n0", "r5"); the first is the owner and the default. */
  async setPerms(path: string, perms: (Perm | string)[], tx = 0): Promise<void> {
    const text = perms.map((p) => (typeof p === 'string' ? p : formatPerm(p)));
    await this.request(Op.SET_PERMS, tx, strings(path, ...text), path);
  }

  /** Adds a watch; xenstored fires it once at once, then on every change at or below `path`. */
  async watch(path: string, token: string): Promise<void> {
    await this.request(Op.WATCH, 0, strings(path, token), path);
  }

  async unwatch(path: string, token: string): Promise<void> {
    await this.request(Op.UNWATCH, 0, strings(path, token), path);
  }

  /**
   * Watch events as an async iterator (events from the moment of the call).
   * Ends when the client closes or `signal` aborts.
   */
  watchEvents(signal?: AbortSignal): AsyncIterableIterator<WatchEvent> {
    const queue: WatchEvent[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    const onWatch = (path: string, token: string): void => {
      queue.push({ path, token });
      wake?.();
    };
    const stop = (): void => {
      done = true;
      this.off('watch', onWatch);
      this.off('close', stop);
      wake?.();
    };
    this.on('watch', onWatch);
    this.on('close', stop);
    signal?.addEventListener('abort', stop, { once: true });
    if (this.closed || signal?.aborted) stop();
    const iterator: AsyncIterableIterator<WatchEvent> = {
      next: async () => {
        while (queue.length === 0 && !done) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        const value = queue.shift();
        return value ? { value, done: false } : { value: undefined, done: true };
      },
      return: async () => {
        stop();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  async startTransaction(): Promise<number> {
    const reply = await this.request(Op.TRANSACTION_START, 0, strings(''));
    const [id] = this.stringList(reply, 'transaction-start');
    if (!/^[0-9]+$/.test(id ?? '')) throw new XenStoreError('EPROTO', 'transaction-start', undefined, 'xenstored sent a bad transaction id');
    return Number(id);
  }

  /** Commits (true) or aborts (false). A commit that conflicted fails with EAGAIN. */
  async endTransaction(tx: number, commit: boolean): Promise<void> {
    await this.request(Op.TRANSACTION_END, tx, strings(commit ? 'T' : 'F'));
  }

  /**
   * Runs fn in a transaction and commits; on EAGAIN the whole transaction is
   * redone (up to `attempts` times). If fn throws anything else, the
   * transaction is aborted and the error rethrown.
   */
  async transaction<T>(fn: (tx: XenStoreTransaction) => Promise<T>, opts: { attempts?: number } = {}): Promise<T> {
    const attempts = opts.attempts ?? 100;
    for (let attempt = 1; ; attempt++) {
      const id = await this.startTransaction();
      let result: T;
      try {
        result = await fn(this.bind(id));
        await this.endTransaction(id, true);
        return result;
      } catch (err) {
        const again = err instanceof XenStoreError && err.code === 'EAGAIN';
        if (!(again && err.op === 'transaction-end')) await this.endTransaction(id, false).catch(() => undefined);
        if (!again || attempt >= attempts) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(attempt, 20)));
      }
    }
  }

  async getDomainPath(domid: number): Promise<string> {
    const reply = await this.request(Op.GET_DOMAIN_PATH, 0, strings(String(domid)));
    return this.stringList(reply, 'get-domain-path')[0] ?? '';
  }

  /** dom0 only: tells xenstored a domain exists (fires @introduceDomain). */
  async introduce(domid: number, mfn: number, evtchn: number): Promise<void> {
    await this.request(Op.INTRODUCE, 0, strings(String(domid), String(mfn), String(evtchn)));
  }

  /** dom0 only: tells xenstored a domain is gone (fires @releaseDomain). */
  async release(domid: number): Promise<void> {
    await this.request(Op.RELEASE, 0, strings(String(domid)));
  }

  async isDomainIntroduced(domid: number): Promise<boolean> {
    const reply = await this.request(Op.IS_DOMAIN_INTRODUCED, 0, strings(String(domid)));
    return this.stringList(reply, 'is-domain-introduced')[0] === 'T';
  }

  /** Closes the connection; pending requests fail with ECONNRESET. */
  close(): void {
    this.transport.close();
    this.closedByPeer();
  }

  /** Sends one request and resolves with the reply (rejects with XenStoreError on an error reply). */
  request(type: number, tx: number, payload: Buffer, path?: string): Promise<Message> {
    const op = opLabel(opName(type));
    if (this.closed) {
      return Promise.reject(new XenStoreError('ECONNRESET', op, path, this.closeError?.message ?? 'the connection to xenstored is closed'));
    }
    let bytes: Buffer;
    try {
      bytes = encode({ type, reqId: 0, txId: tx, payload });
    } catch {
      return Promise.reject(new XenStoreError('E2BIG', op, path));
    }
    let reqId = this.nextReqId;
    while (this.pending.has(reqId)) reqId = (reqId + 1) >>> 0 || 1;
    this.nextReqId = (reqId + 1) >>> 0 || 1;
    bytes.writeUInt32LE(reqId, 4);
    return new Promise((resolve, reject) => {
      this.pending.set(reqId, { resolve, reject, op, path });
      this.transport.send(bytes);
    });
  }

  private bind(id: number): XenStoreTransaction {
    return {
      id,
      read: (p) => this.read(p, id),
      readBuffer: (p) => this.readBuffer(p, id),
      tryRead: (p) => this.tryRead(p, id),
      write: (p, v) => this.write(p, v, id),
      mkdir: (p) => this.mkdir(p, id),
      rm: (p) => this.rm(p, id),
      directory: (p) => this.directory(p, id),
      getPerms: (p) => this.getPerms(p, id),
      setPerms: (p, perms) => this.setPerms(p, perms, id),
    };
  }

  private async directoryPart(path: string, tx: number): Promise<string[]> {
    for (let restart = 0; restart < 100; restart++) {
      let gen: string | undefined;
      let collected = Buffer.alloc(0);
      for (;;) {
        const reply = await this.request(Op.DIRECTORY_PART, tx, strings(path, String(collected.length)), path);
        const nul = reply.payload.indexOf(0);
        if (nul < 0) throw new XenStoreError('EPROTO', 'directory', path, 'xenstored sent a bad DIRECTORY_PART reply');
        const thisGen = reply.payload.toString('utf8', 0, nul);
        if (gen !== undefined && gen !== thisGen) break; // changed under us: start again
        gen = thisGen;
        collected = Buffer.concat([collected, reply.payload.subarray(nul + 1)]);
        const n = collected.length;
        if (n <= 1 || (collected[n - 1] === 0 && collected[n - 2] === 0)) {
          const names = splitStrings(collected.subarray(0, n - 1)) ?? [];
          return names;
        }
      }
    }
    throw new XenStoreError('EAGAIN', 'directory', path, 'the directory kept changing while it was listed');
  }

  private stringList(reply: Message, op: string, path?: string): string[] {
    const list = splitStrings(reply.payload);
    if (!list) throw new XenStoreError('EPROTO', op, path, 'xenstored sent a reply that is not a NUL-terminated list');
    return list;
  }

  private receive(chunk: Buffer): void {
    this.parser.feed(chunk);
    for (let r = this.parser.next(); r; r = this.parser.next()) {
      if (r.kind === 'oversize') {
        this.closeError = new Error('xenstored sent a message over 4096 bytes');
        this.close();
        return;
      }
      this.dispatch(r.msg);
    }
  }

  private dispatch(msg: Message): void {
    if (msg.type === Op.WATCH_EVENT) {
      const list = splitStrings(msg.payload);
      if (list && list.length >= 2) this.emit('watch', list[0], list[1]);
      return;
    }
    const p = this.pending.get(msg.reqId);
    if (!p) return;
    this.pending.delete(msg.reqId);
    if (msg.type === Op.ERROR) {
      const code = splitStrings(msg.payload)?.[0] ?? '';
      p.reject(new XenStoreError(isErrorCode(code) ? code : 'EPROTO', p.op, p.path, isErrorCode(code) ? undefined : `unknown error ${JSON.stringify(code)}`));
    } else {
      p.resolve(msg);
    }
  }

  private closedByPeer(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError ??= err;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      p.reject(new XenStoreError('ECONNRESET', p.op, p.path, this.closeError?.message ?? 'the connection to xenstored closed'));
    }
    this.emit('close');
  }
}

function opLabel(name: OpName | undefined): string {
  return name ? name.toLowerCase().replace(/_/g, '-') : 'request';
}
