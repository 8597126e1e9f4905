// The XenStore wire protocol (Xen's xen/include/public/io/xs_wire.h): the
// 16-byte `xsd_sockmsg` header, message types by number, error strings, and
// an incremental parser. Pure: no I/O, no clocks. Both the client and the
// embedded xenstored use it.

/** Size of the header: four little-endian u32s (type, req_id, tx_id, len). */
export const HEADER_SIZE = 16;
/** XENSTORE_PAYLOAD_MAX: the largest payload either side may send. */
export const PAYLOAD_MAX = 4096;
/** XENSTORE_ABS_PATH_MAX and XENSTORE_REL_PATH_MAX. */
export const ABS_PATH_MAX = 3072;
export const REL_PATH_MAX = 2048;

/** Message types; the value is the wire number. */
export const Op = {
  CONTROL: 0, // also XS_DEBUG
  DIRECTORY: 1,
  READ: 2,
  GET_PERMS: 3,
  WATCH: 4,
  UNWATCH: 5,
  TRANSACTION_START: 6,
  TRANSACTION_END: 7,
  INTRODUCE: 8,
  RELEASE: 9,
  GET_DOMAIN_PATH: 10,
  WRITE: 11,
  MKDIR: 12,
  RM: 13,
  SET_PERMS: 14,
  WATCH_EVENT: 15, // server → client only
  ERROR: 16, // server → client only
  IS_DOMAIN_INTRODUCED: 17,
  RESUME: 18,
  SET_TARGET: 19,
  // 20 was XS_RESTRICT, removed; now invalid.
  RESET_WATCHES: 21,
  DIRECTORY_PART: 22,
  GET_FEATURE: 23,
  SET_FEATURE: 24,
  GET_QUOTA: 25,
  SET_QUOTA: 26,
} as const;
export type OpName = keyof typeof Op;
/** XS_INVALID: never a valid type. */
export const OP_INVALID = 0xffff;

/** The table whose index is the wire value (undefined where no type exists). */
const OP_BY_NUMBER: (OpName | undefined)[] = [];
for (const [name, value] of Object.entries(Op)) OP_BY_NUMBER[value] = name as OpName;

/** The name of a wire type, or undefined for a number no type has. */
export function opName(type: number): OpName | undefined {
  return OP_BY_NUMBER[type];
}

/**
 * Error strings, in xs_wire.h's xsd_errors order, then EQUOTA (ocaml-
 * xenstored's answer to a quota, which a client may receive; our server gives
 * C xenstored's ENOSPC/E2BIG instead; libxenstore maps an unknown string to
 * EINVAL).
 */
export const ERROR_CODES = [
  'EINVAL', 'EACCES', 'EEXIST', 'EISDIR', 'ENOENT', 'ENOMEM', 'ENOSPC', 'EIO',
  'ENOTEMPTY', 'ENOSYS', 'EROFS', 'EBUSY', 'EAGAIN', 'EISCONN', 'E2BIG', 'EPERM',
  'EQUOTA',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

const DESCRIPTIONS: Record<ErrorCode, string> = {
  EINVAL: 'invalid argument',
  EACCES: 'permission denied',
  EEXIST: 'already exists',
  EISDIR: 'is a directory',
  ENOENT: 'no such node',
  ENOMEM: 'out of memory',
  ENOSPC: 'no space left',
  EIO: 'input/output error',
  ENOTEMPTY: 'not empty',
  ENOSYS: 'operation not supported',
  EROFS: 'read-only',
  EBUSY: 'busy',
  EAGAIN: 'transaction conflict, try again',
  EISCONN: 'already connected',
  E2BIG: 'too big',
  EPERM: 'operation not permitted',
  EQUOTA: 'quota exceeded',
};

export function isErrorCode(s: string): s is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(s);
}

/** A short human description of an error code ("no such node"). */
export function describeError(code: ErrorCode): string {
  return DESCRIPTIONS[code];
}

/** One message: header fields plus payload (at most PAYLOAD_MAX bytes). */
export interface Message {
  type: number;
  reqId: number;
  txId: number;
  payload: Buffer;
}

/** Serialises a message; throws RangeError if the payload is too big. */
export function encode(msg: Message): Buffer {
  if (msg.payload.length > PAYLOAD_MAX) {
    throw new RangeError(`XenStore payload of ${msg.payload.length} bytes exceeds the ${PAYLOAD_MAX}-byte limit; split the value or the request`);
  }
  const out = Buffer.allocUnsafe(HEADER_SIZE + msg.payload.length);
  out.writeUInt32LE(msg.type >>> 0, 0);
  out.writeUInt32LE(msg.reqId >>> 0, 4);
  out.writeUInt32LE(msg.txId >>> 0, 8);
  out.writeUInt32LE(msg.payload.length, 12);
  msg.payload.copy(out, HEADER_SIZE);
  return out;
}

/** Builds a payload of NUL-terminated strings (or raw buffers, also NUL-terminated). */
export function strings(...parts: (string | Buffer)[]): Buffer {
  const bufs: Buffer[] = [];
  for (const p of parts) {
    bufs.push(typeof p === 'string' ? Buffer.from(p, 'utf8') : p, ZERO);
  }
  return Buffer.concat(bufs);
}
const ZERO = Buffer.alloc(1);

/**
 * Splits a payload into its NUL-terminated strings. Returns undefined if the
 * payload does not end in NUL (so it is not a whole list of strings).
 * An empty payload is an empty list. 'latin1' keeps arbitrary bytes as they
 * are (one char per byte), for opaque strings such as watch tokens.
 */
export function splitStrings(payload: Buffer, encoding: BufferEncoding = 'utf8'): string[] | undefined {
  if (payload.length === 0) return [];
  if (payload[payload.length - 1] !== 0) return undefined;
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < payload.length; i++) {
    if (payload[i] === 0) {
      out.push(payload.toString(encoding, start, i));
      start = i + 1;
    }
  }
  return out;
}

/** What the parser yields. */
export type ParseResult =
  | { kind: 'message'; msg: Message }
  /** The header claims more than PAYLOAD_MAX: the stream cannot be trusted any more. */
  | { kind: 'oversize'; type: number; reqId: number; txId: number; len: number };

/**
 * Incremental parser: feed() bytes in any chunking, then call next() until it
 * returns undefined (it needs more bytes). After an oversize header the
 * parser is failed: next() keeps returning that result and feed() ignores
 * input, because the byte stream has lost its framing.
 */
export class Parser {
  private buf: Buffer = Buffer.alloc(0);
  private failed: ParseResult | undefined;

  feed(chunk: Buffer): void {
    if (this.failed || chunk.length === 0) return;
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
  }

  /** Bytes received but not yet returned as messages. */
  get buffered(): number {
    return this.buf.length;
  }

  next(): ParseResult | undefined {
    if (this.failed) return this.failed;
    if (this.buf.length < HEADER_SIZE) return undefined;
    const type = this.buf.readUInt32LE(0);
    const reqId = this.buf.readUInt32LE(4);
    const txId = this.buf.readUInt32LE(8);
    const len = this.buf.readUInt32LE(12);
    if (len > PAYLOAD_MAX) {
      this.failed = { kind: 'oversize', type, reqId, txId, len };
      this.buf = Buffer.alloc(0);
      return this.failed;
    }
    if (this.buf.length < HEADER_SIZE + len) return undefined;
    const payload = Buffer.from(this.buf.subarray(HEADER_SIZE, HEADER_SIZE + len));
    this.buf = this.buf.subarray(HEADER_SIZE + len);
    return { kind: 'message', msg: { type, reqId, txId, payload } };
  }
}

/** Access letters of a permission entry: none, read, write, both. */
export type Access = 'n' | 'r' | 'w' | 'b';
/** One permission entry. In a list, the first is the owner and the default for others. */
export interface Perm {
  access: Access;
  domid: number;
}

/** Largest domain id a permission entry may name (DOMID_FIRST_RESERVED - 1). */
export const DOMID_MAX = 0x7fef;

/** Parses `<letter><domid>` ("r5"); undefined if it is not exactly that. */
export function parsePerm(text: string): Perm | undefined {
  const m = /^([nrwb])(0|[1-9][0-9]{0,4})$/.exec(text);
  if (!m) return undefined;
  const domid = Number(m[2]);
  if (domid > DOMID_MAX) return undefined;
  return { access: m[1] as Access, domid };
}

/** Formats a permission entry as it travels on the wire ("r5"). */
export function formatPerm(p: Perm): string {
  return `${p.access}${p.domid}`;
}
