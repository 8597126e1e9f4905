// The simulated platform's grant rules: each one is something the real
// hypervisor or Linux driver would enforce. Every test has its own sim dir.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Child } from '../harness/child';
import { GTF_permit_access, GTF_readonly, GTF_reading, GTF_writing, PAGE_SIZE } from '../native/abi';
import { Grants, defaultSimDir, detectPlatform, simDestroyDomain, simInit } from '../native/grants';

const FIXTURES = path.join(__dirname, 'fixtures');
const dirs: string[] = [];
const children: Child[] = [];

function tempSimDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xsw-gnt-'));
  dirs.push(dir);
  return dir;
}

test.after.always(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

// A grant table entry as the sim's table file holds it (Xen's v1 layout).
function entry(dir: string, domid: number, ref: number): { flags: number; domid: number; frame: number } {
  const buf = Buffer.alloc(8);
  const fd = fs.openSync(path.join(dir, `dom${domid}`, 'table'), 'r');
  try {
    fs.readSync(fd, buf, 0, 8, ref * 8);
  } finally {
    fs.closeSync(fd);
  }
  return { flags: buf.readUInt16LE(0), domid: buf.readUInt16LE(2), frame: buf.readUInt32LE(4) };
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (cond()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Fixture<T> {
  proc: Child;
  report: Promise<T>;
}

// Runs test/fixtures/<name>.js as simulated domain `domid`; `report` is the
// first JSON line it prints.
function fixture<T>(name: string, args: (string | number)[], dir: string, domid: number): Fixture<T> {
  const proc = new Child(process.execPath, [path.join(FIXTURES, `${name}.js`), ...args.map(String)], {
    name,
    env: { ...process.env, XSW_SIM_DIR: dir, XSW_SIM_DOMID: String(domid) },
    stdin: true,
  });
  children.push(proc);
  const report = proc.waitFor('its report', () => (proc.out.length > 0 ? (JSON.parse(proc.out[0]) as T) : undefined), 60_000);
  return { proc, report };
}

async function endChild(c: Fixture<unknown>): Promise<void> {
  c.proc.closeStdin();
  await c.proc.exited;
}

test('a grant mapped by the domain it names shares the page both ways, with GTF_reading/GTF_writing while mapped', (t) => {
  const simDir = tempSimDir();
  const guest = Grants.open({ platform: 'sim', simDir, domid: 1 });
  const dom0 = Grants.open({ platform: 'sim', simDir, domid: 0 });
  t.is(guest.platform, 'sim');
  const a = guest.alloc(0, 3);
  t.is(a.pages, 3);
  t.is(a.grefs.length, 3);
  t.is(a.buffer.byteLength, 3 * PAGE_SIZE);
  t.true(a.grefs.every((g) => g >= 8), 'refs 0-7 are reserved');
  t.is(typeof a.addr, 'bigint');
  const e = entry(simDir, 1, a.grefs[0]);
  t.is(e.flags, GTF_permit_access);
  t.is(e.domid, 0);
  t.is(e.frame, a.pfns[0]);
  t.true(new Uint8Array(a.buffer).every((b) => b === 0), 'pages start zeroed');

  new Uint8Array(a.buffer).set([1, 2, 3], PAGE_SIZE * 2 - 1);
  const m = dom0.map(1, a.grefs);
  t.is(m.pages, 3);
  const seen = new Uint8Array(m.buffer);
  t.deepEqual([...seen.subarray(PAGE_SIZE * 2 - 1, PAGE_SIZE * 2 + 2)], [1, 2, 3]);
  seen[10] = 0x77;
  t.is(new Uint8Array(a.buffer)[10], 0x77);
  t.is(entry(simDir, 1, a.grefs[1]).flags, GTF_permit_access | GTF_reading | GTF_writing);

  dom0.unmap(m);
  t.is(m.buffer.byteLength, 0, 'the mapping buffer is detached');
  t.is(entry(simDir, 1, a.grefs[1]).flags, GTF_permit_access);
  guest.free(a);
  t.is(a.buffer.byteLength, 0, 'the allocation buffer is detached');
  t.is(entry(simDir, 1, a.grefs[0]).flags, 0);
  guest.close();
  dom0.close();
});

test('a grant cannot be mapped by a domain it does not name', (t) => {
  const simDir = tempSimDir();
  const guest = Grants.open({ platform: 'sim', simDir, domid: 1 });
  const other = Grants.open({ platform: 'sim', simDir, domid: 2 });
  const a = guest.alloc(0, 1);
  t.throws(() => other.map(1, a.grefs), {
    code: 'EACCES',
    message: `grant ${a.grefs[0]} of domain 1 is not granted to domain 2`,
  });
  t.is(entry(simDir, 1, a.grefs[0]).flags, GTF_permit_access, 'the refused map left no trace');
  guest.close();
  other.close();
});

test('a read-only grant maps read-only and refuses a writable map', (t) => {
  const simDir = tempSimDir();
  const guest = Grants.open({ platform: 'sim', simDir, domid: 1 });
  const dom0 = Grants.open({ platform: 'sim', simDir, domid: 0 });
  const a = guest.alloc(0, 1, { writable: false });
  t.is(entry(simDir, 1, a.grefs[0]).flags, GTF_permit_access | GTF_readonly);
  t.throws(() => dom0.map(1, a.grefs, { writable: true }), { code: 'EACCES', message: /is read-only: map it read-only/ });
  new Uint8Array(a.buffer)[0] = 9;
  const m = dom0.map(1, a.grefs, { writable: false });
  t.is(new Uint8Array(m.buffer)[0], 9);
  t.is(entry(simDir, 1, a.grefs[0]).flags, GTF_permit_access | GTF_readonly | GTF_reading);
  // The mapping really is read-only: a process writing through it faults.
  const r = spawnSync(process.execPath, [path.join(FIXTURES, 'grant-map-ro-write.js'), '1', String(a.grefs[0])], {
    env: { ...process.env, XSW_SIM_DIR: simDir, XSW_SIM_DOMID: '0' },
  });
  t.is(r.stdout.toString(), 'mapped 9\n');
  t.true(r.signal === 'SIGSEGV' || r.signal === 'SIGBUS', `killed by ${r.signal}, status ${r.status}: ${r.stderr}`);
  guest.close();
  dom0.close();
});

test('reserved, out-of-range and never-granted refs are refused, and a bad ref in a list maps nothing', (t) => {
  const simDir = tempSimDir();
  const guest = Grants.open({ platform: 'sim', simDir, domid: 1 });
  const dom0 = Grants.open({ platform: 'sim', simDir, domid: 0 });
  const a = guest.alloc(0, 2);
  for (let ref = 0; ref < 8; ref++) {
    t.throws(() => dom0.map(1, [ref]), { code: 'EINVAL', message: /is reserved or out of range/ }, `ref ${ref}`);
  }
  t.throws(() => dom0.map(1, [1 << 20]), { code: 'EINVAL' });
  t.throws(() => dom0.map(1, [a.grefs[1] + 100]), { code: 'EACCES' });
  t.throws(() => dom0.map(1, [a.grefs[0], 3]), { code: 'EINVAL' });
  t.is(entry(simDir, 1, a.grefs[0]).flags, GTF_permit_access, 'the first ref was not left mapped');
  t.throws(() => dom0.map(5, a.grefs), { code: 'ENOENT', message: /domain 5 has no grant table/ });
  guest.close();
  dom0.close();
});

test('the gntalloc limit defaults to 1024 pages per domain and ENOSPC names how to raise it', (t) => {
  const simDir = tempSimDir();
  const guest = Grants.open({ platform: 'sim', simDir, domid: 1 });
  const a = guest.alloc(0, 1000);
  guest.alloc(0, 24);
  t.throws(() => guest.alloc(0, 1), {
    code: 'ENOSPC',
    message:
      'gntalloc limit of 1024 pages reached for domain 1: raise it (sim: xsw-sim up --gntalloc-limit; Xen: modprobe xen-gntalloc limit=N)',
  });
  // Another domain has its own budget.
  const other = Grants.open({ platform: 'sim', simDir, domid: 2 });
  t.is(other.alloc(0, 1024).pages, 1024);
  guest.free(a);
  t.is(guest.alloc(0, 1000).pages, 1000);
  guest.close();
  other.close();
});

test('simInit configures the gntalloc limit of a sim dir', (t) => {
  const simDir = tempSimDir();
  simInit(simDir, { gntallocLimit: 10 });
  const guest = Grants.open({ platform: 'sim', simDir, domid: 1 });
  guest.alloc(0, 6);
  t.throws(() => guest.alloc(0, 5), { code: 'ENOSPC', message: /gntalloc limit of 10 pages/ });
  t.is(guest.alloc(0, 4).pages, 4);
  guest.close();
});

test('freeing a mapped grant is deferred: the mapper still reads it, it still counts, and it is released at unmap', (t) => {
  const simDir = tempSimDir();
  simInit(simDir, { gntallocLimit: 4 });
  const guest = Grants.open({ platform: 'sim', simDir, domid: 1 });
  const dom0 = Grants.open({ platform: 'sim', simDir, domid: 0 });
  const a = guest.alloc(0, 4);
  new Uint8Array(a.buffer).fill(0x5c);
  const m = dom0.map(1, [a.grefs[2]]);
  guest.free(a);
  t.true(new Uint8Array(m.buffer).every((b) => b === 0x5c), 'the mapped page is intact');
  t.is(entry(simDir, 1, a.grefs[2]).flags & GTF_permit_access, GTF_permit_access);
  t.is(entry(simDir, 1, a.grefs[0]).flags, 0, 'unmapped pages were released at once');
  t.throws(() => guest.alloc(0, 4), { code: 'ENOSPC' }, 'the deferred page still counts against the limit');
  dom0.unmap(m);
  t.is(entry(simDir, 1, a.grefs[2]).flags, 0);
  const b = guest.alloc(0, 4);
  t.true(new Uint8Array(b.buffer).every((x) => x === 0), 'a reused frame comes back zeroed');
  guest.close();
  dom0.close();
});

test('a mapping is one contiguous range even when its grefs are in any order', (t) => {
  const simDir = tempSimDir();
  const guest = Grants.open({ platform: 'sim', simDir, domid: 1 });
  const dom0 = Grants.open({ platform: 'sim', simDir, domid: 0 });
  const a = guest.alloc(0, 6);
  const bytes = new Uint8Array(a.buffer);
  for (let i = 0; i < 6; i++) bytes.fill(i + 1, i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
  const order = [5, 4, 0, 1, 3, 3];
  const m = dom0.map(1, order.map((i) => a.grefs[i]), { writable: false });
  const seen = new Uint8Array(m.buffer);
  order.forEach((src, i) => {
    t.is(seen[i * PAGE_SIZE], src + 1, `page ${i}`);
    t.is(seen[(i + 1) * PAGE_SIZE - 1], src + 1, `end of page ${i}`);
  });
  dom0.unmap(m);
  t.is(entry(simDir, 1, a.grefs[3]).flags, GTF_permit_access, 'a ref mapped twice is unmapped twice');
  guest.close();
  dom0.close();
});

test('freeing an allocation clears its unmap-notify byte (UNMAP_NOTIFY_CLEAR_BYTE)', (t) => {
  const simDir = tempSimDir();
  const guest = Grants.open({ platform: 'sim', simDir, domid: 1 });
  const dom0 = Grants.open({ platform: 'sim', simDir, domid: 0 });
  const a = guest.alloc(0, 2);
  guest.setUnmapNotify(a, PAGE_SIZE + 5);
  new Uint8Array(a.buffer).fill(0xa5);
  const m = dom0.map(1, a.grefs);
  guest.free(a);
  const seen = new Uint8Array(m.buffer);
  t.is(seen[PAGE_SIZE + 5], 0);
  t.is(seen[PAGE_SIZE + 4], 0xa5);
  t.is(seen[5], 0xa5);
  t.throws(() => guest.setUnmapNotify(a, 0), { code: 'EINVAL' }, 'a freed allocation is unknown');
  const b = guest.alloc(0, 1);
  t.throws(() => guest.setUnmapNotify(b, PAGE_SIZE), { code: 'EINVAL', message: /outside the allocation/ });
  guest.close();
  dom0.close();
});

test('data written by one process through an allocation is read by another through a map, and back', async (t) => {
  const simDir = tempSimDir();
  const child = fixture<{ grefs: number[] }>('grant-alloc-hold', [0, 3, -1, 0x40], simDir, 7);
  const { grefs } = await child.report;
  t.true(fs.existsSync(path.join(simDir, 'dom7')), 'the child used XSW_SIM_DIR and XSW_SIM_DOMID');
  const dom0 = Grants.open({ platform: 'sim', simDir, domid: 0 });
  const m = dom0.map(7, grefs, { writable: false });
  const seen = new Uint8Array(m.buffer);
  t.is(seen[0], 0x40);
  t.is(seen[PAGE_SIZE + 100], 0x41);
  t.is(seen[3 * PAGE_SIZE - 1], 0x42);
  dom0.unmap(m);
  await endChild(child);

  const guest = Grants.open({ platform: 'sim', simDir, domid: 1 });
  const a = guest.alloc(0, 2);
  new Uint8Array(a.buffer)[0] = 0x11;
  const mapper = fixture<{ first: number; pages: number }>('grant-map-hold', [1, 0x99, a.grefs.join(',')], simDir, 0);
  t.deepEqual(await mapper.report, { first: 0x11, pages: 2 });
  t.true(new Uint8Array(a.buffer).every((b) => b === 0x99));
  await endChild(mapper);
  t.is(entry(simDir, 1, a.grefs[0]).flags, GTF_permit_access, 'the mapper released its mapping on close');
  guest.close();
  dom0.close();
});

test('a SIGKILLed allocator: the mapper sees its unmap-notify byte go to 0 within 1 s', async (t) => {
  const simDir = tempSimDir();
  const child = fixture<{ grefs: number[] }>('grant-alloc-hold', [0, 1, 0, 0x33], simDir, 3);
  const { grefs } = await child.report;
  const dom0 = Grants.open({ platform: 'sim', simDir, domid: 0 });
  const m = dom0.map(3, grefs, { writable: false });
  const flag = new Uint8Array(m.buffer);
  t.is(flag[0], 0xa5);
  child.proc.kill('SIGKILL');
  await child.proc.exited;
  const killedAt = Date.now();
  t.true(await waitFor(() => flag[0] === 0, 1000), 'byte cleared within 1 s');
  t.log(`cleared ${Date.now() - killedAt} ms after the kill`);
  t.is(flag[1], 0x33, 'the rest of the page stays readable while mapped');
  t.is(entry(simDir, 3, grefs[0]).flags & GTF_permit_access, GTF_permit_access, 'still mapped: release deferred');
  dom0.unmap(m);
  t.is(entry(simDir, 3, grefs[0]).flags, 0, 'released at the last unmap');
  t.is(fs.readdirSync(path.join(simDir, 'procs')).length, 1, 'only our own registration is left');
  dom0.close();
});

test('a SIGKILLed mapper: its mappings are released and a deferred free completes', async (t) => {
  const simDir = tempSimDir();
  const guest = Grants.open({ platform: 'sim', simDir, domid: 1 });
  const a = guest.alloc(0, 2);
  const mapper = fixture<{ first: number }>('grant-map-hold', [1, 0x21, a.grefs.join(',')], simDir, 0);
  await mapper.report;
  t.is(entry(simDir, 1, a.grefs[1]).flags, GTF_permit_access | GTF_reading | GTF_writing);
  guest.free(a);
  t.is(entry(simDir, 1, a.grefs[1]).flags & GTF_permit_access, GTF_permit_access, 'free deferred while mapped');
  mapper.proc.kill('SIGKILL');
  await mapper.proc.exited;
  t.true(await waitFor(() => entry(simDir, 1, a.grefs[0]).flags === 0 && entry(simDir, 1, a.grefs[1]).flags === 0, 1000));
  guest.close();
});

test('four processes of one domain allocating 1000 pages each concurrently get 4000 distinct grefs', async (t) => {
  const simDir = tempSimDir();
  simInit(simDir, { gntallocLimit: 4000 });
  const kids = [0, 1, 2, 3].map(() => fixture<{ grefs: number[] }>('grant-alloc-many', [0, 1000, 10], simDir, 4));
  const all = (await Promise.all(kids.map((k) => k.report))).flatMap((r) => r.grefs);
  t.is(all.length, 4000);
  t.is(new Set(all).size, 4000);
  t.true(all.every((g) => g >= 8));
  const table = fs.readFileSync(path.join(simDir, 'dom4', 'table'));
  let granted = 0;
  const frames = new Set<number>();
  for (let ref = 0; ref < table.length / 8; ref++) {
    if (table.readUInt16LE(ref * 8) & GTF_permit_access) {
      granted++;
      frames.add(table.readUInt32LE(ref * 8 + 4));
    }
  }
  t.is(granted, 4000, 'the table holds exactly the 4000 grants');
  t.is(frames.size, 4000, 'each grant has its own frame');
  const dom0 = Grants.open({ platform: 'sim', simDir, domid: 4 });
  t.throws(() => dom0.alloc(0, 1), { code: 'ENOSPC' }, 'the limit counts all four processes');
  dom0.close();
  await Promise.all(kids.map(endChild));
});

test('simDestroyDomain ends the grants, clears notify bytes, keeps mapped pages until unmapped, then removes the domain', async (t) => {
  const simDir = tempSimDir();
  const child = fixture<{ grefs: number[] }>('grant-alloc-hold', [0, 2, 0, 0x60], simDir, 9);
  const { grefs } = await child.report;
  const dom0 = Grants.open({ platform: 'sim', simDir, domid: 0 });
  const m = dom0.map(9, [grefs[0]], { writable: false });
  child.proc.kill('SIGKILL');
  await child.proc.exited;
  simDestroyDomain(simDir, 9);
  const seen = new Uint8Array(m.buffer);
  t.is(seen[0], 0, 'notify byte cleared');
  t.is(seen[1], 0x60, 'still readable while mapped');
  t.is(entry(simDir, 9, grefs[1]).flags, 0, 'the unmapped grant ended');
  t.throws(() => dom0.map(9, [grefs[0]]), { code: 'ESRCH' });
  dom0.unmap(m);
  t.false(fs.existsSync(path.join(simDir, 'dom9')), 'state removed once nothing references it');
  simDestroyDomain(simDir, 9);
  // A process of the domain still running when it is destroyed can only close.
  const late = Grants.open({ platform: 'sim', simDir, domid: 8 });
  const a = late.alloc(0, 1);
  simDestroyDomain(simDir, 8);
  t.false(fs.existsSync(path.join(simDir, 'dom8')));
  late.free(a);
  t.false(fs.existsSync(path.join(simDir, 'dom8')), 'closing does not bring the domain back');
  late.close();
  dom0.close();
});

test('close releases every allocation and mapping and detaches their buffers', (t) => {
  const simDir = tempSimDir();
  const guest = Grants.open({ platform: 'sim', simDir, domid: 1 });
  const dom0 = Grants.open({ platform: 'sim', simDir, domid: 0 });
  const a = guest.alloc(0, 2);
  const m = dom0.map(1, a.grefs);
  dom0.close();
  t.is(m.buffer.byteLength, 0);
  t.is(entry(simDir, 1, a.grefs[0]).flags, GTF_permit_access);
  guest.close();
  t.is(a.buffer.byteLength, 0);
  t.is(entry(simDir, 1, a.grefs[0]).flags, 0);
  t.throws(() => guest.alloc(0, 1), { message: /closed/ });
});

test('argument checks reject bad domids, page counts and grefs before native code', (t) => {
  const simDir = tempSimDir();
  const g = Grants.open({ platform: 'sim', simDir, domid: 1 });
  t.throws(() => g.alloc(-1, 1), { instanceOf: RangeError });
  t.throws(() => g.alloc(0x7ff0, 1), { instanceOf: RangeError });
  t.throws(() => g.alloc(0, 0), { instanceOf: RangeError });
  t.throws(() => g.map(0, []), { instanceOf: RangeError });
  t.throws(() => g.map(0, [1.5]), { instanceOf: RangeError });
  t.throws(() => g.free(12345), { code: 'EINVAL', message: /no grant allocation with id 12345/ });
  t.throws(() => Grants.open({ platform: 'sim', simDir, domid: 70000 }), { instanceOf: RangeError });
  g.close();
});

test('auto picks sim without /dev/xen, and the default sim dir follows XDG_RUNTIME_DIR', (t) => {
  const xen = fs.existsSync('/dev/xen/gntalloc') || fs.existsSync('/dev/xen/gntdev');
  t.is(detectPlatform(), xen ? 'xen' : 'sim');
  const script = `process.stdout.write(require(${JSON.stringify(path.join(__dirname, '..', 'native', 'grants.js'))}).defaultSimDir())`;
  const run = (env: NodeJS.ProcessEnv) => spawnSync(process.execPath, ['-e', script], { env }).stdout.toString();
  const { XDG_RUNTIME_DIR: _drop, ...noXdg } = process.env;
  t.is(run({ ...process.env, XDG_RUNTIME_DIR: '/tmp/xdg-test' }), '/tmp/xdg-test/xsw-sim');
  t.is(run(noXdg), process.getuid!() === 0 ? '/run/xsw-sim' : `/tmp/xsw-sim-${process.getuid!()}`);
  t.is(defaultSimDir(), run(process.env));
});

test('a buffer keeps its Grants alive through GC, and an unreachable Grants releases its grants', async (t) => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const simDir = tempSimDir();
  let keep: ArrayBuffer | undefined;
  let ref = 0;
  (() => {
    const a = Grants.open({ platform: 'sim', simDir, domid: 1 }).alloc(0, 1);
    keep = a.buffer;
    ref = a.grefs[0];
  })();
  for (let i = 0; i < 5; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  new Uint8Array(keep!)[4095] = 0x42;
  t.is(new Uint8Array(keep!)[4095], 0x42, 'the memory is still mapped');
  t.is(entry(simDir, 1, ref).flags, GTF_permit_access, 'the grant is still live');
  keep = undefined;
  const released = await (async () => {
    for (let i = 0; i < 100; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
      if (entry(simDir, 1, ref).flags === 0) return true;
    }
    return false;
  })();
  t.true(released, 'collected with its last buffer, the provider freed the grant');
});
