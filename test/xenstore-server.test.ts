// The embedded xenstored's semantics, driven straight through Connection
// (no sockets): the shared tables, plus what only the server side can see.
import test from 'ava';
import { Message, Op, splitStrings, strings } from '../xenstore/wire';
import { Connection } from '../xenstore/server/connection';
import { Core } from '../xenstore/server/core';
import { parseQuotaArgs, XEN_DEFAULT_QUOTA } from '../xenstore/server/quota';
import { ChildList } from '../xenstore/server/children';
import { Request, Result, Runner, runScenario, scenarios, Who, whoDomid } from './xenstore-tables';

/** Encodes a table request as the wire message a client would send. */
export function encodeRequest(req: Request, txId: number): Message {
  const m = (type: number, payload: Buffer): Message => ({ type, reqId: 7, txId, payload });
  switch (req[0]) {
    case 'read': return m(Op.READ, strings(req[1]));
    case 'write': return m(Op.WRITE, Buffer.concat([strings(req[1]), Buffer.from(req[2])]));
    case 'mkdir': return m(Op.MKDIR, strings(req[1]));
    case 'rm': return m(Op.RM, strings(req[1]));
    case 'directory': return m(Op.DIRECTORY, strings(req[1]));
    case 'getPerms': return m(Op.GET_PERMS, strings(req[1]));
    case 'setPerms': return m(Op.SET_PERMS, strings(...req.slice(1)));
    case 'watch': return m(Op.WATCH, strings(req[1], req[2]));
    case 'unwatch': return m(Op.UNWATCH, strings(req[1], req[2]));
    case 'start': return m(Op.TRANSACTION_START, strings(''));
    case 'commit': return m(Op.TRANSACTION_END, strings('T'));
    case 'abort': return m(Op.TRANSACTION_END, strings('F'));
    case 'introduce': return m(Op.INTRODUCE, strings(String(req[1]), '0', '0'));
    case 'release': return m(Op.RELEASE, strings(String(req[1])));
    case 'getDomainPath': return m(Op.GET_DOMAIN_PATH, strings(String(req[1])));
    case 'isIntroduced': return m(Op.IS_DOMAIN_INTRODUCED, strings(String(req[1])));
    case 'raw': return m(req[1], Buffer.from(req[2], 'latin1'));
    case 'events': throw new Error('events is not a request');
  }
}

function decode(req: Request, reply: Message): Result {
  if (reply.type === Op.ERROR) return { err: splitStrings(reply.payload)?.[0] ?? '?' };
  switch (req[0]) {
    case 'read':
    case 'raw':
      return { ok: reply.payload.toString('latin1') };
    case 'directory':
    case 'getPerms':
      return { ok: splitStrings(reply.payload) ?? ['<not NUL-terminated>'] };
    default: {
      const list = splitStrings(reply.payload);
      return { ok: list && list.length === 1 ? list[0] : reply.payload.toString('latin1') };
    }
  }
}

/** A runner over in-memory connections: every message the server sends is recorded. */
export class DirectRunner implements Runner {
  readonly conns = new Map<Who, { conn: Connection; out: Message[]; seen: number }>();
  constructor(readonly core: Core) {}

  get(who: Who) {
    let c = this.conns.get(who);
    if (!c) {
      const out: Message[] = [];
      const conn = new Connection(this.core, whoDomid(who), who === 'dom0', (msg) => out.push(msg));
      c = { conn, out, seen: 0 };
      this.conns.set(who, c);
    }
    return c;
  }

  async exec(who: Who, txId: number, req: Request): Promise<Result> {
    const c = this.get(who);
    const before = c.out.length;
    c.conn.handle(encodeRequest(req, txId));
    const reply = c.out.find((m, i) => i >= before && m.type !== Op.WATCH_EVENT);
    if (!reply) throw new Error('no reply');
    if (reply.reqId !== 7 || reply.txId !== txId) throw new Error('reply header does not echo the request');
    return decode(req, reply);
  }

  async events(who: Who): Promise<[string, string][]> {
    const c = this.get(who);
    const evs = c.out.slice(c.seen).filter((m) => m.type === Op.WATCH_EVENT);
    // Replies are not events; keep only the position.
    c.seen = c.out.length;
    return evs.map((m) => {
      const [p, t] = splitStrings(m.payload) ?? [];
      return [p, t];
    });
  }

  async close(): Promise<void> {
    for (const c of this.conns.values()) c.conn.close();
  }
}

for (const scenario of scenarios) {
  test(`server: ${scenario.name}`, async (t) => {
    await runScenario(t, scenario, new DirectRunner(new Core({ quota: scenario.quota })));
  });
}

test('server: the default quotas are Xen 4.17\'s', (t) => {
  t.deepEqual({ ...XEN_DEFAULT_QUOTA }, {
    nodes: 1000,
    watches: 128,
    transactions: 10,
    nodeSize: 2048,
    outstanding: 20,
    permsPerNode: 5,
    pathLength: 2048,
    transactionNodes: 1024,
    memory: 2.5 * 1024 * 1024,
    connections: 16,
  });
});

test('server: a domain reaches ENOSPC at exactly 1000 owned nodes by default', async (t) => {
  const core = new Core();
  const r = new DirectRunner(core);
  t.deepEqual(await r.exec('dom0', 0, ['write', '/local/domain/1/data', '']), { ok: 'OK' });
  t.deepEqual(await r.exec('dom0', 0, ['setPerms', '/local/domain/1/data', 'n1']), { ok: 'OK' });
  // Spread over 10 parents: one parent's child names must stay under the 2048-byte node size.
  let i = 0;
  while (core.live.owned(1) < 1000) {
    const res = await r.exec('dom1', 0, ['write', `data/g${i % 10}/k${i}`, 'v']);
    if (!('ok' in res)) t.fail(`write ${i}: ${JSON.stringify(res)}`);
    i++;
  }
  t.is(core.live.owned(1), 1000);
  t.deepEqual(await r.exec('dom1', 0, ['write', 'data/one-more', 'v']), { err: 'ENOSPC' });
  t.deepEqual(await r.exec('dom1', 0, ['read', `data/g${(i - 1) % 10}/k${i - 1}`]), { ok: 'v' });
  await r.close();
});

test('server: a reply echoes type, req_id and tx_id, and errors travel as NUL-terminated strings', (t) => {
  const core = new Core();
  const out: Message[] = [];
  const conn = new Connection(core, 0, true, (m) => out.push(m));
  conn.handle({ type: Op.READ, reqId: 0xdeadbeef, txId: 0, payload: strings('/nope') });
  t.deepEqual(out[0], { type: Op.ERROR, reqId: 0xdeadbeef, txId: 0, payload: Buffer.from('ENOENT\0') });
  conn.handle({ type: Op.WRITE, reqId: 5, txId: 0, payload: Buffer.from('/x\0binary\0value') });
  t.deepEqual(out[1], { type: Op.WRITE, reqId: 5, txId: 0, payload: Buffer.from('OK\0') });
  conn.handle({ type: Op.READ, reqId: 6, txId: 0, payload: strings('/x') });
  t.deepEqual(out[2].payload, Buffer.from('binary\0value'));
});

test('server: DIRECTORY of a huge node is E2BIG and DIRECTORY_PART pages through it', (t) => {
  const core = new Core();
  const out: Message[] = [];
  const conn = new Connection(core, 0, true, (m) => out.push(m));
  const names: string[] = [];
  for (let i = 0; i < 400; i++) {
    names.push(`child-with-a-long-name-${i}`);
    conn.handle({ type: Op.WRITE, reqId: 1, txId: 0, payload: strings(`/big/${names[i]}`) });
  }
  out.length = 0;
  conn.handle({ type: Op.DIRECTORY, reqId: 2, txId: 0, payload: strings('/big') });
  t.deepEqual(out[0].payload, strings('E2BIG'));
  let collected = Buffer.alloc(0);
  let gen: string | undefined;
  for (let round = 0; round < 10; round++) {
    out.length = 0;
    conn.handle({ type: Op.DIRECTORY_PART, reqId: 3, txId: 0, payload: strings('/big', String(collected.length)) });
    const p = out[0].payload;
    t.is(out[0].type, Op.DIRECTORY_PART);
    t.true(p.length <= 4096);
    const nul = p.indexOf(0);
    gen ??= p.toString('utf8', 0, nul);
    t.is(p.toString('utf8', 0, nul), gen);
    collected = Buffer.concat([collected, p.subarray(nul + 1)]);
    if (collected.length > 1 && collected[collected.length - 2] === 0 && collected[collected.length - 1] === 0) break;
  }
  t.deepEqual(splitStrings(collected.subarray(0, collected.length - 1)), names);
});

test('server: closing a connection drops its watches and aborts its transactions', async (t) => {
  const core = new Core();
  const r = new DirectRunner(core);
  await r.exec('dom0', 0, ['watch', '/x', 'tok']);
  const tx = await r.exec('dom1', 0, ['start']);
  t.true('ok' in tx);
  t.is(core.transactionsOf(1), 1);
  await r.close();
  t.is(core.transactionsOf(1), 0);
  t.is(core.connections.size, 0);
  const other = new DirectRunner(core);
  await other.exec('dom0', 0, ['write', '/x', 'v']);
  t.deepEqual(r.conns.get('dom0')?.out.filter((m) => m.type === Op.WATCH_EVENT).length, 1);
  await other.close();
});

test('server: child lists share their array yet each version keeps its own children', (t) => {
  const a = ChildList.of(['x', 'y']);
  const b = a.with('z');
  const c = a.with('w'); // a branch from an older version copies
  const d = b.with('v');
  t.deepEqual(a.toArray(), ['x', 'y']);
  t.deepEqual(b.toArray(), ['x', 'y', 'z']);
  t.deepEqual(c.toArray(), ['x', 'y', 'w']);
  t.deepEqual([...d], ['x', 'y', 'z', 'v']);
  t.deepEqual(d.without('y').toArray(), ['x', 'z', 'v']);
  t.is(d.without('nope'), d);
  t.is(d.bytes, 8, 'one byte per character plus a NUL per name, as C\'s childlen');
  t.is(d.without('y').bytes, 6);
});

test('server: a transaction announces each changed node once, exact only if every change was', async (t) => {
  const core = new Core();
  const r = new DirectRunner(core);
  await r.exec('dom0', 0, ['write', '/t/a/b', '1']);
  await r.exec('dom0', 0, ['watch', '/t', 'w']);
  await r.exec('dom0', 0, ['watch', '/t/a/b', 'x']);
  await r.events('dom0');
  const start = await r.exec('dom0', 0, ['start']);
  const tx = Number((start as { ok: string }).ok);
  for (let i = 0; i < 100; i++) await r.exec('dom0', tx, ['write', '/t/a/c', String(i)]);
  await r.exec('dom0', tx, ['rm', '/t/a']); // b: exact, a: not
  await r.exec('dom0', tx, ['write', '/t/a/b', 'again']); // b: now not exact
  t.deepEqual(await r.events('dom0'), [], 'nothing fires before the commit');
  t.deepEqual(await r.exec('dom0', tx, ['commit']), { ok: 'OK' });
  t.deepEqual(await r.events('dom0'), [
    ['/t/a/c', 'w'],
    ['/t/a/b', 'w'], ['/t/a/b', 'x'],
    ['/t/a', 'w'],
  ]);
  await r.close();
});

test('server: watch tokens are opaque bytes, returned exactly as they came (as C xenstored)', (t) => {
  const core = new Core();
  const out: Message[] = [];
  const conn = new Connection(core, 0, true, (m) => out.push(m));
  const token = Buffer.from([0xff, 0xfe, 0x80, 0x41, 0xc3]); // not UTF-8
  const nul = Buffer.alloc(1);
  conn.handle({ type: Op.WATCH, reqId: 1, txId: 0, payload: Buffer.concat([strings('/x'), token, nul]) });
  conn.handle({ type: Op.WRITE, reqId: 2, txId: 0, payload: strings('/x') });
  const events = out.filter((m) => m.type === Op.WATCH_EVENT).map((m) => m.payload);
  t.deepEqual(events, [Buffer.concat([strings('/x'), token, nul]), Buffer.concat([strings('/x'), token, nul])]);
  conn.handle({ type: Op.WATCH, reqId: 3, txId: 0, payload: Buffer.concat([strings('/x'), token, nul]) });
  t.deepEqual(out.at(-1)?.payload, strings('EEXIST'));
  conn.handle({ type: Op.UNWATCH, reqId: 4, txId: 0, payload: Buffer.concat([strings('/x'), token, nul]) });
  t.deepEqual(out.at(-1)?.payload, strings('OK'));
  t.is(core.watches.size, 0);
});

test('server: limits are named options: NAME=N pairs parse, anything else is one sentence', (t) => {
  t.deepEqual(parseQuotaArgs(['nodes=2000', 'transactionNodes=512', 'memory=65536']), { nodes: 2000, transactionNodes: 512, memory: 65536 });
  t.deepEqual(parseQuotaArgs([]), {});
  for (const bad of ['nodes', 'nodes=', 'nodes=0', 'nodes=-1', 'bogus=3', 'nodes=1e3']) {
    t.throws(() => parseQuotaArgs([bad]), { message: /^bad quota ".*": use NAME=N with N >= 1 and NAME one of nodes, watches, / });
  }
});
