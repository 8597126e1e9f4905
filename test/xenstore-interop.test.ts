// Xen's own command-line tools (Debian xenstore-utils, built on libxenstore)
// against the embedded xenstored through XENSTORED_PATH: as dom0 on the
// privileged socket, and as a guest on its domain socket, where they must be
// refused what a guest is refused.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Child, run } from '../harness/child';
import { XenStoreClient } from '../xenstore/client';
import { XenStored } from '../xenstore/server/xenstored';
import { formatPerm } from '../xenstore/wire';

const TOOLS = ['xenstore-write', 'xenstore-read', 'xenstore-ls', 'xenstore-list', 'xenstore-rm', 'xenstore-chmod', 'xenstore-exists', 'xenstore-watch'];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function tool(socket: string, name: string, ...args: string[]): Promise<Run> {
  const r = await run(name, args, { env: { ...process.env, XENSTORED_PATH: socket }, timeoutMs: 10_000 });
  return { code: r.code, stdout: r.out, stderr: r.err };
}

const dirs: string[] = [];
test.after.always(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function setup(t: { teardown(fn: () => Promise<void>): void }): Promise<{ server: XenStored; xs: XenStoreClient }> {
  for (const name of TOOLS) {
    if (!fs.existsSync(`/usr/bin/${name}`)) throw new Error(`${name} is missing: install Debian's xenstore-utils (apt-get install xenstore-utils)`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xs-interop-'));
  dirs.push(dir);
  const server = new XenStored({ dir });
  await server.listen();
  t.teardown(() => server.close());
  const xs = await XenStoreClient.connect({ path: server.socketPath });
  return { server, xs };
}

async function libxlDomain(xs: XenStoreClient, id: number): Promise<void> {
  const home = `/local/domain/${id}`;
  const ro = ['n0', `r${id}`];
  for (const [p, v, perms] of [
    [home, '', ro], [`${home}/name`, `guest${id}`, ro], [`${home}/domid`, String(id), ro],
    [`${home}/control`, '', ro], [`${home}/control/shutdown`, '', [`n${id}`]], [`${home}/data`, '', [`n${id}`]],
  ] as [string, string, string[]][]) {
    await xs.write(p, v);
    await xs.setPerms(p, perms);
  }
  await xs.introduce(id, 0, 0);
}

test('dom0: write, read, ls -f, list, exists, chmod, rm behave as on Xen', async (t) => {
  const { server, xs } = await setup(t);
  const s = server.socketPath;
  t.is((await tool(s, 'xenstore-write', '/a/b', 'hello', '/a/c', 'world')).code, 0);
  t.deepEqual(await tool(s, 'xenstore-read', '/a/b'), { code: 0, stdout: 'hello\n', stderr: '' });
  t.is(await xs.read('/a/c'), 'world');
  const ls = await tool(s, 'xenstore-ls', '-f', '/a');
  t.is(ls.code, 0);
  t.deepEqual(ls.stdout.trimEnd().split('\n'), ['/a/b = "hello"', '/a/c = "world"']);
  const all = await tool(s, 'xenstore-ls', '-f');
  t.true(all.stdout.includes('/tool/xenstored = ""'));
  t.deepEqual(await tool(s, 'xenstore-list', '/a'), { code: 0, stdout: 'b\nc\n', stderr: '' });
  t.is((await tool(s, 'xenstore-exists', '/a/b')).code, 0);
  t.not((await tool(s, 'xenstore-exists', '/a/zz')).code, 0);
  const missing = await tool(s, 'xenstore-read', '/a/zz');
  t.not(missing.code, 0);
  t.regex(missing.stderr, /couldn't read path \/a\/zz/);
  t.is((await tool(s, 'xenstore-chmod', '/a/b', 'n0', 'r1')).code, 0);
  t.deepEqual((await xs.getPerms('/a/b')).map(formatPerm), ['n0', 'r1']);
  const lsp = await tool(s, 'xenstore-ls', '-p', '/a');
  t.regex(lsp.stdout, /b = "hello"[ .]+\(n0,r1\)/);
  t.is((await tool(s, 'xenstore-rm', '/a/c')).code, 0);
  t.is(await xs.tryRead('/a/c'), undefined);
  t.is((await tool(s, 'xenstore-rm', '/a')).code, 0);
  t.deepEqual(await xs.directory('/'), ['tool']);
  xs.close();
  await server.close();
});

test('dom0: xenstore-watch -n 2 sees the initial event and one change', async (t) => {
  const { server, xs } = await setup(t);
  const child = new Child('xenstore-watch', ['-n', '2', '/w'], { env: { ...process.env, XENSTORED_PATH: server.socketPath } });
  // The change must come after the watch is registered, i.e. after its initial event.
  for (let i = 0; i < 1000 && !child.stdout.includes('/w'); i++) await new Promise((r) => setTimeout(r, 10));
  t.true(child.stdout.includes('/w'), 'xenstore-watch printed its initial event');
  await xs.write('/w/x', '1');
  const timer = setTimeout(() => child.kill(), 10_000);
  t.is((await child.exited).code, 0);
  clearTimeout(timer);
  t.deepEqual(child.stdout.trimEnd().split('\n'), ['/w', '/w/x']);
  xs.close();
  await server.close();
});

test('dom0: tools list a directory too big for one reply (DIRECTORY_PART)', async (t) => {
  const { server, xs } = await setup(t);
  const names = Array.from({ length: 250 }, (_, i) => `some-fairly-long-node-name-${String(i).padStart(3, '0')}`);
  await Promise.all(names.map((n) => xs.write(`/big/${n}`, '')));
  const r = await tool(server.socketPath, 'xenstore-list', '/big');
  t.is(r.code, 0);
  t.deepEqual(r.stdout.trimEnd().split('\n').sort(), names);
  xs.close();
  await server.close();
});

test('a guest: the tools work on its own nodes and are refused elsewhere', async (t) => {
  const { server, xs } = await setup(t);
  await libxlDomain(xs, 1);
  await libxlDomain(xs, 2);
  const g = server.domainSocketPath(1);
  t.deepEqual(await tool(g, 'xenstore-read', 'domid'), { code: 0, stdout: '1\n', stderr: '' });
  t.deepEqual(await tool(g, 'xenstore-read', '/local/domain/1/name'), { code: 0, stdout: 'guest1\n', stderr: '' });
  t.is((await tool(g, 'xenstore-write', 'data/x', 'v')).code, 0);
  t.is(await xs.read('/local/domain/1/data/x'), 'v');
  t.is((await tool(g, 'xenstore-write', 'control/shutdown', 'poweroff')).code, 0);
  const ls = await tool(g, 'xenstore-ls', '-f', '/local/domain/1/data');
  t.deepEqual(ls.stdout.trimEnd().split('\n'), ['/local/domain/1/data/x = "v"']);
  t.is((await tool(g, 'xenstore-exists', 'control')).code, 0);
  // Refusals.
  t.not((await tool(g, 'xenstore-write', 'control/dpdk', 'x')).code, 0);
  t.not((await tool(g, 'xenstore-write', 'name', 'evil')).code, 0);
  t.not((await tool(g, 'xenstore-read', '/local/domain/2/name')).code, 0);
  t.not((await tool(g, 'xenstore-write', '/local/domain/2/data/x', 'x')).code, 0);
  t.not((await tool(g, 'xenstore-rm', 'control')).code, 0);
  t.not((await tool(g, 'xenstore-rm', '/local/domain/2/data')).code, 0);
  t.not((await tool(g, 'xenstore-chmod', 'control', 'n1')).code, 0);
  t.not((await tool(g, 'xenstore-chmod', 'data/x', 'n2')).code, 0);
  const root = await tool(g, 'xenstore-ls', '/');
  t.not(root.code, 0);
  t.regex(root.stderr, /Permission denied/);
  t.not((await tool(g, 'xenstore-list', '/local/domain')).code, 0);
  // Nothing changed where the guest was refused.
  t.is(await xs.read('/local/domain/1/name'), 'guest1');
  t.is(await xs.tryRead('/local/domain/1/control/dpdk'), undefined);
  t.is(await xs.tryRead('/local/domain/2/data/x'), undefined);
  t.deepEqual((await xs.getPerms('/local/domain/1/control')).map(formatPerm), ['n0', 'r1']);
  t.deepEqual((await xs.getPerms('/local/domain/1/data/x')).map(formatPerm), ['n1']);
  xs.close();
  await server.close();
});
