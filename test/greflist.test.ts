// Gref-list pages through N-API: round trips at the sizes that matter and
// malformed lists rejected with a reason that names the entry.
import test from 'ava';
import { GREF_ITEMS_PER_PAGE, PAGE_SIZE } from '../native/abi';
import { vringNative } from '../native/vring';

const native = vringNative();

for (const n of [1, 511, 512, 513, 32768]) {
  test(`a gref list of ${n} pages round-trips`, (t) => {
    const grefs = Uint32Array.from({ length: n }, (_, i) => 8 + ((i * 7919) % 1_000_000));
    const pfns = Uint32Array.from({ length: n }, (_, i) => 0x40000 + i);
    const pages = native.encodeGrefList(grefs, pfns);
    t.is(pages.length, Math.max(1, Math.ceil(n / GREF_ITEMS_PER_PAGE)) * PAGE_SIZE);
    t.is(pages.length / PAGE_SIZE, native.grefListPages(n));
    t.is(pages.readUInt32LE((n - 1) * 8 + 4), pfns[n - 1], 'pfn stored beside its gref');
    if (n % GREF_ITEMS_PER_PAGE !== 0) t.is(pages.readUInt32LE(n * 8), 0, 'terminated when there is room');
    const d = native.decodeGrefList(pages, n);
    t.true(d.ok, d.reason ?? '');
    t.deepEqual(d.grefs, grefs);
  });
}

test('a list longer than the caller allows (no terminator within the bound) is rejected', (t) => {
  const grefs = Uint32Array.from({ length: 1024 }, (_, i) => 100 + i);
  const pages = native.encodeGrefList(grefs, null);
  const d = native.decodeGrefList(pages, 1000);
  t.false(d.ok);
  t.regex(d.reason ?? '', /more than 1000 entries/);
  t.true(native.decodeGrefList(pages, 1024).ok);
});

test('a reserved gref is rejected naming its entry', (t) => {
  const grefs = Uint32Array.from([20, 21, 22, 3, 24]);
  const d = native.decodeGrefList(native.encodeGrefList(grefs, null), 512);
  t.false(d.ok);
  t.regex(d.reason ?? '', /entry 3 is gref 3, which is reserved/);
  t.deepEqual([...d.grefs], [20, 21, 22]);
});

test('the list ends at the first gref <= 0 read as signed (0 or -1)', (t) => {
  for (const end of [0, 0xffffffff, 0x80000000]) {
    const pages = native.encodeGrefList(Uint32Array.from([10, 11, 12, 13]), null);
    pages.writeUInt32LE(end, 2 * 8);
    const d = native.decodeGrefList(pages, 512);
    t.true(d.ok);
    t.deepEqual([...d.grefs], [10, 11]);
  }
});

test('too many list pages and a list that does not fit are refused', (t) => {
  t.false(native.decodeGrefList(Buffer.alloc(65 * PAGE_SIZE), 1 << 30).ok);
  t.regex(native.decodeGrefList(Buffer.alloc(65 * PAGE_SIZE), 1 << 30).reason ?? '', /65 pages/);
  t.throws(() => native.encodeGrefList(new Uint32Array(513).fill(9), null, 1), { instanceOf: RangeError, message: /do not fit/ });
  t.throws(() => native.decodeGrefList(Buffer.alloc(100), 10), { instanceOf: RangeError, message: /multiple of 4096/ });
});
