import test from 'ava';
import * as abi from '../native/abi';
import { addon } from '../native/binding';

const native = addon().abi.layout;

test('grant entry v1 layout matches the C++ header', (t) => {
  t.is(native.grantEntrySize, abi.GRANT_ENTRY.size);
  t.is(native.grantEntryFlags, abi.GRANT_ENTRY.flags);
  t.is(native.grantEntryDomid, abi.GRANT_ENTRY.domid);
  t.is(native.grantEntryFrame, abi.GRANT_ENTRY.frame);
  t.is(native.GTF_permit_access, abi.GTF_permit_access);
  t.is(native.GTF_readonly, abi.GTF_readonly);
  t.is(native.GTF_reading, abi.GTF_reading);
  t.is(native.GTF_writing, abi.GTF_writing);
  t.is(native.reservedRefs, abi.RESERVED_REFS);
});

test('gref-list item layout matches', (t) => {
  t.is(native.grefItemSize, abi.GREF_ITEM.size);
  t.is(native.grefItemPfn, abi.GREF_ITEM.pfn);
  t.is(native.grefItemsPerPage, abi.GREF_ITEMS_PER_PAGE);
  t.is(native.maxGrefListPages, abi.MAX_GREF_LIST_PAGES);
});

test('vring layout matches, for the default and other ring sizes', (t) => {
  t.is(native.descSize, abi.VRING_DESC.size);
  t.is(native.descLen, abi.VRING_DESC.len);
  t.is(native.descFlags, abi.VRING_DESC.flags);
  t.is(native.descNext, abi.VRING_DESC.next);
  t.is(native.availIdx, abi.VRING_AVAIL.idx);
  t.is(native.availRing, abi.VRING_AVAIL.ring);
  t.is(native.usedIdx, abi.VRING_USED.idx);
  t.is(native.usedRing, abi.VRING_USED.ring);
  t.is(native.usedElemSize, abi.VRING_USED.elemSize);
  t.is(native.vringAlign, abi.VRING_ALIGN);
  for (const num of [2, 64, 256, 1024, 4096, 32768]) {
    t.deepEqual(addon().abi.vringLayout(num), abi.vringLayout(num), `ring of ${num}`);
  }
  // DPDK's xenvirt: 256 entries -> avail at 4096, used at 8192, 10246 bytes, 3 pages.
  t.deepEqual(abi.vringLayout(256), { avail: 4096, used: 8192, size: 10246, pages: 3 });
});

test('virtio_net_hdr and the vring flag byte match', (t) => {
  t.is(native.virtioNetHdrLen, abi.VIRTIO_NET_HDR_LEN);
  t.is(native.vringFlagLive, abi.VRING_FLAG_LIVE);
});
