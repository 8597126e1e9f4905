// A fuzz run of the XenStore wire parser (xenstore/wire.ts), which reads every
// byte a guest writes to the embedded xenstored. Not coverage-guided (libFuzzer
// for JavaScript, jazzer.js, cannot be installed here: docs/security.md): each
// execution draws a byte stream from a seeded generator - well-formed messages
// of every type and size, junk, oversize headers, then random byte flips - and
// checks what the parser makes of it:
//   - it never throws, and a header over 4096 bytes fails it for good;
//   - the messages do not depend on how the stream is chunked (one feed versus
//     random pieces of 1..64 bytes, with next() drained after each);
//   - every byte is accounted for: consumed by messages, or still buffered;
//   - an unmutated stream of messages parses back to exactly those messages;
//   - payload strings split and rejoin to the same bytes (when valid UTF-8),
//     and a permission string that parses formats back to itself.
//
//   node dist/test/fuzz/xenstore-wire.js [--time S] [--runs N] [--seed N]
// On a failure it prints the seed and execution index that reproduce it
// (--seed N --from I) and exits 1.
import { Command, InvalidArgumentError } from 'commander';
import { encode, formatPerm, HEADER_SIZE, Message, Op, PAYLOAD_MAX, Parser, ParseResult, parsePerm, splitStrings, strings } from '../../xenstore/wire';

// xorshift32: small, fast, and the same sequence on every machine.
class Rng {
  constructor(private s: number) {
    if (this.s === 0) this.s = 1;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return this.u32() % n;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      const x = this.u32();
      for (let k = 0; k < 4 && i + k < n; k++) b[i + k] = (x >>> (8 * k)) & 0xff;
    }
    return b;
  }
}

const OP_VALUES = Object.values(Op);
const WORDS = ['', '/', '/local/domain/1', 'data', 'r5', 'b0', 'n7', 'w32751', 'r32752', 'r01', 'x', '@releaseDomain', 'tok'];

function payload(rng: Rng): Buffer {
  switch (rng.below(4)) {
    case 0: return Buffer.alloc(0);
    case 1: {  // NUL-terminated strings, as requests carry them
      const parts: string[] = [];
      for (let i = rng.below(5); i > 0; i--) parts.push(WORDS[rng.below(WORDS.length)]);
      return strings(...parts);
    }
    case 2: return rng.bytes(rng.below(64));
    default: return rng.bytes(rng.below(PAYLOAD_MAX + 1));
  }
}

function message(rng: Rng): Message {
  const type = rng.below(8) === 0 ? rng.u32() : OP_VALUES[rng.below(OP_VALUES.length)];
  return { type, reqId: rng.u32(), txId: rng.below(4) === 0 ? rng.u32() : 0, payload: payload(rng) };
}

interface Stream {
  bytes: Buffer;
  /** The messages the stream holds, when it is nothing but unmutated messages. */
  messages?: Message[];
}

function stream(rng: Rng): Stream {
  const parts: Buffer[] = [];
  const messages: Message[] = [];
  let clean = true;
  for (let n = 1 + rng.below(6); n > 0; n--) {
    const kind = rng.below(10);
    if (kind < 7) {
      const m = message(rng);
      messages.push(m);
      parts.push(encode(m));
    } else if (kind < 9) {
      parts.push(rng.bytes(rng.below(40)));
      clean = false;
    } else {
      const h = Buffer.alloc(HEADER_SIZE);
      h.writeUInt32LE(rng.u32(), 0);
      h.writeUInt32LE(PAYLOAD_MAX + 1 + rng.below(1 << 20), 12);
      parts.push(h);
      clean = false;
    }
  }
  const bytes = Buffer.concat(parts);
  if (bytes.length > 0 && rng.below(3) === 0) {
    for (let k = 1 + rng.below(4); k > 0; k--) bytes[rng.below(bytes.length)] ^= 1 << rng.below(8);
    clean = false;
  }
  return { bytes, messages: clean ? messages : undefined };
}

class Failure extends Error {}
function check(ok: boolean, what: string): void {
  if (!ok) throw new Failure(what);
}

/** Feeds the stream in the given pieces, draining next() after each; returns what came out. */
function parse(bytes: Buffer, pieces: number[]): { out: ParseResult[]; buffered: number } {
  const p = new Parser();
  const out: ParseResult[] = [];
  let off = 0;
  for (const n of pieces) {
    p.feed(bytes.subarray(off, off + n));
    off += n;
    for (let r = p.next(); r; r = p.next()) {
      out.push(r);
      if (r.kind === 'oversize') {
        check(r.len > PAYLOAD_MAX, 'oversize reported for a legal length');
        check(p.next() === r, 'a failed parser recovered');
        p.feed(Buffer.from([1, 2, 3]));
        check(p.next() === r, 'a failed parser took more input');
        return { out, buffered: p.buffered };
      }
    }
  }
  return { out, buffered: p.buffered };
}

function sameResult(a: ParseResult, b: ParseResult): boolean {
  if (a.kind === 'oversize' || b.kind === 'oversize') return JSON.stringify(a) === JSON.stringify(b);
  const x = a.msg;
  const y = b.msg;
  return x.type === y.type && x.reqId === y.reqId && x.txId === y.txId && x.payload.equals(y.payload);
}

function execute(rng: Rng): void {
  const s = stream(rng);
  const whole = parse(s.bytes, [s.bytes.length]);
  const pieces: number[] = [];
  for (let left = s.bytes.length; left > 0; ) {
    const n = Math.min(left, 1 + rng.below(64));
    pieces.push(n);
    left -= n;
  }
  const chunked = parse(s.bytes, pieces);
  check(whole.out.length === chunked.out.length, 'the chunking changed the number of results');
  whole.out.forEach((r, i) => check(sameResult(r, chunked.out[i]), `the chunking changed result ${i}`));

  const failed = whole.out.some((r) => r.kind === 'oversize');
  let consumed = 0;
  for (const r of whole.out) {
    if (r.kind !== 'message') continue;
    check(r.msg.payload.length <= PAYLOAD_MAX, 'a payload over 4096 bytes');
    consumed += HEADER_SIZE + r.msg.payload.length;
    const parts = splitStrings(r.msg.payload);
    if (parts === undefined) {
      check(r.msg.payload.length > 0 && r.msg.payload[r.msg.payload.length - 1] !== 0, 'a NUL-terminated payload was not split');
      continue;
    }
    if (Buffer.from(r.msg.payload.toString('utf8'), 'utf8').equals(r.msg.payload)) {
      check(strings(...parts).equals(r.msg.payload), 'split strings do not rejoin to the payload');
    }
    for (const part of parts) {
      const perm = parsePerm(part);
      if (perm) check(formatPerm(perm) === part, `permission ${JSON.stringify(part)} does not format back`);
    }
  }
  if (!failed) check(consumed + whole.buffered === s.bytes.length, 'bytes were lost or invented');
  if (s.messages) {
    check(!failed && whole.buffered === 0, 'a stream of messages left bytes behind');
    check(whole.out.length === s.messages.length, 'a stream of messages parsed to a different count');
    s.messages.forEach((m, i) => check(sameResult(whole.out[i], { kind: 'message', msg: m }), `message ${i} changed`));
  }
}

function main(): void {
  const int = (name: string) => (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a whole number.`);
    return n;
  };
  const o = new Command()
    .name('xenstore-wire-fuzz')
    .description('Fuzzes the XenStore wire parser with generated streams (see the top of this file)')
    .option('--time <s>', 'stop after this many seconds', int('--time'), 15)
    .option('--runs <n>', 'stop after this many executions (0: no limit)', int('--runs'), 0)
    .option('--seed <n>', 'the generator seed (default: from the clock)', int('--seed'))
    .option('--from <i>', 'start at this execution index (to replay a failure)', int('--from'), 0)
    .parse(process.argv)
    .opts<{ time: number; runs: number; seed?: number; from: number }>();
  const seed = o.seed ?? (Date.now() & 0x7fffffff);
  const deadline = Date.now() + o.time * 1000;
  const started = Date.now();
  let i = o.from;
  for (; (o.runs === 0 || i - o.from < o.runs) && ((i - o.from) % 256 !== 0 || Date.now() < deadline); i++) {
    // One generator per execution, so any one of them replays on its own.
    const rng = new Rng((seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
    try {
      execute(rng);
    } catch (err) {
      const what = err instanceof Failure ? err.message : `threw ${(err as Error).stack ?? String(err)}`;
      process.stderr.write(`xenstore-wire-fuzz: execution ${i} failed: ${what}\nreplay: --seed ${seed} --from ${i} --runs 1\n`);
      process.exit(1);
    }
  }
  const runs = i - o.from;
  const secs = (Date.now() - started) / 1000;
  process.stderr.write(`xenstore-wire-fuzz: ${runs} executions in ${secs.toFixed(1)} s (${Math.round(runs / secs)}/s), seed ${seed}, no failure\n`);
}

main();
