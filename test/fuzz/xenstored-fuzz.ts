// A fuzzer for the embedded xenstored's request handler, over in-memory
// connections: dom0 and domain connections send random and mutated valid
// messages (through the wire parser, in random chunks), open and commit
// transactions, set watches, stop and resume reading, connect and go away,
// while domains are introduced and released. After every message it checks:
//   - nothing throws;
//   - every request is answered, in order, with its own type or ERROR, or its
//     connection is closed (a broken header, a released domain);
//   - memory stays bounded: each event budget within its limit plus one
//     collapsed event per watch; domains within their watch and transaction
//     counts; a domain's transaction within its node cap;
//   - a well-behaved dom0 client is still served, right, at once.
//
// Used by test/xenstore-fuzz.test.ts for a few seconds, and on its own for
// long runs:
//   node dist/test/fuzz/xenstored-fuzz.js [--seconds T | --runs N] [--seed S]
// It prints the executions (messages handled) and exits 1 with the seed and
// the failing message on the first broken invariant.
import { Connection } from '../../xenstore/server/connection';
import { Core } from '../../xenstore/server/core';
import { Quota } from '../../xenstore/server/quota';
import { encode, HEADER_SIZE, Message, Op, PAYLOAD_MAX, Parser, splitStrings, strings } from '../../xenstore/wire';

export interface FuzzOptions {
  seed: number;
  /** Stop after this many messages… */
  runs?: number;
  /** …or after this many seconds (whichever comes first). */
  seconds?: number;
}

export interface FuzzResult {
  executions: number;
  seconds: number;
  /** Fresh stores started (each after STORE_EXECUTIONS messages). */
  stores: number;
  replies: Record<string, number>;
  eventsSent: number;
  eventsCollapsed: number;
  closedByServer: number;
}

export class FuzzFailure extends Error {}

/** Messages per store before starting a fresh one (keeps state varied and runs replayable). */
const STORE_EXECUTIONS = 20000;
/** Largest cost one queued event may have (connection.ts: wire bytes plus overhead). */
const MAX_EVENT_COST = HEADER_SIZE + PAYLOAD_MAX + 64;

/** xorshift32: small and deterministic, so a failure replays from its seed. */
class Rand {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  u32(): number {
    this.s ^= this.s << 13;
    this.s ^= this.s >>> 17;
    this.s ^= this.s << 5;
    return this.s >>> 0;
  }
  int(n: number): number {
    return this.u32() % n;
  }
  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

interface Client {
  name: string;
  conn: Connection;
  parser: Parser;
  writable: boolean;
  /** Requests sent and not yet answered: [reqId, type]. */
  expect: [number, number][];
  nextReqId: number;
  /** Transaction ids this client was given. */
  txIds: number[];
  /** The latest reply received. */
  lastReply?: Message;
}

const LONG = 'A'.repeat(2000);

export class XenStoredFuzzer {
  readonly rand: Rand;
  private core!: Core;
  private clients: Client[] = [];
  /** Every connection of the current store, for the counters. */
  private all: Client[] = [];
  private good!: Client;
  private goodCount = 0;
  private domains = new Set<number>();
  private readonly result: FuzzResult = {
    executions: 0, seconds: 0, stores: 0, replies: {}, eventsSent: 0, eventsCollapsed: 0, closedByServer: 0,
  };
  /** The last message fed, for the failure report. */
  private last: { who: string; bytes: Buffer } | undefined;

  constructor(readonly seed: number) {
    this.rand = new Rand(seed);
  }

  run(opts: Omit<FuzzOptions, 'seed'>): FuzzResult {
    const t0 = process.hrtime.bigint();
    const deadline = opts.seconds !== undefined ? t0 + BigInt(Math.round(opts.seconds * 1e9)) : undefined;
    const runs = opts.runs ?? Number.MAX_SAFE_INTEGER;
    while (this.result.executions < runs) {
      if (this.result.executions % STORE_EXECUTIONS === 0) {
        if (deadline !== undefined && process.hrtime.bigint() > deadline) break;
        this.freshStore();
      }
      this.step();
      if (deadline !== undefined && (this.result.executions & 1023) === 0 && process.hrtime.bigint() > deadline) break;
    }
    this.harvest();
    this.result.seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return this.result;
  }

  private fail(what: string): never {
    const last = this.last ? ` after ${this.last.who} sent ${this.last.bytes.toString('hex').slice(0, 400)}` : '';
    throw new FuzzFailure(`seed ${this.seed}, execution ${this.result.executions}: ${what}${last}`);
  }

  /** A new store with small limits, so quotas, caps and collapsing are reached often. */
  private freshStore(): void {
    this.harvest();
    this.result.stores++;
    const quota: Partial<Quota> = {
      nodes: 50 + this.rand.int(200),
      watches: 4 + this.rand.int(16),
      transactions: 1 + this.rand.int(4),
      transactionNodes: 8 + this.rand.int(64),
      memory: 2048 + this.rand.int(64 * 1024),
      nodeSize: 256 + this.rand.int(2048),
      pathLength: 64 + this.rand.int(2048),
    };
    this.core = new Core({ quota });
    this.clients = [];
    this.domains = new Set();
    this.good = this.connect('good', 0, true);
    this.clients = [];
    for (let i = 0; i < 2; i++) this.connect(`dom0#${i}`, 0, true);
    for (const d of [1, 2, 3]) this.introduce(d);
  }

  private harvestOne(c: Client): void {
    this.result.eventsSent += c.conn.events.sent;
    this.result.eventsCollapsed += c.conn.events.collapsed;
  }

  private harvest(): void {
    for (const c of this.all) {
      this.result.eventsSent += c.conn.events.sent;
      this.result.eventsCollapsed += c.conn.events.collapsed;
    }
    this.all = [];
  }

  private connect(name: string, domid: number, privileged: boolean): Client {
    const client: Client = {
      name, conn: undefined as unknown as Connection, parser: new Parser(), writable: true, expect: [], nextReqId: 1, txIds: [],
    };
    client.conn = new Connection(this.core, domid, privileged, {
      send: (msg) => this.received(client, msg),
      writable: () => client.writable,
    });
    this.clients.push(client);
    this.all.push(client);
    return client;
  }

  /** dom0 introduces a domain with a home and a writable ~/data (as libxl), and it connects. */
  private introduce(domid: number): void {
    const dom0 = this.good;
    const home = `/local/domain/${domid}`;
    for (const [p, perms] of [[home, ['n0', `r${domid}`]], [`${home}/data`, [`n${domid}`]]] as const) {
      this.request(dom0, Op.WRITE, Buffer.concat([strings(p), Buffer.from('')]));
      this.request(dom0, Op.SET_PERMS, strings(p, ...perms));
    }
    this.request(dom0, Op.INTRODUCE, strings(String(domid), '0', '0'));
    this.domains.add(domid);
    this.connect(`dom${domid}`, domid, false);
  }

  /** A message from the server to `client`. */
  private received(client: Client, msg: Message): void {
    if (client.conn.closed) this.fail(`${client.name} got a message after its connection closed`);
    if (msg.payload.length > PAYLOAD_MAX) this.fail(`${client.name} got a ${msg.payload.length}-byte payload`);
    encode(msg);
    if (msg.type === Op.WATCH_EVENT) {
      const parts = splitStrings(msg.payload, 'latin1');
      if (!parts || parts.length !== 2 || msg.reqId !== 0) this.fail(`${client.name} got a malformed watch event`);
      return;
    }
    client.lastReply = msg;
    const head = client.expect.shift();
    if (!head) this.fail(`${client.name} got a reply (type ${msg.type}, req ${msg.reqId}) to no request`);
    const [reqId, type] = head;
    if (msg.reqId !== reqId) this.fail(`${client.name} got the reply to ${msg.reqId} while waiting for ${reqId}`);
    if (msg.type !== type && msg.type !== Op.ERROR) this.fail(`${client.name} got type ${msg.type} for a type ${type} request`);
    const code = msg.type === Op.ERROR ? splitStrings(msg.payload)?.[0] ?? '?' : 'OK';
    // EIO is what call.ts answers when something unexpected threw: a bug.
    if (code === 'EIO') this.fail(`${client.name} got EIO (an unexpected exception in the handler)`);
    this.result.replies[code] = (this.result.replies[code] ?? 0) + 1;
    if (type === Op.TRANSACTION_START && msg.type === type) {
      const id = Number(splitStrings(msg.payload)?.[0]);
      if (Number.isInteger(id)) client.txIds.push(id);
    }
  }

  /** Sends one whole request as a well-behaved client would (used for setup and the good client). */
  private request(client: Client, type: number, payload: Buffer, txId = 0): Message {
    const reqId = client.nextReqId++;
    client.expect.push([reqId, type]);
    client.conn.handle({ type, reqId, txId, payload });
    const answer = client.lastReply;
    if (client.expect.length > 0 || answer?.reqId !== reqId) this.fail(`${client.name} got no reply to a request it may send`);
    return answer;
  }

  /** One execution: a message from a random client, and now and then something around it. */
  private step(): void {
    const r = this.rand;
    this.result.executions++;
    if (r.chance(0.002)) this.churn();
    for (const x of this.clients.filter((y) => y.conn.closed)) {
      // Whoever lost a connection (a broken header, a released domain) opens another.
      this.clients = this.clients.filter((y) => y !== x);
      if (this.core.isIntroduced(x.conn.domid)) this.connect(x.name, x.conn.domid, x.conn.privileged);
    }
    const c = r.pick(this.clients);
    // A client stops reading now and then, and reads again soon.
    if (c.writable ? r.chance(0.03) : r.chance(0.3)) c.writable = !c.writable;
    if (c.writable) c.conn.flush();
    const bytes = r.chance(0.01) ? this.randomBytes() : this.validish(c);
    this.last = { who: c.name, bytes };
    // The server reads no more than this ahead of what it answered (xenstored.ts INPUT_HIGH).
    if (c.parser.buffered > 64 * 1024) return;
    this.feed(c, bytes);
    this.check(c);
    if ((this.result.executions & 63) === 0) this.goodRoundTrip();
  }

  /** Feeds bytes through the parser in random chunks, answering as the server would. */
  private feed(c: Client, bytes: Buffer): void {
    let off = 0;
    while (off < bytes.length && !c.conn.closed) {
      const n = 1 + this.rand.int(bytes.length - off);
      c.parser.feed(bytes.subarray(off, off + n));
      off += n;
      for (;;) {
        if (!c.conn.ready()) return; // the server stops reading; what is buffered waits
        const res = c.parser.next();
        if (!res) break;
        if (res.kind === 'oversize') {
          // xenstored.ts closes the socket: the connection is gone.
          c.conn.close();
          c.expect = [];
          this.result.closedByServer++;
          return;
        }
        c.expect.push([res.msg.reqId, res.msg.type]);
        try {
          c.conn.handle(res.msg);
        } catch (err) {
          this.fail(`handle threw ${(err as Error).stack ?? String(err)}`);
        }
        if (c.conn.closed) {
          c.expect = [];
          return;
        }
        if (c.writable && c.expect.length > 0) this.fail(`${c.name}: request ${res.msg.reqId} (type ${res.msg.type}) was not answered`);
      }
    }
  }

  /** Connections come and go; domains are released and introduced again. */
  private churn(): void {
    const r = this.rand;
    const kind = r.int(4);
    if (kind === 0 && this.clients.length > 1) {
      const c = r.pick(this.clients);
      c.conn.close();
      this.clients = this.clients.filter((x) => x !== c);
      this.all = this.all.filter((x) => x !== c);
      this.harvestOne(c);
    } else if (kind === 1) {
      const d = 1 + r.int(3);
      if (this.core.isIntroduced(d)) this.connect(`dom${d}+`, d, false);
    } else if (kind === 2) {
      const d = 1 + r.int(3);
      if (this.core.isIntroduced(d)) {
        this.request(this.good, Op.RELEASE, strings(String(d)));
        this.request(this.good, Op.RM, strings(`/local/domain/${d}`));
        this.domains.delete(d);
        for (const c of this.clients) if (c.conn.closed) c.expect = [];
        this.clients = this.clients.filter((x) => !x.conn.closed);
        this.connect(`dom0+`, 0, true);
      } else {
        this.introduce(d);
      }
    } else {
      this.connect(`dom0+`, 0, true);
    }
  }

  /** The invariants that hold between messages. */
  private check(c: Client): void {
    const core = this.core;
    const watchesOf = new Map<object, number>();
    for (const x of this.clients) {
      if (x.conn.closed) continue;
      const b = x.conn.budget;
      watchesOf.set(b, (watchesOf.get(b) ?? 0) + this.watchCount(x.conn));
    }
    for (const x of this.clients) {
      const b = x.conn.budget;
      const bound = b.limit + (watchesOf.get(b) ?? 0) * MAX_EVENT_COST;
      if (b.used > bound) this.fail(`${x.name}'s event budget holds ${b.used} bytes, over ${bound}`);
      if (b.used < 0) this.fail(`${x.name}'s event budget went negative (${b.used})`);
    }
    for (const d of [1, 2, 3]) {
      if (core.watches.countFor(d) > core.quota.watches) this.fail(`domain ${d} holds ${core.watches.countFor(d)} watches`);
      if (core.transactionsOf(d) > core.quota.transactions) this.fail(`domain ${d} has ${core.transactionsOf(d)} transactions open`);
    }
    if (!c.conn.privileged) {
      for (const tx of c.conn.transactions.values()) {
        if (tx.touched > core.quota.transactionNodes) this.fail(`a transaction of ${c.name} touched ${tx.touched} nodes`);
      }
    }
  }

  private watchCount(conn: Connection): number {
    return this.core.watches.countOf(conn);
  }

  /** The good client writes and reads back its own key: served, right, at once. */
  private goodRoundTrip(): void {
    const value = `v${this.goodCount++}`;
    const w = this.request(this.good, Op.WRITE, Buffer.concat([strings('/good/key'), Buffer.from(value)]));
    if (w.type !== Op.WRITE) this.fail(`the good client's write failed: ${w.payload.toString()}`);
    const got = this.request(this.good, Op.READ, strings('/good/key'));
    if (got.type !== Op.READ || got.payload.toString() !== value) this.fail(`the good client read ${got.payload.toString()} for ${value}`);
  }

  private randomBytes(): Buffer {
    const r = this.rand;
    if (r.chance(0.3)) {
      // A header with a random type and a plausible length, then random payload.
      const len = r.chance(0.02) ? PAYLOAD_MAX + 1 + r.int(100000) : r.int(300);
      const h = Buffer.alloc(HEADER_SIZE);
      h.writeUInt32LE(r.int(40), 0);
      h.writeUInt32LE(r.u32(), 4);
      h.writeUInt32LE(r.int(4), 8);
      h.writeUInt32LE(len, 12);
      return Buffer.concat([h, r.bytes(Math.min(len, 300))]);
    }
    return r.bytes(r.int(64));
  }

  private path(c: Client): string {
    const r = this.rand;
    const d = c.conn.domid || 1 + r.int(3);
    const names = ['a', 'b', 'c', 'x', LONG.slice(0, 1 + r.int(2000)), `n${r.int(50)}`];
    const rel = () => {
      const parts = ['data'];
      for (let i = r.int(4); i > 0; i--) parts.push(r.pick(names));
      return parts.join('/');
    };
    switch (r.int(12)) {
      case 0: return '/';
      case 1: return '/local/domain';
      case 2: return `/local/domain/${d}`;
      case 3: return `/local/domain/${d}/${rel()}`;
      case 4: return r.pick(['@introduceDomain', '@releaseDomain', '@other']);
      case 5: return r.pick(['', '//', 'data/', 'da ta', '/tool/xenstored', '/local/domain/0', `/${LONG}/${LONG}`]);
      case 6: return `/x/${r.pick(names)}/${r.pick(names)}`;
      default: return rel();
    }
  }

  private token(): Buffer {
    const r = this.rand;
    if (r.chance(0.3)) return Buffer.from(r.bytes(1 + r.int(20)).map((b) => b || 1));
    return Buffer.from(r.pick(['t', 'tok', 'x', `t${r.int(8)}`, LONG]));
  }

  /** A valid-looking request from `c`, sometimes mutated. */
  private validish(c: Client): Buffer {
    const r = this.rand;
    const tx = c.txIds.length > 0 && r.chance(0.4) ? r.pick(c.txIds) : r.chance(0.05) ? r.int(5) : 0;
    const p = () => this.path(c);
    const value = () => (r.chance(0.1) ? Buffer.alloc(r.int(3000), 0x76) : Buffer.from(`v${r.int(1000)}`));
    let type: number;
    let payload: Buffer;
    switch (r.int(17)) {
      case 0: type = Op.READ; payload = strings(p()); break;
      case 1: case 2: case 3: type = Op.WRITE; payload = Buffer.concat([strings(p()), value()]); break;
      case 4: type = Op.MKDIR; payload = strings(p()); break;
      case 5: type = Op.RM; payload = strings(p()); break;
      case 6: type = Op.DIRECTORY; payload = strings(p()); break;
      case 7: type = Op.DIRECTORY_PART; payload = strings(p(), String(r.int(3) * 100)); break;
      case 8: type = Op.GET_PERMS; payload = strings(p()); break;
      case 9: type = Op.SET_PERMS; payload = strings(p(), `${r.pick(['n', 'r', 'w', 'b'])}${c.conn.domid}`, ...Array.from({ length: r.int(7) }, () => `r${r.int(4)}`)); break;
      case 10: case 11: type = Op.WATCH; payload = Buffer.concat([strings(p()), this.token(), Buffer.alloc(1)]); break;
      case 12: type = Op.UNWATCH; payload = Buffer.concat([strings(p()), this.token(), Buffer.alloc(1)]); break;
      case 13: type = Op.TRANSACTION_START; payload = strings(''); break;
      case 14: type = Op.TRANSACTION_END; payload = strings(r.chance(0.7) ? 'T' : 'F'); break;
      case 15: type = Op.RESET_WATCHES; payload = Buffer.alloc(0); break;
      default:
        type = r.pick([Op.GET_DOMAIN_PATH, Op.IS_DOMAIN_INTRODUCED, Op.INTRODUCE, Op.RELEASE, Op.RESUME, Op.CONTROL, Op.SET_TARGET, 20, 99]);
        payload = strings(String(r.int(6)), '0', '0');
    }
    const useTx = type === Op.TRANSACTION_END ? (c.txIds.length > 0 ? r.pick(c.txIds) : r.int(3)) : tx;
    if (payload.length > PAYLOAD_MAX) payload = payload.subarray(0, PAYLOAD_MAX);
    const msg: Message = { type, reqId: c.nextReqId++, txId: useTx, payload };
    if (r.chance(0.15)) this.mutate(msg);
    return encode(msg);
  }

  private mutate(msg: Message): void {
    const r = this.rand;
    const p = Buffer.from(msg.payload);
    switch (r.int(5)) {
      case 0: msg.type = r.int(32); break;
      case 1: msg.payload = p.subarray(0, r.int(p.length + 1)); break;
      case 2:
        for (let i = 0; i < 3 && p.length > 0; i++) p[r.int(p.length)] = r.int(256);
        msg.payload = p;
        break;
      case 3: msg.payload = Buffer.concat([p, r.bytes(r.int(100))]).subarray(0, PAYLOAD_MAX); break;
      default: msg.txId = r.u32(); break;
    }
  }
}

/** Runs the fuzzer; throws FuzzFailure on the first broken invariant. */
export function fuzzXenStored(opts: FuzzOptions): FuzzResult {
  return new XenStoredFuzzer(opts.seed).run(opts);
}

function main(argv: string[]): number {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const seconds = arg('--seconds') !== undefined ? Number(arg('--seconds')) : undefined;
  const runs = arg('--runs') !== undefined ? Number(arg('--runs')) : undefined;
  const seed = arg('--seed') !== undefined ? Number(arg('--seed')) : (Date.now() & 0x7fffffff);
  if ((seconds !== undefined && !(seconds > 0)) || (runs !== undefined && !(runs > 0)) || !Number.isInteger(seed)) {
    process.stderr.write('xenstored-fuzz: usage: xenstored-fuzz.js [--seconds T] [--runs N] [--seed S] (T, N > 0)\n');
    return 2;
  }
  try {
    const r = fuzzXenStored({ seed, seconds: seconds ?? (runs === undefined ? 60 : undefined), runs });
    const rate = Math.round(r.executions / r.seconds);
    process.stdout.write(`xenstored-fuzz: seed ${seed}: ${r.executions} executions in ${r.seconds.toFixed(1)} s (${rate}/s), ` +
      `${r.stores} stores, ${r.eventsSent} events sent, ${r.eventsCollapsed} collapsed, ${r.closedByServer} connections closed; ` +
      `replies ${JSON.stringify(r.replies)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`xenstored-fuzz: ${(err as Error).message}\n`);
    return 1;
  }
}

if (require.main === module) process.exit(main(process.argv.slice(2)));
