// Request → reply. Every message type is decoded and answered here, and this
// is the one place where typed failures become XenStore error strings.
import {
  ErrorCode, Message, Op, OpName, opName, PAYLOAD_MAX, parsePerm, formatPerm, Perm, splitStrings, strings,
} from '../wire';
import type { Connection } from './connection';
import type { Core } from './core';
import { ChildList } from './children';
import {
  AlreadyExists, Busy, DataTooBig, InvalidArgument, NoEntry, NotPermitted, PermissionDenied, QuotaReached,
  TransactionAgain, TransactionFailed, Unsupported,
} from './errors';
import { checkNodePath, domainPath, isSpecial, resolve } from './path';
import { allows, PERM_OWNER, PERM_WRITE } from './perms';
import * as store from './store';
import { Change, Tree } from './store';

const OK = strings('OK');

/** Maps a failure to its wire error; anything unexpected is EIO. */
function errorCode(err: unknown): ErrorCode {
  if (err instanceof NoEntry) return 'ENOENT';
  if (err instanceof PermissionDenied) return 'EACCES';
  if (err instanceof InvalidArgument) return 'EINVAL';
  if (err instanceof QuotaReached) return err.code;
  if (err instanceof TransactionFailed) return 'ENOMEM';
  if (err instanceof DataTooBig) return 'E2BIG';
  if (err instanceof TransactionAgain) return 'EAGAIN';
  if (err instanceof AlreadyExists) return 'EEXIST';
  if (err instanceof NotPermitted) return 'EPERM';
  if (err instanceof Busy) return 'EBUSY';
  if (err instanceof Unsupported) return 'ENOSYS';
  return 'EIO';
}

/**
 * The reply to one request from `conn` (watch events it causes are sent to
 * their connections as a side effect). Never throws.
 */
export function reply(core: Core, conn: Connection, req: Message): Message {
  try {
    const payload = answer(core, conn, req);
    if (payload.length > PAYLOAD_MAX) throw new DataTooBig('reply');
    return { type: req.type, reqId: req.reqId, txId: req.txId, payload };
  } catch (err) {
    return { type: Op.ERROR, reqId: req.reqId, txId: req.txId, payload: strings(errorCode(err)) };
  }
}

/** The single NUL-terminated string a one-argument request carries. */
function oneArg(payload: Buffer): string {
  const args = splitStrings(payload);
  if (!args || args.length !== 1) throw new InvalidArgument('expected one NUL-terminated argument');
  return args[0];
}

function args(payload: Buffer, count: number, encoding: BufferEncoding = 'utf8'): string[] {
  const list = splitStrings(payload, encoding);
  if (!list || list.length !== count) throw new InvalidArgument(`expected ${count} NUL-terminated arguments`);
  return list;
}

/** A node path from the request, resolved for this connection and validated. */
function nodePath(conn: Connection, raw: string): string {
  const path = resolve(conn.domid, raw);
  checkNodePath(path, conn.core.quota.pathLength);
  return path;
}

function domid(text: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text) || Number(text) > 0xffff) throw new InvalidArgument('bad domain id');
  return Number(text);
}

function requirePrivileged(conn: Connection): void {
  if (!conn.privileged) throw new PermissionDenied('only dom0 may do this');
}

/** Runs a store operation in the request's transaction or on the live tree, firing watches when live. */
function withTree<T>(core: Core, conn: Connection, txId: number, op: (tree: Tree) => T, changes?: (r: T) => Change[]): T {
  if (txId !== 0) {
    const tx = conn.transactions.get(txId);
    if (!tx) throw new NoEntry(`transaction ${txId}`);
    const r = op(tx);
    if (changes) tx.record(changes(r));
    return r;
  }
  const r = op(core.live);
  if (changes) core.watches.fire(changes(r));
  return r;
}

const mutation = (c: Change[]): Change[] => c;

function answer(core: Core, conn: Connection, req: Message): Buffer {
  const name: OpName | undefined = opName(req.type);
  const actor = conn.actor;
  switch (name) {
    case 'READ': {
      const path = nodePath(conn, oneArg(req.payload));
      return withTree(core, conn, req.txId, (t) => store.read(t, actor, path));
    }
    case 'WRITE': {
      const nul = req.payload.indexOf(0);
      if (nul < 0) throw new InvalidArgument('WRITE needs a NUL after the path');
      const path = nodePath(conn, req.payload.toString('utf8', 0, nul));
      // A copy with memory of its own: a small Buffer.from() is a slice of an
      // 8 KiB pool slab, which a stored value would pin for as long as it lives.
      const raw = req.payload.subarray(nul + 1);
      const value = Buffer.allocUnsafeSlow(raw.length);
      raw.copy(value);
      withTree(core, conn, req.txId, (t) => store.write(t, actor, path, value), mutation);
      return OK;
    }
    case 'MKDIR': {
      const path = nodePath(conn, oneArg(req.payload));
      withTree(core, conn, req.txId, (t) => store.mkdir(t, actor, path), mutation);
      return OK;
    }
    case 'RM': {
      const path = nodePath(conn, oneArg(req.payload));
      withTree(core, conn, req.txId, (t) => store.rm(t, actor, path), mutation);
      return OK;
    }
    case 'DIRECTORY': {
      const path = nodePath(conn, oneArg(req.payload));
      const children = withTree(core, conn, req.txId, (t) => store.directory(t, actor, path));
      if (children.bytes > PAYLOAD_MAX) throw new DataTooBig('directory');
      return nameList(children);
    }
    case 'DIRECTORY_PART':
      return directoryPart(core, conn, req);
    case 'GET_PERMS': {
      const raw = oneArg(req.payload);
      if (isSpecial(raw)) return strings(...(core.specialPerms.get(raw) as Perm[]).map(formatPerm));
      const path = nodePath(conn, raw);
      const perms = withTree(core, conn, req.txId, (t) => store.getPerms(t, actor, path));
      return strings(...perms.map(formatPerm));
    }
    case 'SET_PERMS': {
      const list = splitStrings(req.payload);
      if (!list || list.length < 2) throw new InvalidArgument('SET_PERMS needs a path and at least one permission');
      const perms = list.slice(1).map((s) => {
        const p = parsePerm(s);
        if (!p) throw new InvalidArgument(`bad permission ${JSON.stringify(s)}`);
        return p;
      });
      if (isSpecial(list[0])) {
        const current = core.specialPerms.get(list[0]) as Perm[];
        if (!allows(actor, current, PERM_WRITE | PERM_OWNER)) throw new PermissionDenied(list[0]);
        core.specialPerms.set(list[0], perms);
        return OK;
      }
      const path = nodePath(conn, list[0]);
      withTree(core, conn, req.txId, (t) => store.setPerms(t, actor, path, perms), mutation);
      return OK;
    }
    case 'WATCH': {
      // Tokens are opaque bytes: latin1 keeps each byte as it came.
      const [raw, token] = args(req.payload, 2, 'latin1');
      const relative = !raw.startsWith('/') && !raw.startsWith('@');
      let path: string;
      if (raw.startsWith('@')) {
        if (!isSpecial(raw)) throw new InvalidArgument(`unknown special watch ${raw}`);
        path = raw;
      } else {
        path = nodePath(conn, raw);
      }
      if (!conn.privileged && core.watches.countFor(conn.domid) >= core.quota.watches) throw new QuotaReached('watches', 'E2BIG');
      const watch = core.watches.add(conn, path, token, relative);
      if (!watch) throw new AlreadyExists(`watch ${raw}`);
      // The initial fire: held by the connection until this reply is sent.
      conn.queueEvent(watch, path);
      return OK;
    }
    case 'UNWATCH': {
      const [raw, token] = args(req.payload, 2, 'latin1');
      const path = raw.startsWith('@') ? raw : resolve(conn.domid, raw);
      if (!core.watches.remove(conn, path, token)) throw new NoEntry(`watch ${raw}`);
      return OK;
    }
    case 'RESET_WATCHES':
      core.watches.removeAll(conn);
      conn.transactions.clear();
      return OK;
    case 'TRANSACTION_START': {
      if (req.txId !== 0) throw new Busy('nested transaction');
      if (!conn.privileged && core.transactionsOf(conn.domid) >= core.quota.transactions) {
        throw new QuotaReached('transactions');
      }
      return strings(String(conn.openTransaction().id));
    }
    case 'TRANSACTION_END': {
      const arg = oneArg(req.payload);
      if (arg !== 'T' && arg !== 'F') throw new InvalidArgument('TRANSACTION_END takes T or F');
      const tx = conn.transactions.get(req.txId);
      if (!tx) throw new NoEntry(`transaction ${req.txId}`);
      conn.transactions.delete(req.txId);
      if (arg === 'T') core.watches.fire(tx.commit(actor));
      return OK;
    }
    case 'GET_DOMAIN_PATH':
      return strings(domainPath(domid(oneArg(req.payload))));
    case 'INTRODUCE': {
      requirePrivileged(conn);
      const [id, mfn, port] = args(req.payload, 3);
      const d = domid(id);
      if (d === 0 || !/^[0-9]+$/.test(mfn) || !/^[0-9]+$/.test(port)) throw new InvalidArgument('INTRODUCE needs domid, mfn and event channel');
      core.introduce(d);
      return OK;
    }
    case 'RELEASE': {
      requirePrivileged(conn);
      const d = domid(oneArg(req.payload));
      if (d === 0) throw new InvalidArgument('dom0 cannot be released');
      if (!core.release(d)) throw new NoEntry(`domain ${d}`);
      return OK;
    }
    case 'IS_DOMAIN_INTRODUCED':
      requirePrivileged(conn);
      return strings(core.isIntroduced(domid(oneArg(req.payload))) ? 'T' : 'F');
    case 'RESUME': {
      requirePrivileged(conn);
      const d = domid(oneArg(req.payload));
      if (!core.isIntroduced(d)) throw new NoEntry(`domain ${d}`);
      return OK;
    }
    case 'CONTROL': {
      requirePrivileged(conn);
      const list = splitStrings(req.payload);
      if (list && list[0] === 'check') return OK;
      throw new InvalidArgument('the only control command is check');
    }
    default:
      // SET_TARGET, features, quotas, server-only and unknown types.
      throw new Unsupported(`message type ${req.type}`);
  }
}

/**
 * XS_DIRECTORY_PART (libxenstore's fallback when a listing exceeds 4096
 * bytes): "path\0offset\0" → "gen\0" + the whole child names that fit from
 * byte `offset`, plus a final extra NUL when the list is complete.
 */
function directoryPart(core: Core, conn: Connection, req: Message): Buffer {
  const [raw, offText] = args(req.payload, 2);
  if (!/^[0-9]{1,10}$/.test(offText)) throw new InvalidArgument('bad offset');
  const path = nodePath(conn, raw);
  const actor = conn.actor;
  const node = withTree(core, conn, req.txId, (t) => store.getNode(t, actor, path, 1));
  const all = nameList(node.children);
  const gen = strings(String(node.gen));
  const off = Number(offText);
  if (off >= all.length) return Buffer.concat([gen, Buffer.alloc(1)]);
  const max = PAYLOAD_MAX - gen.length - 1;
  let len = 0;
  while (off + len < all.length) {
    const end = all.indexOf(0, off + len);
    const nameLen = end - (off + len) + 1;
    if (len + nameLen > max) break;
    len += nameLen;
  }
  const complete = off + len === all.length;
  return Buffer.concat([gen, all.subarray(off, off + len), complete ? Buffer.alloc(1) : Buffer.alloc(0)]);
}

/** Child names as NUL-terminated strings, built in one buffer (names are ASCII). */
function nameList(children: ChildList): Buffer {
  const out = Buffer.allocUnsafe(children.bytes);
  let off = 0;
  for (const name of children) {
    off += out.write(name, off, 'latin1');
    out[off++] = 0;
  }
  return out;
}
