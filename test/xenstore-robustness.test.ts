// The embedded xenstored under load and abuse: many concurrent clients,
// random and mutated messages, oversize messages, clients that never read.
// Through it all a well-behaved client must keep getting right answers, each
// within a generous bound (1 s). Speed itself is not asserted.
import test from 'ava';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { XenStoreClient } from '../xenstore/client';
import { XenStored, XenStoredOptions } from '../xenstore/server/xenstored';
import { encode, Message, Op, Parser, strings } from '../xenstore/wire';

const dirs: string[] = [];
test.after.always(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function startServer(opts: Partial<XenStoredOptions> = {}): Promise<XenStored> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xs-robust-'));
  dirs.push(dir);
  const server = new XenStored({ dir, ...opts });
  await server.listen();
  return server;
}

/** Introduces domain `id` with a writable ~/data, as libxl would. */
async function addDomain(xs: XenStoreClient, id: number): Promise<void> {
  await xs.write(`/local/domain/${id}/data`, '');
  await xs.setPerms(`/local/domain/${id}`, ['n0', `r${id}`]);
  await xs.setPerms(`/local/domain/${id}/data`, [`n${id}`]);
  await xs.introduce(id, 0, 0);
}

function rawConnect(file: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(file, () => resolve(s));
    s.once('error', reject);
  });
}

/** A well-behaved client's loop: write, read back, check, and time each request. */
async function goodClientLoop(xs: XenStoreClient, key: string, done: () => boolean): Promise<{ ops: number; worstMs: number; wrong: number }> {
  let ops = 0;
  let worstMs = 0;
  let wrong = 0;
  while (!done()) {
    const value = `v${ops}`;
    const t0 = process.hrtime.bigint();
    await xs.write(key, value);
    const got = await xs.read(key);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6 / 2;
    worstMs = Math.max(worstMs, ms);
    if (got !== value) wrong++;
    ops++;
    await new Promise((r) => setTimeout(r, 2));
  }
  return { ops, worstMs, wrong };
}

test('1000 concurrent clients each doing 100 operations all complete correctly', async (t) => {
  const server = await startServer();
  t.teardown(() => server.close());
  const clients = await Promise.all(Array.from({ length: 1000 }, () => XenStoreClient.connect({ path: server.socketPath })));
  await Promise.all(clients.map(async (xs, i) => {
    const base = `/stress/c${i}`;
    await xs.write(`${base}/count`, '0');
    for (let j = 0; j < 99; j++) {
      if (j % 3 === 0) {
        await xs.write(`${base}/k${j}`, `${i}:${j}`);
      } else if (j % 3 === 1) {
        const v = await xs.read(`${base}/k${j - 1}`);
        if (v !== `${i}:${j - 1}`) throw new Error(`client ${i} read ${v} for k${j - 1}`);
      } else {
        await xs.transaction(async (tx) => {
          await tx.write(`${base}/count`, String(Number(await tx.read(`${base}/count`)) + 1));
        });
      }
    }
  }));
  for (const i of [0, 1, 499, 998, 999]) {
    const names = await clients[0].directory(`/stress/c${i}`);
    t.is(names.length, 34, `client ${i}`);
    t.is(await clients[0].read(`/stress/c${i}/count`), '33');
    t.is(await clients[0].read(`/stress/c${i}/k96`), `${i}:96`);
  }
  t.is((await clients[0].directory('/stress')).length, 1000);
  for (const xs of clients) xs.close();
  await server.close();
});

/** A small deterministic generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

/** Valid-looking requests a guest might send, to be mutated. */
function corpus(): Message[] {
  const m = (type: number, payload: Buffer, txId = 0): Message => ({ type, reqId: 1, txId, payload });
  return [
    m(Op.READ, strings('data/a')),
    m(Op.READ, strings('/local/domain/0/name')),
    m(Op.WRITE, Buffer.concat([strings('data/a'), Buffer.from('value')])),
    m(Op.WRITE, Buffer.concat([strings('data/deep/er/node'), Buffer.alloc(100, 0x41)])),
    m(Op.MKDIR, strings('data/dir')),
    m(Op.RM, strings('data/dir')),
    m(Op.DIRECTORY, strings('data')),
    m(Op.DIRECTORY_PART, strings('data', '0')),
    m(Op.GET_PERMS, strings('data/a')),
    m(Op.SET_PERMS, strings('data/a', 'n1', 'r0')),
    m(Op.WATCH, strings('data', 'tok')),
    m(Op.WATCH, strings('@releaseDomain', 'tok')),
    m(Op.UNWATCH, strings('data', 'tok')),
    m(Op.TRANSACTION_START, strings('')),
    m(Op.TRANSACTION_END, strings('T'), 1),
    m(Op.TRANSACTION_END, strings('F'), 2),
    m(Op.WRITE, Buffer.concat([strings('data/t'), Buffer.from('x')]), 1),
    m(Op.GET_DOMAIN_PATH, strings('1')),
    m(Op.INTRODUCE, strings('9', '0', '0')),
    m(Op.RELEASE, strings('1')),
    m(Op.RESET_WATCHES, Buffer.alloc(0)),
    m(Op.CONTROL, strings('check')),
    m(Op.IS_DOMAIN_INTRODUCED, strings('1')),
  ];
}

function mutate(base: Message, rand: () => number): Buffer {
  const msg: Message = { ...base, payload: Buffer.from(base.payload) };
  const kind = Math.floor(rand() * 8);
  if (kind === 0) msg.type = Math.floor(rand() * 32);
  if (kind === 1) msg.txId = Math.floor(rand() * 4);
  if (kind === 2 && msg.payload.length > 0) msg.payload = msg.payload.subarray(0, Math.floor(rand() * msg.payload.length));
  if (kind === 3) for (let i = 0; i < 3 && msg.payload.length > 0; i++) msg.payload[Math.floor(rand() * msg.payload.length)] = Math.floor(rand() * 256);
  if (kind === 4) msg.payload = Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
  if (kind === 5) msg.payload = Buffer.concat([msg.payload, Buffer.alloc(Math.floor(rand() * 3000), 0x61)]);
  msg.reqId = Math.floor(rand() * 0x100000000);
  const bytes = encode(msg);
  // Rarely lie in the header: a wrong length shifts the framing of what follows.
  if (kind === 6 && rand() < 0.1) bytes.writeUInt32LE(Math.floor(rand() * 64), 12);
  return bytes;
}

/** A header claiming more than 4096 bytes: the server must close the connection. */
function oversize(rand: () => number): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(Math.floor(rand() * 27), 0);
  h.writeUInt32LE(4097 + Math.floor(rand() * 1e6), 12);
  return h;
}

test('100,000 random and mutated messages from a guest never stop the server serving others', async (t) => {
  const server = await startServer();
  t.teardown(() => server.close());
  const dom0 = await XenStoreClient.connect({ path: server.socketPath });
  await addDomain(dom0, 1);
  const good = await XenStoreClient.connect({ path: server.socketPath });
  let finished = false;
  const goodRun = goodClientLoop(good, '/good/key', () => finished);

  const rand = rng(0xc0ffee);
  const seeds = corpus();
  let sent = 0;
  let reconnects = 0;
  while (sent < 100_000) {
    const sock = await rawConnect(server.domainSocketPath(1));
    sock.on('data', () => undefined); // read and discard replies
    let closed = false;
    sock.on('close', () => (closed = true));
    sock.on('error', () => undefined);
    while (!closed && sent < 100_000) {
      const batch: Buffer[] = [];
      for (let i = 0; i < 200 && sent < 100_000; i++, sent++) batch.push(mutate(seeds[Math.floor(rand() * seeds.length)], rand));
      // Now and then end a batch with an oversize header (everything before it is still answered).
      if (rand() < 0.005) {
        batch.push(oversize(rand));
        sent++;
      }
      if (!sock.write(Buffer.concat(batch))) await new Promise((r) => { sock.once('drain', r); sock.once('close', r); });
      await new Promise((r) => setImmediate(r));
    }
    if (closed) reconnects++;
    sock.destroy();
  }
  finished = true;
  const stats = await goodRun;
  t.true(stats.ops > 10, `the good client made progress (${stats.ops} round trips)`);
  t.is(stats.wrong, 0);
  t.true(stats.worstMs < 1000, `worst latency ${stats.worstMs} ms`);
  // The server still answers everyone, including the domain.
  t.is(await dom0.read('/good/key'), `v${stats.ops - 1}`);
  // (The fuzzer may well have removed its own ~/data: dom0 provisions it again.)
  await dom0.write('/local/domain/1/data/after-fuzz', 'fine');
  await dom0.setPerms('/local/domain/1/data', ['n1']);
  await dom0.setPerms('/local/domain/1/data/after-fuzz', ['n1']);
  const again = await XenStoreClient.connect({ path: server.domainSocketPath(1) });
  t.is(await again.read('data/after-fuzz'), 'fine');
  await again.write('data/after-fuzz', 'still fine');
  t.is(await dom0.read('/local/domain/1/data/after-fuzz'), 'still fine');
  t.log(`${sent} messages, ${reconnects} connections closed by the server, ${stats.ops} good round trips`);
  for (const xs of [dom0, good, again]) xs.close();
  await server.close();
});

test('a message over 4096 bytes closes only that connection', async (t) => {
  const server = await startServer();
  const good = await XenStoreClient.connect({ path: server.socketPath });
  const bad = await rawConnect(server.socketPath);
  const closed = new Promise((r) => bad.once('close', r));
  bad.on('data', () => undefined);
  const header = Buffer.alloc(16);
  header.writeUInt32LE(Op.WRITE, 0);
  header.writeUInt32LE(4097, 12);
  bad.write(Buffer.concat([header, Buffer.alloc(4097)]));
  await closed;
  await good.write('/still', 'here');
  t.is(await good.read('/still'), 'here');
  good.close();
  await server.close();
});

/** Reads whole messages from a raw socket as they arrive. */
function messages(sock: net.Socket): { list: Message[]; wait(ok: (list: Message[]) => boolean, ms?: number): Promise<void> } {
  const parser = new Parser();
  const list: Message[] = [];
  sock.on('data', (d: Buffer) => {
    parser.feed(d);
    for (let r = parser.next(); r?.kind === 'message'; r = parser.next()) list.push(r.msg);
  });
  return {
    list,
    async wait(ok, ms = 10000) {
      const deadline = Date.now() + ms;
      while (!ok(list)) {
        if (Date.now() > deadline) throw new Error(`timed out with ${list.length} messages`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
}

test.serial('a dom0 client that stops reading keeps its connection; its events collapse within its budget; another stays served within 1 s', async (t) => {
  const server = await startServer();
  const writer = await XenStoreClient.connect({ path: server.socketPath });
  const good = await XenStoreClient.connect({ path: server.socketPath });
  // The flooder: 100 watches on /flood with 2 KB tokens; then it stops reading.
  const flooder = await rawConnect(server.socketPath);
  flooder.on('error', () => undefined);
  const inbox = messages(flooder);
  const token = (i: number): string => `${i}`.padEnd(2000, 'x');
  const watches = Array.from({ length: 100 }, (_, i) =>
    encode({ type: Op.WATCH, reqId: i + 1, txId: 0, payload: strings('/flood', token(i)) }));
  flooder.write(Buffer.concat(watches));
  await inbox.wait((l) => l.length === 200);
  t.is(server.core.watches.size, 100);
  flooder.pause();
  const conn = [...server.core.connections].find((c) => c.privileged && server.core.watches.size > 0 && c.events.sent === 100);
  if (!conn) throw new Error('the flooder\'s connection is not there');

  global.gc?.();
  const before = process.memoryUsage();
  let finished = false;
  const goodRun = goodClientLoop(good, '/good/key', () => finished);
  // 2000 writes × 100 watches × 2 KB: 400 MB of events if nothing bounded them.
  // (Distinct nodes: an event equal to one still queued is dropped anyway.)
  let peak = 0;
  for (let writes = 0; writes < 2000; writes++) {
    await writer.write(`/flood/x${writes}`, String(writes));
    peak = Math.max(peak, conn.budget.used);
  }
  const after = process.memoryUsage();
  finished = true;
  const stats = await goodRun;
  t.is(server.core.connections.size, 3, 'nobody was disconnected');
  t.false(conn.closed);
  const bound = server.core.quota.memory + 100 * 2200;
  t.true(peak <= bound, `queued ${peak} bytes, bound ${bound}`);
  t.true(conn.events.collapsed > 100_000, `${conn.events.collapsed} events collapsed`);
  const grew = (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / 2 ** 20;
  t.true(grew < 64, `memory grew by ${grew.toFixed(1)} MiB`);
  t.is(stats.wrong, 0);
  t.true(stats.ops > 0);
  t.true(stats.worstMs < 1000, `worst latency ${stats.worstMs} ms`);
  t.log(`peak queue ${(peak / 2 ** 20).toFixed(2)} MiB, ${conn.events.collapsed} events collapsed, memory +${grew.toFixed(1)} MiB`);

  // Reading again, it hears about /flood itself on every watch, then is served as before.
  const seen = inbox.list.length;
  flooder.resume();
  const collapsedFor = (i: number) => (l: Message[]) => l.slice(seen).some((m) =>
    m.type === Op.WATCH_EVENT && m.payload.equals(strings('/flood', token(i))));
  await inbox.wait((l) => Array.from({ length: 100 }, (_, i) => i).every((i) => collapsedFor(i)(l)));
  flooder.write(encode({ type: Op.READ, reqId: 999, txId: 0, payload: strings('/flood/x1999') }));
  await inbox.wait((l) => l.some((m) => m.reqId === 999 && m.type === Op.READ));
  t.deepEqual(inbox.list.find((m) => m.reqId === 999)?.payload, Buffer.from('1999'));
  flooder.destroy();
  writer.close();
  good.close();
  await server.close();
});

test('a domain that does not read its replies is held at its outstanding-request quota; dom0 is unaffected', async (t) => {
  const server = await startServer({ quota: { outstanding: 5 } });
  const dom0 = await XenStoreClient.connect({ path: server.socketPath });
  await addDomain(dom0, 1);
  await dom0.write('/local/domain/1/data/big', Buffer.alloc(2000, 0x62));
  const lazy = await rawConnect(server.domainSocketPath(1));
  lazy.on('error', () => undefined);
  // Enough big replies to fill the kernel's socket buffer, then writes we can count.
  const reads = Array.from({ length: 600 }, (_, i) => encode({ type: Op.READ, reqId: i, txId: 0, payload: strings('data/big') }));
  const writes = Array.from({ length: 50 }, (_, i) =>
    encode({ type: Op.WRITE, reqId: 1000 + i, txId: 0, payload: Buffer.concat([strings(`data/w${i}`), Buffer.from('1')]) }));
  lazy.write(Buffer.concat([...reads, ...writes]));
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  const seen = await dom0.directory('/local/domain/1/data');
  t.true(Date.now() - t0 < 1000);
  t.false(seen.includes('w49'), 'the domain\'s later requests wait');
  // Once it reads, everything it sent is answered.
  lazy.on('data', () => undefined);
  // Generous: one request per connection per turn, and other tests share this event loop.
  for (let i = 0; i < 1200 && !(await dom0.directory('/local/domain/1/data')).includes('w49'); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  t.true((await dom0.directory('/local/domain/1/data')).includes('w49'));
  lazy.destroy();
  dom0.close();
  await server.close();
});
