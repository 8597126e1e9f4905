// XenStoreClient: the shared server tables again, this time through the
// client over real unix sockets to the embedded xenstored; then what is the
// client's own (transaction retry, events iterator, errors, transports).
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { XenStoreClient, XenStoreError } from '../xenstore/client';
import { XenStored } from '../xenstore/server/xenstored';
import { Connection } from '../xenstore/server/connection';
import { Core } from '../xenstore/server/core';
import { memoryPair } from '../xenstore/transport';
import { encode, formatPerm, Parser } from '../xenstore/wire';
import { Request, Result, Runner, runScenario, scenarios, Who, whoDomid } from './xenstore-tables';
import type { Quota } from '../xenstore/server/quota';

const dirs: string[] = [];
test.after.always(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function startServer(quota?: Partial<Quota>): Promise<XenStored> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xs-client-'));
  dirs.push(dir);
  const server = new XenStored({ dir, quota });
  await server.listen();
  return server;
}

class ClientRunner implements Runner {
  private clients = new Map<Who, { xs: XenStoreClient; events: [string, string][] }>();
  constructor(private readonly server: XenStored) {}

  private async get(who: Who) {
    let c = this.clients.get(who);
    if (!c) {
      const domid = whoDomid(who);
      const file = who === 'dom0' ? this.server.socketPath : this.server.domainSocketPath(domid);
      const xs = await XenStoreClient.connect({ path: file });
      const entry = { xs, events: [] as [string, string][] };
      xs.on('watch', (p: string, tok: string) => entry.events.push([p, tok]));
      this.clients.set(who, entry);
      c = entry;
    }
    return c;
  }

  async exec(who: Who, tx: number, req: Request): Promise<Result> {
    const { xs } = await this.get(who);
    try {
      return { ok: await this.call(xs, tx, req) };
    } catch (err) {
      if (err instanceof XenStoreError) return { err: err.code };
      throw err;
    }
  }

  private async call(xs: XenStoreClient, tx: number, req: Request): Promise<string | string[]> {
    switch (req[0]) {
      case 'read': return xs.read(req[1], tx);
      case 'write': await xs.write(req[1], req[2], tx); return 'OK';
      case 'mkdir': await xs.mkdir(req[1], tx); return 'OK';
      case 'rm': await xs.rm(req[1], tx); return 'OK';
      case 'directory': return xs.directory(req[1], tx);
      case 'getPerms': return (await xs.getPerms(req[1], tx)).map(formatPerm);
      case 'setPerms': await xs.setPerms(req[1], req.slice(2) as string[], tx); return 'OK';
      case 'watch': await xs.watch(req[1], req[2]); return 'OK';
      case 'unwatch': await xs.unwatch(req[1], req[2]); return 'OK';
      case 'start': return String(await xs.startTransaction());
      case 'commit': await xs.endTransaction(tx, true); return 'OK';
      case 'abort': await xs.endTransaction(tx, false); return 'OK';
      case 'introduce': await xs.introduce(req[1], 0, 0); return 'OK';
      case 'release': await xs.release(req[1]); return 'OK';
      case 'getDomainPath': return xs.getDomainPath(req[1]);
      case 'isIntroduced': return (await xs.isDomainIntroduced(req[1])) ? 'T' : 'F';
      case 'raw': return (await xs.request(req[1], tx, Buffer.from(req[2], 'latin1'))).payload.toString('latin1');
      case 'events': throw new Error('events is not a request');
    }
  }

  async events(who: Who): Promise<[string, string][]> {
    const c = await this.get(who);
    // A round trip: every event the server sent before this reply has arrived.
    await c.xs.getDomainPath(0);
    const evs = c.events;
    c.events = [];
    return evs;
  }

  async close(): Promise<void> {
    for (const c of this.clients.values()) c.xs.close();
    await this.server.close();
  }
}

for (const scenario of scenarios) {
  test(`client over a unix socket: ${scenario.name}`, async (t) => {
    await runScenario(t, scenario, new ClientRunner(await startServer(scenario.quota)));
  });
}

test('transaction() redoes the whole function when the commit conflicts', async (t) => {
  const server = await startServer();
  const a = await XenStoreClient.connect({ path: server.socketPath });
  const b = await XenStoreClient.connect({ path: server.socketPath });
  await a.write('/counter', '0');
  let runs = 0;
  const result = await a.transaction(async (tx) => {
    runs++;
    const n = Number(await tx.read('/counter'));
    if (runs === 1) await b.write('/counter', '10'); // interferes once
    await tx.write('/counter', String(n + 1));
    return n + 1;
  });
  t.is(runs, 2);
  t.is(result, 11);
  t.is(await a.read('/counter'), '11');
  // An error inside aborts and is rethrown; nothing is written.
  await t.throwsAsync(a.transaction(async (tx) => {
    await tx.write('/counter', 'bad');
    throw new Error('changed my mind');
  }), { message: 'changed my mind' });
  t.is(await a.read('/counter'), '11');
  // Concurrent increments from two clients all land.
  await Promise.all([a, b].flatMap((xs) => Array.from({ length: 10 }, () => xs.transaction(async (tx) => {
    await tx.write('/counter', String(Number(await tx.read('/counter')) + 1));
  }))));
  t.is(await a.read('/counter'), '31');
  a.close();
  b.close();
  await server.close();
});

test('errors carry the errno name, the operation and the path, in one sentence', async (t) => {
  const server = await startServer();
  const xs = await XenStoreClient.connect({ path: server.socketPath });
  const err = await t.throwsAsync(xs.read('/no/such/node'), { instanceOf: XenStoreError });
  t.is(err?.code, 'ENOENT');
  t.is(err?.op, 'read');
  t.is(err?.path, '/no/such/node');
  t.is(err?.message, 'XenStore read /no/such/node failed: ENOENT (no such node)');
  t.is(await xs.tryRead('/no/such/node'), undefined);
  const big = await t.throwsAsync(xs.write('/x', Buffer.alloc(5000)), { instanceOf: XenStoreError });
  t.is(big?.code, 'E2BIG');
  xs.close();
  const closed = await t.throwsAsync(xs.read('/tool'), { instanceOf: XenStoreError });
  t.is(closed?.code, 'ECONNRESET');
  await server.close();
  await t.throwsAsync(XenStoreClient.connect({ path: server.socketPath }), { message: /cannot connect to xenstored at .*socket \(ENOENT\)/ });
});

test('connect() takes XENSTORED_PATH when no path is given', async (t) => {
  const server = await startServer();
  const saved = process.env.XENSTORED_PATH;
  process.env.XENSTORED_PATH = server.socketPath;
  try {
    const xs = await XenStoreClient.connect();
    t.deepEqual(await xs.directory('/tool'), ['xenstored']);
    xs.close();
  } finally {
    if (saved === undefined) delete process.env.XENSTORED_PATH;
    else process.env.XENSTORED_PATH = saved;
    await server.close();
  }
});

test('watchEvents() yields events as an async iterator and ends on abort', async (t) => {
  const server = await startServer();
  const xs = await XenStoreClient.connect({ path: server.socketPath });
  const ac = new AbortController();
  const events = xs.watchEvents(ac.signal);
  await xs.watch('/it', 'tok');
  await xs.write('/it/a', '1');
  const got: string[] = [];
  for await (const ev of events) {
    got.push(`${ev.path} ${ev.token}`);
    if (got.length === 2) ac.abort();
  }
  t.deepEqual(got, ['/it tok', '/it/a tok']);
  xs.close();
  await server.close();
});

test('directory() falls back to DIRECTORY_PART for listings over 4096 bytes', async (t) => {
  const server = await startServer();
  const xs = await XenStoreClient.connect({ path: server.socketPath });
  const names = Array.from({ length: 300 }, (_, i) => `a-rather-long-child-name-number-${i}`);
  await Promise.all(names.map((n) => xs.write(`/wide/${n}`, '')));
  t.deepEqual((await xs.directory('/wide')).sort(), [...names].sort());
  xs.close();
  await server.close();
});

test('the client works over an in-memory transport and matches replies by req_id', async (t) => {
  const [clientEnd, serverEnd] = memoryPair();
  const core = new Core();
  const parser = new Parser();
  const pending: Buffer[] = [];
  const conn = new Connection(core, 0, true, (m) => pending.push(encode(m)));
  serverEnd.onData((chunk) => {
    parser.feed(chunk);
    const replies: Buffer[] = [];
    for (let r = parser.next(); r && r.kind === 'message'; r = parser.next()) {
      conn.handle(r.msg);
      replies.push(...pending.splice(0));
    }
    // Answer out of order: the client must match by req_id.
    for (const b of replies.reverse()) serverEnd.send(b);
  });
  const xs = await XenStoreClient.connect({ transport: clientEnd });
  await xs.write('/m/a', 'A');
  await xs.write('/m/b', 'B');
  const [a, b, missing] = await Promise.allSettled([xs.read('/m/a'), xs.read('/m/b'), xs.read('/m/c')]);
  t.deepEqual(a, { status: 'fulfilled', value: 'A' });
  t.deepEqual(b, { status: 'fulfilled', value: 'B' });
  t.is(missing.status, 'rejected');
  xs.close();
  conn.close();
});
