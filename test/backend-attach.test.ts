// Attach, registry and discovery against in-memory fakes: strict key checks,
// batched maps, page caps, unmap order, quarantine, re-announcement.
import test from 'ava';
import pino from 'pino';
import { Writable } from 'node:stream';
import { mapDevice, readDevice, Refusal, ringSizeForPages } from '../backend/attach';
import { DeviceRegistry } from '../backend/devices';
import { Discovery, WATCH_TOKEN } from '../backend/discovery';
import { vringLayout } from '../native/abi';
import { deviceKeys, dpdkDir } from '../schema/dpdk';
import { FakeDataPlane, fakeDecode, FakeGrants, FakeStore, makeDevice, writeGrefList } from './fixtures/backend-fakes';

function setup(o: { maxPagesPerGuest?: number; maxDevicesPerGuest?: number; maxDevices?: number } = {}) {
  const grants = new FakeGrants();
  const store = new FakeStore();
  const dp = new FakeDataPlane();
  const registry = new DeviceRegistry({
    grants, decode: fakeDecode, dataPlane: dp, maxPagesPerGuest: o.maxPagesPerGuest ?? 65536, maxDevices: o.maxDevices ?? 64,
  });
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  const disc = new Discovery(store, registry, dp, log, { maxDevicesPerGuest: o.maxDevicesPerGuest ?? 32, pollMs: 1000 });
  const addDomain = (domid: number) => void store.write(`/local/domain/${domid}/name`, `vm${domid}`);
  const announce = async (domid: number, dev: number) => {
    const path = `${dpdkDir(domid)}/${deviceKeys(dev).start}`;
    await store.write(path, '1');
    disc.onWatch(path, WATCH_TOKEN);
    await disc.idle();
  };
  const msgs = () => lines.map((l) => l.msg);
  return { grants, store, dp, registry, disc, lines, msgs, addDomain, announce };
}

test('ring size is derived from the page count: 256 for 3 pages, else the largest fitting power of two', (t) => {
  t.is(ringSizeForPages(vringLayout(256).pages), 256);
  t.is(ringSizeForPages(2), null, 'sizes below 256 all take 2 pages: ambiguous, refused');
  t.is(ringSizeForPages(vringLayout(1024).pages), 1024);
  t.is(ringSizeForPages(vringLayout(32768).pages), 32768);
  t.is(ringSizeForPages(1), null);
  t.is(ringSizeForPages(4), null);
});

test('a published device attaches: rings, flag and mempool mapped, spec handed to the data plane, guide line logged', async (t) => {
  const s = setup();
  s.addDomain(1);
  await s.disc.start();
  t.deepEqual(s.store.perms.get('/local/domain/1/control/dpdk'), ['n0', 'b1']);
  t.deepEqual(s.store.watches, ['/local/domain', '@introduceDomain', '@releaseDomain']);
  const g = makeDevice(s.grants, 1, 0, '00:00:00:00:00:11', { va: '0x7f0000000000', poolPages: 4 });
  s.store.publish(1, g.keys);
  await s.announce(1, 0);
  const spec = s.dp.specs.get(0)!;
  t.truthy(spec);
  t.is(spec.mac, '00:00:00:00:00:11');
  t.is(spec.vlan, 1000);
  t.is(spec.rx.num, 256);
  t.is(spec.tx.num, 256);
  t.deepEqual(spec.regions.map((r) => [r.gva, r.len, r.writable]), [[0x7f0000000000n, 4 * 4096, true]]);
  // rx 3 + tx 3 + flag 1 + pool 4 pages stay mapped; the list pages were unmapped.
  t.is(s.grants.livePages(), 11);
  t.is(s.registry.pagesOf(1), 11);
  t.true(s.msgs().some((m) => m.includes('MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered')));
  await s.disc.stop();
  t.is(s.grants.livePages(), 0);
});

test('a second device gets VLAN 1001 and shares the guest mempool; it is unmapped with the last device', async (t) => {
  const s = setup();
  s.addDomain(1);
  await s.disc.start();
  const a = makeDevice(s.grants, 1, 0, '00:00:00:00:00:11');
  s.store.publish(1, a.keys);
  await s.announce(1, 0);
  const b = makeDevice(s.grants, 1, 1, '00:00:00:00:00:12');
  delete b.keys['0_mempool_gref'];
  delete b.keys['0_mempool_va'];
  s.store.publish(1, b.keys);
  await s.announce(1, 1);
  t.is(s.dp.specs.get(1)!.vlan, 1001);
  t.is(s.registry.pagesOf(1), 11 + 7);
  // Device 0 dies: its rings and flag go, the shared pool stays for device 1.
  s.grants.page(1, a.flagRef)[0] = 0;
  s.disc.poll();
  t.deepEqual(s.dp.removed, [0]);
  t.is(s.grants.livePages(), 11);
  s.grants.page(1, Number(b.keys['1_vring_flag']))[0] = 0;
  s.disc.poll();
  t.is(s.grants.livePages(), 0);
  t.true(s.msgs().some((m) => m === 'detached domain 1 device 1: its vring flag was cleared'));
});

test('mempools added after the first device are mapped for later devices (DPDK scanned once per guest)', async (t) => {
  const s = setup();
  s.addDomain(1);
  await s.disc.start();
  s.store.publish(1, makeDevice(s.grants, 1, 0, '00:00:00:00:00:11', { va: '0x100000' }).keys);
  await s.announce(1, 0);
  s.store.publish(1, makeDevice(s.grants, 1, 1, '00:00:00:00:00:12', { va: '0x900000', pool: 1 }).keys);
  await s.announce(1, 1);
  t.deepEqual(s.dp.specs.get(1)!.regions.map((r) => r.gva), [0x100000n, 0x900000n]);
});

test('the data plane lets go before any page is unmapped', async (t) => {
  const s = setup();
  s.addDomain(1);
  await s.disc.start();
  s.store.publish(1, makeDevice(s.grants, 1, 0, '00:00:00:00:00:11').keys);
  await s.announce(1, 0);
  let liveAtRemove = -1;
  s.dp.onRemove = () => (liveAtRemove = s.grants.livePages());
  await s.disc.stop();
  t.is(liveAtRemove, 11);
  t.is(s.grants.livePages(), 0);
});

const garbage: [string, string, RegExp][] = [
  ['0_rx_vring_gref', 'x', /refused domain 1 device 0: 0_rx_vring_gref "x" is not a comma-separated list/],
  ['0_tx_vring_gref', '8,,9', /0_tx_vring_gref "8,,9" is not a comma-separated list/],
  ['0_ether_addr', 'ff:ff:ff:ff:ff:ff', /0_ether_addr "ff:ff:ff:ff:ff:ff" is a multicast MAC address/],
  ['0_vring_flag', '3', /0_vring_flag "3" is a reserved grant reference/],
  ['0_mempool_gref', '1e3', /0_mempool_gref "1e3" is not a comma-separated list/],
  ['0_mempool_va', 'zz', /refused domain 1 device 0: 0_mempool_va "zz" is not a hex address/],
];
for (const [key, value, why] of garbage) {
  test(`garbage in ${key} refuses the device with one log line and maps nothing`, async (t) => {
    const s = setup();
    s.addDomain(1);
    await s.disc.start();
    const g = makeDevice(s.grants, 1, 0, '00:00:00:00:00:11');
    s.store.publish(1, { ...g.keys, [key]: value });
    await s.announce(1, 0);
    await s.announce(1, 0);
    t.is(s.dp.specs.size, 0);
    t.is(s.grants.livePages(), 0);
    const refusals = s.lines.filter((l) => l.level === 40 && why.test(l.msg));
    t.is(refusals.length, 1, 'a repeated announcement logs once');
    t.is(s.registry.refused.bad_key, 2);
    t.false(JSON.stringify(s.lines).includes(`"${value}":`), 'a guest value never becomes a log key');
  });
}

test('a missing key or no mempool refuses the device', async (t) => {
  const s = setup();
  s.addDomain(1);
  await s.disc.start();
  const g = makeDevice(s.grants, 1, 0, '00:00:00:00:00:11');
  const { ['0_ether_addr']: _mac, ...noMac } = g.keys;
  s.store.publish(1, noMac);
  await s.announce(1, 0);
  t.true(s.msgs().some((m) => /0_ether_addr is missing/.test(m)));
  const h = makeDevice(s.grants, 2, 0, '00:00:00:00:00:12');
  const { ['0_mempool_gref']: _g, ['0_mempool_va']: _v, ...noPool } = h.keys;
  s.addDomain(2);
  s.store.publish(2, noPool);
  await s.announce(2, 0);
  t.true(s.msgs().some((m) => /refused domain 2 device 0: 0_mempool_gref is missing/.test(m)));
  t.deepEqual(s.registry.refused, { missing_key: 1, no_mempool: 1 });
});

test('a gref list naming an ungranted ref is refused as map_failed and nothing stays mapped', async (t) => {
  const s = setup();
  s.addDomain(1);
  await s.disc.start();
  const g = makeDevice(s.grants, 1, 0, '00:00:00:00:00:11');
  // The pool's list page names a ref the guest never granted.
  const [list] = s.grants.grant(1, 1);
  writeGrefList(s.grants, 1, [list], [...g.poolRefs, 999]);
  s.store.publish(1, { ...g.keys, '0_mempool_gref': String(list) });
  await s.announce(1, 0);
  t.is(s.dp.specs.size, 0);
  t.is(s.grants.livePages(), 0);
  t.true(s.msgs().some((m) => /refused domain 1 device 0: 0_mempool_gref names pages domain 1 has not granted to dom0 writable \(EACCES\)/.test(m)));
  t.is(s.registry.refused.map_failed, 1);
});

test('a ring whose page count fits no ring size, and a dead flag, are refused', async (t) => {
  const s = setup();
  s.addDomain(1);
  s.addDomain(2);
  await s.disc.start();
  s.store.publish(1, makeDevice(s.grants, 1, 0, '00:00:00:00:00:11', { ringPages: 4 }).keys);
  await s.announce(1, 0);
  t.true(s.msgs().some((m) => /0_rx_vring_gref lists 4 ring pages, which fits no power-of-two ring size/.test(m)));
  const g = makeDevice(s.grants, 2, 0, '00:00:00:00:00:12');
  s.grants.page(2, g.flagRef)[0] = 0;
  s.store.publish(2, g.keys);
  await s.announce(2, 0);
  t.true(s.msgs().some((m) => /refused domain 2 device 0: 0_vring_flag page does not hold the live mark 0xA5/.test(m)));
  t.is(s.grants.livePages(), 0);
});

test('a MAC already registered by another guest is refused; the first device keeps working', async (t) => {
  const s = setup();
  s.addDomain(1);
  s.addDomain(2);
  await s.disc.start();
  s.store.publish(1, makeDevice(s.grants, 1, 0, '00:00:00:00:00:11').keys);
  await s.announce(1, 0);
  s.store.publish(2, makeDevice(s.grants, 2, 0, '00:00:00:00:00:11').keys);
  await s.announce(2, 0);
  t.is(s.dp.specs.size, 1);
  t.is(s.dp.specs.get(0)!.domid, 1);
  t.true(s.msgs().some((m) => m.startsWith('refused domain 2 device 0: 0_ether_addr 00:00:00:00:00:11 is already registered by domain 1 device 0')));
  t.is(s.registry.refused.mac_taken, 1);
  t.is(s.registry.pagesOf(2), 0);
});

test('per-guest caps: a device index over the cap and a guest over its page cap are refused', async (t) => {
  const s = setup({ maxDevicesPerGuest: 2, maxPagesPerGuest: 12 });
  s.addDomain(1);
  await s.disc.start();
  await s.announce(1, 2);
  t.true(s.msgs().some((m) => /refused domain 1 device 2: event_type_start_2 is over the limit of 2 devices per guest/.test(m)));
  s.store.publish(1, makeDevice(s.grants, 1, 0, '00:00:00:00:00:11', { poolPages: 6 }).keys);
  await s.announce(1, 0);
  t.true(s.msgs().some((m) => /0_mempool_gref needs 6 more pages, over the limit of 12 mapped pages per guest \(raise --max-pages-per-guest\)/.test(m)));
  t.is(s.grants.livePages(), 0);
  t.deepEqual(s.registry.refused, { device_cap: 1, page_cap: 1 });
});

test('overlapping mempool VAs are refused', async (t) => {
  const s = setup();
  s.addDomain(1);
  await s.disc.start();
  const a = makeDevice(s.grants, 1, 0, '00:00:00:00:00:11', { va: '0x100000', poolPages: 4 });
  const b = makeDevice(s.grants, 1, 1, '00:00:00:00:00:12', { va: '0x102000', pool: 1 });
  s.store.publish(1, { ...a.keys, '1_mempool_gref': b.keys['1_mempool_gref'], '1_mempool_va': b.keys['1_mempool_va'] });
  await s.announce(1, 0);
  t.true(s.msgs().some((m) => /0_mempool_va and 1_mempool_va describe overlapping guest addresses/.test(m)));
  t.is(s.grants.livePages(), 0);
});

test('a quarantine event detaches only that device, logs once and keeps its counters in stats', async (t) => {
  const s = setup();
  s.addDomain(1);
  s.addDomain(2);
  await s.disc.start();
  s.store.publish(1, makeDevice(s.grants, 1, 0, '00:00:00:00:00:11').keys);
  await s.announce(1, 0);
  s.store.publish(2, makeDevice(s.grants, 2, 0, '00:00:00:00:00:22').keys);
  await s.announce(2, 0);
  s.dp.pending.push({ slot: 1, domid: 2, dev: 0, kind: 'quarantine', reason: 'avail_idx_jump' });
  s.disc.poll();
  s.disc.poll();
  t.is(s.lines.filter((l) => l.msg.startsWith('quarantined domain 2 device 0: avail_idx_jump (strike 1: ')).length, 1);
  t.deepEqual([...s.dp.specs.keys()], [0]);
  t.is(s.registry.pagesOf(2), 0);
  t.is(s.registry.pagesOf(1), 11);
  const snap = s.registry.snapshot();
  t.deepEqual(snap.devices.map((d) => [d.domid, d.state, d.vlan]), [[1, 'active', 1000], [2, 'quarantined', 1001]]);
  t.is(snap.devices[1].tx_total, 11);
  t.is(snap.quarantined, 1);
});

test('a re-announced device is detached and attached again; a repeated identical event is ignored', async (t) => {
  const s = setup();
  s.addDomain(1);
  await s.disc.start();
  s.store.publish(1, makeDevice(s.grants, 1, 0, '00:00:00:00:00:11').keys);
  await s.announce(1, 0);
  await s.announce(1, 0);
  t.deepEqual(s.dp.removed, []);
  // The guest restarted: new grants, same device index.
  s.store.publish(1, makeDevice(s.grants, 1, 0, '00:00:00:00:00:11').keys);
  await s.announce(1, 0);
  t.deepEqual(s.dp.removed, [0]);
  t.is(s.dp.specs.size, 1);
  t.is(s.grants.livePages(), 11);
  // start set to 0: detached.
  await s.store.write('/local/domain/1/control/dpdk/event_type_start_0', '0');
  s.disc.onWatch('/local/domain/1/control/dpdk/event_type_start_0', WATCH_TOKEN);
  await s.disc.idle();
  t.is(s.dp.specs.size, 0);
  t.is(s.grants.livePages(), 0);
});

test('at start, devices already announced are attached; new domains are provisioned on @introduceDomain', async (t) => {
  const s = setup();
  s.addDomain(3);
  s.store.publish(3, makeDevice(s.grants, 3, 0, '00:00:00:00:00:33').keys);
  await s.store.write('/local/domain/3/control/dpdk/event_type_start_0', '1');
  await s.disc.start();
  t.is(s.dp.specs.get(0)!.domid, 3);
  s.addDomain(4);
  s.disc.onWatch('@introduceDomain', WATCH_TOKEN);
  await s.disc.idle();
  t.deepEqual(s.store.perms.get('/local/domain/4/control/dpdk'), ['n0', 'b4']);
  s.disc.onWatch('@introduceDomain', 'other-token');
  await s.disc.idle();
});

test('@releaseDomain detaches the devices of a vanished domain', async (t) => {
  const s = setup();
  s.addDomain(1);
  s.addDomain(2);
  await s.disc.start();
  s.store.publish(1, makeDevice(s.grants, 1, 0, '00:00:00:00:00:11').keys);
  await s.announce(1, 0);
  s.store.publish(2, makeDevice(s.grants, 2, 0, '00:00:00:00:00:22').keys);
  await s.announce(2, 0);
  s.store.rm('/local/domain/2');
  s.disc.onWatch('@releaseDomain', WATCH_TOKEN);
  await s.disc.idle();
  t.deepEqual([...s.dp.specs.values()].map((x) => x.domid), [1]);
  t.is(s.registry.pagesOf(2), 0);
  t.true(s.msgs().includes('detached domain 2 device 0: the domain was released'));
});

test('readDevice and mapDevice can be used alone; Refusal carries a code', async (t) => {
  const grants = new FakeGrants();
  const store = new FakeStore();
  const g = makeDevice(grants, 5, 0, '02:00:00:00:00:05', { poolPages: 2 });
  store.publish(5, g.keys);
  const p = await readDevice(store, 5, 0);
  t.is(p.mac, '02:00:00:00:00:05');
  t.is(p.pools.length, 1);
  const before = grants.mapCalls;
  const m = mapDevice({ grants, decode: fakeDecode, maxPagesPerGuest: 100 }, { pools: new Map(), pages: 0 }, p);
  // 3 list pages (rx, tx, pool) + 3 data maps + flag: one map call each, never one per page.
  t.is(grants.mapCalls - before, 7);
  t.is(m.pages, 3 + 3 + 1 + 2);
  const err = t.throws(() => mapDevice({ grants, decode: fakeDecode, maxPagesPerGuest: 5 }, { pools: new Map(), pages: 0 }, p), { instanceOf: Refusal });
  t.is(err!.code, 'page_cap');
});

test('a failed read of /local/domain (XenStore gone) detaches nobody', async (t) => {
  const s = setup();
  s.addDomain(1);
  await s.disc.start();
  s.store.publish(1, makeDevice(s.grants, 1, 0, '00:00:00:00:00:11').keys);
  await s.announce(1, 0);
  s.store.directory = async () => {
    throw Object.assign(new Error('the connection to xenstored closed'), { code: 'ECONNRESET' });
  };
  s.disc.offline();
  s.disc.onWatch('@releaseDomain', WATCH_TOKEN);
  await s.disc.idle();
  t.is(s.dp.specs.size, 1, 'the device stays attached');
  t.false(s.lines.some((l) => l.level >= 50), 'a failure while offline is not an error');
});

test('reattach to a new XenStore: watches again, detaches vanished guests and stale devices, attaches new ones', async (t) => {
  const s = setup();
  for (const d of [1, 2, 3]) s.addDomain(d);
  await s.disc.start();
  for (const [d, mac] of [[1, '00:00:00:00:00:11'], [2, '00:00:00:00:00:22'], [3, '00:00:00:00:00:33']] as const) {
    s.store.publish(d, makeDevice(s.grants, d, 0, mac).keys);
    await s.announce(d, 0);
  }
  t.is(s.dp.specs.size, 3);
  s.disc.offline();
  // While away: domain 2 went, domain 3 stopped its device, domain 4 arrived and announced one.
  const next = new FakeStore();
  for (const [k, v] of s.store.nodes) next.nodes.set(k, v);
  next.rm('/local/domain/2');
  next.rm('/local/domain/3/control/dpdk/event_type_start_0');
  void next.write('/local/domain/4/name', 'vm4');
  next.publish(4, makeDevice(s.grants, 4, 0, '00:00:00:00:00:44').keys);
  await next.write('/local/domain/4/control/dpdk/event_type_start_0', '1');
  await s.disc.reattach(next);
  t.deepEqual(next.watches, ['/local/domain', '@introduceDomain', '@releaseDomain']);
  t.deepEqual([...s.dp.specs.values()].map((x) => x.domid).sort(), [1, 4]);
  t.true(s.msgs().includes('detached domain 2 device 0: the domain was released'));
  t.true(s.msgs().includes('detached domain 3 device 0: event_type_start_0 is no longer 1'));
  t.deepEqual(next.perms.get('/local/domain/1/control/dpdk'), ['n0', 'b1'], 'provisioned again');
  // xenstored's collapsed event (the watch's own path) reconciles too, and a burst of them merges.
  next.rm('/local/domain/4');
  for (let i = 0; i < 5; i++) s.disc.onWatch('/local/domain', WATCH_TOKEN);
  const reads = next.reads;
  await s.disc.idle();
  t.deepEqual([...s.dp.specs.values()].map((x) => x.domid), [1]);
  t.true(next.reads - reads < 20, `one reconcile, not five (${next.reads - reads} reads)`);
});
