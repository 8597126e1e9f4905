// Mempool layout through N-API: no buffer straddles a page, the default is
// one buffer per page (DPDK's testpmd layout), impossible layouts are refused.
import test from 'ava';
import { PAGE_SIZE } from '../native/abi';
import { vringNative } from '../native/vring';

const native = vringNative();

test('the default 128 + 2048 byte buffer takes one page each', (t) => {
  const l = native.mempoolLayout(4096, undefined, true);
  t.truthy(l);
  t.like(l, { nbMbuf: 4096, bufSize: 2176, bufsPerPage: 1, pages: 4096, bytes: 4096 * PAGE_SIZE });
  t.is(l?.offsets?.[4095], 4095 * PAGE_SIZE);
});

for (const [size, perPage] of [
  [1024, 4],
  [1500, 2],
  [2000, 2],
  [100, 32],
  [4096, 1],
] as const) {
  test(`buffers of ${size} bytes pack ${perPage} per page without straddling or overlapping`, (t) => {
    const n = 1001;
    const l = native.mempoolLayout(n, size, true);
    if (!l || !l.offsets) return t.fail('no layout');
    t.is(l.bufsPerPage, perPage);
    t.is(l.pages, Math.ceil(n / perPage));
    for (let i = 0; i < n; i++) {
      const off = l.offsets[i];
      t.true((off % PAGE_SIZE) + size <= PAGE_SIZE, `buffer ${i} straddles a page`);
      if (i > 0) t.true(off >= l.offsets[i - 1] + size, `buffer ${i} overlaps ${i - 1}`);
      t.true(off + size <= l.bytes);
    }
  });
}

test('impossible layouts are refused', (t) => {
  t.is(native.mempoolLayout(0), null);
  t.is(native.mempoolLayout(10, 0), null);
  t.is(native.mempoolLayout(10, 4097), null);
  t.is(native.mempoolLayout(32769, 2176), null, 'more pages than one gref list can name');
  t.truthy(native.mempoolLayout(32768, 2176));
});
