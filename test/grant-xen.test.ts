// The real-Xen provider: its uapi numbers, recomputed here from the documented
// struct layouts with the _IOC formula, and its error without /dev/xen.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { addon } from '../native/binding';
import { Grants } from '../native/grants';

type Field = [name: string, bytes: 2 | 4 | 8];

// C struct layout on Linux x86-64/arm64: each field aligned to its size, the
// struct to its largest field. Flexible arrays are declared [1] in the uapi.
function layout(fields: Field[]): { size: number; offsets: Record<string, number> } {
  let off = 0;
  let align = 1;
  const offsets: Record<string, number> = {};
  for (const [name, bytes] of fields) {
    off = Math.ceil(off / bytes) * bytes;
    offsets[name] = off;
    off += bytes;
    align = Math.max(align, bytes);
  }
  return { size: Math.ceil(off / align) * align, offsets };
}

// _IOC(_IOC_NONE, 'G', nr, size): dir in bits 30-31 (NONE = 0), size in 16-29, type in 8-15, nr in 0-7.
const IOC = (nr: number, size: number): number => ((0 << 30) | (size << 16) | ('G'.charCodeAt(0) << 8) | nr) >>> 0;

const allocGref = layout([['domid', 2], ['flags', 2], ['count', 4], ['index', 8], ['gref_ids', 4]]);
const deallocGref = layout([['index', 8], ['count', 4]]);
const unmapNotify = layout([['index', 8], ['action', 4], ['event_channel_port', 4]]);
const grantRef = layout([['domid', 4], ['ref', 4]]);
// refs[1] is an array of 8-byte structs aligned to 4: place it by hand.
const mapGrantRef = (() => {
  const head = layout([['count', 4], ['pad', 4], ['index', 8]]);
  const offsets: Record<string, number> = { ...head.offsets, refs: head.size };
  return { size: head.size + grantRef.size, offsets };
})();
const unmapGrantRef = layout([['index', 8], ['count', 4], ['pad', 4]]);

test('gntalloc/gntdev ioctl numbers and struct sizes match the uapi header', (t) => {
  const u = addon().grant.xenUapi;
  t.is(u.sizeof_ioctl_gntalloc_alloc_gref, allocGref.size);
  t.is(u.offsetof_ioctl_gntalloc_alloc_gref_index, allocGref.offsets.index);
  t.is(u.offsetof_ioctl_gntalloc_alloc_gref_gref_ids, allocGref.offsets.gref_ids);
  t.is(u.sizeof_ioctl_gntalloc_dealloc_gref, deallocGref.size);
  t.is(u.sizeof_ioctl_gntalloc_unmap_notify, unmapNotify.size);
  t.is(u.sizeof_ioctl_gntdev_grant_ref, grantRef.size);
  t.is(u.sizeof_ioctl_gntdev_map_grant_ref, mapGrantRef.size);
  t.is(u.offsetof_ioctl_gntdev_map_grant_ref_index, mapGrantRef.offsets.index);
  t.is(u.offsetof_ioctl_gntdev_map_grant_ref_refs, mapGrantRef.offsets.refs);
  t.is(u.sizeof_ioctl_gntdev_unmap_grant_ref, unmapGrantRef.size);
  t.is(u.sizeof_ioctl_gntdev_unmap_notify, unmapNotify.size);

  t.is(u.IOCTL_GNTDEV_MAP_GRANT_REF, IOC(0, mapGrantRef.size));
  t.is(u.IOCTL_GNTDEV_UNMAP_GRANT_REF, IOC(1, unmapGrantRef.size));
  t.is(u.IOCTL_GNTALLOC_ALLOC_GREF, IOC(5, allocGref.size));
  t.is(u.IOCTL_GNTALLOC_DEALLOC_GREF, IOC(6, deallocGref.size));
  t.is(u.IOCTL_GNTALLOC_SET_UNMAP_NOTIFY, IOC(7, unmapNotify.size));
  t.is(u.IOCTL_GNTDEV_SET_UNMAP_NOTIFY, IOC(7, unmapNotify.size));
  // The values REFERENCE-dpdk-xen.md records from gcc on x86-64.
  t.is(u.IOCTL_GNTALLOC_ALLOC_GREF, 0x00184705);
  t.is(u.IOCTL_GNTDEV_MAP_GRANT_REF, 0x00184700);
  t.is(u.IOCTL_GNTDEV_UNMAP_GRANT_REF, 0x00104701);
  t.is(u.GNTALLOC_FLAG_WRITABLE, 1);
  t.is(u.UNMAP_NOTIFY_CLEAR_BYTE, 1);
});

test('grant-copy and event-channel ioctl numbers and struct layouts match the uapi headers', (t) => {
  const u = addon().grant.xenUapi;
  // gntdev_grant_copy_segment: source and dest are unions of a pointer and {u32 ref, u16 offset, u16 domid}.
  const segment = layout([['source', 8], ['dest', 8], ['len', 2], ['flags', 2], ['status', 2]]);
  t.is(u.sizeof_gntdev_grant_copy_segment, segment.size);
  t.is(u.offsetof_gntdev_grant_copy_segment_len, segment.offsets.len);
  t.is(u.offsetof_gntdev_grant_copy_segment_status, segment.offsets.status);
  const grantCopy = layout([['count', 4], ['segments', 8]]);
  t.is(u.sizeof_ioctl_gntdev_grant_copy, grantCopy.size);
  t.is(u.IOCTL_GNTDEV_GRANT_COPY, IOC(8, grantCopy.size));
  // Xen's public/grant_table.h: _GNTCOPY_source_gref (0), _GNTCOPY_dest_gref (1). The first
  // real netfront found these wrong (bits 3 and 4): every copy failed and the vif was quarantined.
  t.is(u.GNTCOPY_source_gref, 1);
  t.is(u.GNTCOPY_dest_gref, 2);
  const E = (nr: number, size: number): number => ((size << 16) | ('E'.charCodeAt(0) << 8) | nr) >>> 0;
  t.is(u.IOCTL_EVTCHN_BIND_INTERDOMAIN, E(1, 8)); // {remote_domain, remote_port}
  t.is(u.IOCTL_EVTCHN_BIND_UNBOUND_PORT, E(2, 4));
  t.is(u.IOCTL_EVTCHN_UNBIND, E(3, 4));
  t.is(u.IOCTL_EVTCHN_NOTIFY, E(4, 4));
});

test('event channels on platform xen without /dev/xen fail with one sentence naming the device and the module', (t) => {
  t.false(fs.existsSync('/dev/xen/evtchn'), 'this test needs a machine without Xen');
  t.throws(() => new (addon().netif.NativeEventChannels)({ platform: 'xen' }), {
    code: 'ENOENT',
    message: '/dev/xen/evtchn is missing: load the xen-evtchn module (modprobe xen-evtchn) in this Xen domain',
  });
});

test('platform xen without /dev/xen fails with one sentence naming the device and the module', (t) => {
  t.false(fs.existsSync('/dev/xen/gntalloc') || fs.existsSync('/dev/xen/gntdev'), 'this test needs a machine without Xen');
  const g = Grants.open({ platform: 'xen' });
  t.is(g.platform, 'xen');
  t.throws(() => g.alloc(0, 1), {
    code: 'ENOENT',
    message: '/dev/xen/gntalloc is missing: load the xen-gntalloc module (modprobe xen-gntalloc) in this Xen domain',
  });
  t.throws(() => g.map(1, [8]), {
    code: 'ENOENT',
    message: '/dev/xen/gntdev is missing: load the xen-gntdev module (modprobe xen-gntdev) in this Xen domain',
  });
  t.throws(() => g.alloc(0, 0), { instanceOf: RangeError });
  g.close();
});

test('XSW_PLATFORM=xen selects the xen provider', (t) => {
  const grants = path.join(__dirname, '..', 'native', 'grants.js');
  const script = `const { Grants } = require(${JSON.stringify(grants)});
const g = Grants.open();
try { g.alloc(0, 1) } catch (e) { process.stdout.write(g.platform + ' ' + e.code) }`;
  const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, XSW_PLATFORM: 'xen' } });
  t.is(r.stdout.toString(), 'xen ENOENT', r.stderr.toString());
  const bad = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, XSW_PLATFORM: 'kvm' } });
  t.regex(bad.stderr.toString(), /XSW_PLATFORM must be auto, xen or sim/);
});
