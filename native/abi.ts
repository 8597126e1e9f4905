// The TypeScript side's copy of native/abi/abi.h. test/abi.test.ts checks every
// value here against the compiled addon, so the two can never drift.
export const PAGE_SIZE = 4096;

export const GRANT_ENTRY = { size: 8, flags: 0, domid: 2, frame: 4 } as const;
export const GTF_permit_access = 1;
export const GTF_readonly = 1 << 2;
export const GTF_reading = 1 << 3;
export const GTF_writing = 1 << 4;
export const RESERVED_REFS = 8;

export const GREF_ITEM = { size: 8, gref: 0, pfn: 4 } as const;
export const GREF_ITEMS_PER_PAGE = PAGE_SIZE / GREF_ITEM.size;
export const MAX_GREF_LIST_PAGES = 64;

export const VRING_DESC = { size: 16, addr: 0, len: 8, flags: 12, next: 14 } as const;
export const VRING_DESC_F_NEXT = 1;
export const VRING_DESC_F_WRITE = 2;
export const VRING_AVAIL = { flags: 0, idx: 2, ring: 4 } as const;
export const VRING_USED = { flags: 0, idx: 2, ring: 4, elemSize: 8 } as const;
export const VRING_ALIGN = 4096;
export const DEFAULT_RING_SIZE = 256;

export const VIRTIO_NET_HDR_LEN = 10;
export const VRING_FLAG_LIVE = 0xa5;
export const VRING_FLAG_DEAD = 0;

const alignUp = (v: number, a: number): number => Math.ceil(v / a) * a;

/** Byte offsets of a legacy split ring of `num` entries (vring_init). */
export function vringLayout(num: number): { avail: number; used: number; size: number; pages: number } {
  const avail = num * VRING_DESC.size;
  const used = alignUp(avail + 4 + 2 * num + 2, VRING_ALIGN);
  const size = used + 4 + VRING_USED.elemSize * num + 2;
  return { avail, used, size, pages: alignUp(size, PAGE_SIZE) / PAGE_SIZE };
}
