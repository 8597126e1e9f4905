// The switch through its TypeScript API, with fake guests whose rings live in
// real shared memory: vm2vm delivery, broadcast, jumbo chains, the hostile
// matrix, flag death, restart from the rings' indexes, removal under traffic,
// and the errors the control plane sees.
import test from 'ava';
import { dropReasons, Switch } from '../native/switch';
import { VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from '../native/abi';
import { BUF_SIZE, FakeGuest, isDelivery, makeFrame } from './fixtures/switch-guest';

const A = '02:00:00:00:00:11';
const B = '02:00:00:00:00:22';
const C = '02:00:00:00:00:33';
const BROADCAST = 'ff:ff:ff:ff:ff:ff';
const VRING_DESC_F_INDIRECT = 4; // abi.h; native/abi.ts does not export it (never negotiated)

function poll(sw: Switch, n = 3): void {
  for (let i = 0; i < n; i++) sw.pollOnce();
}

function dev(sw: Switch, slot: number) {
  const d = sw.stats().devices.find((x) => x.slot === slot);
  if (!d) throw new Error(`no stats for slot ${slot}`);
  return d;
}

test('vm2vm unicast arrives intact, once, with a zeroed virtio header', (t) => {
  const sw = new Switch({ vm2vm: true, poll: 'adaptive' });
  const a = new FakeGuest(A, 0x1000_0000n);
  const b = new FakeGuest(B, 0x2000_0000n);
  const sa = sw.addDevice(a.spec(1, 0));
  const sb = sw.addDevice(b.spec(2, 0));
  b.postRx(8);
  const sent = [60, 200, 1514].map((len, i) => makeFrame(B, A, len, i));
  for (const f of sent) t.true(a.send(f));
  poll(sw);
  const got = b.harvest();
  t.is(got.length, 3);
  got.forEach((r, i) => t.true(isDelivery(r, sent[i]), `frame ${i}`));
  t.is(a.tx.usedIdx, 3);
  t.is(a.tx.used(0).len, 0);
  const sta = dev(sw, sa);
  const stb = dev(sw, sb);
  t.like(sta, { state: 'active', mac: A, tx_total: 3, tx_dropped: 0, tx_bytes: 60 + 200 + 1514 });
  t.like(stb, { rx_total: 3, rx_dropped: 0, rx_bytes: 60 + 200 + 1514 });
  t.deepEqual(stb.drops, {});
  sw.close();
});

test('a broadcast reaches every other device and not its sender', (t) => {
  const sw = new Switch({ vm2vm: true, poll: 'adaptive' });
  const guests = [A, B, C].map((mac, i) => new FakeGuest(mac, BigInt((i + 1) * 0x1000_0000)));
  guests.forEach((g, i) => {
    sw.addDevice(g.spec(i + 1, 0));
    g.postRx(4);
  });
  const f = makeFrame(BROADCAST, A, 100, 3, 0x0806);
  t.true(guests[0].send(f));
  poll(sw);
  t.deepEqual(guests[0].harvest(), []);
  for (const g of guests.slice(1)) {
    const got = g.harvest();
    t.is(got.length, 1);
    t.true(isDelivery(got[0], f));
  }
  sw.close();
});

test('a 9000-byte jumbo frame crosses vm2vm intact through chained descriptors', (t) => {
  const sw = new Switch({ vm2vm: true, poll: 'adaptive', mtu: 9000 });
  const a = new FakeGuest(A, 0x1000_0000n);
  const b = new FakeGuest(B, 0x2000_0000n);
  sw.addDevice(a.spec(1, 0));
  const sb = sw.addDevice(b.spec(2, 0));
  b.postRx(1, 5); // one chain of 5 x 2 KiB
  const f = makeFrame(B, A, 9014, 42);
  t.true(a.send(f, BUF_SIZE)); // 9024 bytes in 5 descriptors
  poll(sw);
  const got = b.harvest();
  t.is(got.length, 1);
  t.true(isDelivery(got[0], f));
  t.is(dev(sw, sb).rx_bytes, 9014);
  sw.close();
});

// ---------------------------------------------------------------------------
// The hostile matrix: A misbehaves while C sends 20 frames to B.

interface Row {
  name: string;
  act: (a: FakeGuest) => void;
  counter: string;
  quarantine: boolean;
  ring?: number;
  poolWritable?: boolean;
  needsTrafficToA?: boolean;
}

const rows: Row[] = [
  { name: 'gva outside every region', act: (a) => rawTx(a, 0x5000_0000n, 100, 0, 0), counter: 'addr_outside_region', quarantine: true },
  {
    name: 'length past the region end',
    act: (a) => rawTx(a, a.gva + BigInt(a.pool.buffer.byteLength - 50), 100, 0, 0),
    counter: 'addr_outside_region',
    quarantine: true,
  },
  { name: 'length over the MTU', act: (a) => void a.send(makeFrame(B, A, 1515, 1)), counter: 'mtu_exceeded', quarantine: false },
  { name: 'descriptor index >= ring size', act: (a) => a.tx.postAvail(16 + 3), counter: 'desc_index', quarantine: true },
  {
    name: 'NEXT loop',
    act: (a) => {
      a.tx.writeDesc(0, a.txGva(0), 100, VRING_DESC_F_NEXT, 1);
      a.tx.writeDesc(1, a.txGva(1), 100, VRING_DESC_F_NEXT, 0);
      a.tx.postAvail(0);
    },
    counter: 'chain_loop',
    quarantine: true,
  },
  {
    name: 'chain longer than the ring',
    act: (a) => {
      for (let i = 0; i < 16; i++) a.tx.writeDesc(i, a.txGva(i), 64, VRING_DESC_F_NEXT, (i + 1) % 16);
      a.tx.postAvail(0);
    },
    counter: 'chain_loop',
    quarantine: true,
  },
  {
    name: 'avail idx jumped past the ring size',
    act: (a) => {
      a.tx.availIdx = 17;
    },
    counter: 'avail_idx_jump',
    quarantine: true,
  },
  { name: 'writable descriptor on the TX ring', act: (a) => rawTx(a, a.txGva(0), 100, VRING_DESC_F_WRITE, 0), counter: 'read_from_writeonly', quarantine: true },
  { name: 'indirect descriptor', act: (a) => rawTx(a, a.txGva(0), 100, VRING_DESC_F_INDIRECT, 0), counter: 'indirect_desc', quarantine: true },
  {
    name: 'RX descriptor without WRITE',
    act: (a) => a.postRx(1, 1, BUF_SIZE, 0),
    counter: 'write_to_readonly',
    quarantine: true,
    needsTrafficToA: true,
  },
  {
    name: 'RX buffer in a read-only region',
    act: (a) => a.postRx(1),
    counter: 'write_to_readonly',
    quarantine: true,
    poolWritable: false,
    needsTrafficToA: true,
  },
  { name: 'spoofed source MAC', act: (a) => void a.send(makeFrame(B, C, 64, 1)), counter: 'spoofed_src_mac', quarantine: false },
  { name: 'runt frame', act: (a) => void a.send(Buffer.alloc(8, 0xab)), counter: 'runt', quarantine: false },
  { name: 'unicast to itself', act: (a) => void a.send(makeFrame(A, A, 64, 1)), counter: 'same_device', quarantine: false },
];

function rawTx(a: FakeGuest, addr: bigint, len: number, flags: number, next: number): void {
  a.tx.writeDesc(0, addr, len, flags, next);
  a.tx.postAvail(0);
}

for (const row of rows) {
  test(`hostile: ${row.name} -> ${row.quarantine ? 'quarantine' : 'drop'} counted as ${row.counter}, others unharmed`, (t) => {
    const sw = new Switch({ vm2vm: true, poll: 'adaptive' });
    const a = new FakeGuest(A, 0x1000_0000n, row.ring ?? 16);
    const b = new FakeGuest(B, 0x2000_0000n);
    const c = new FakeGuest(C, 0x3000_0000n);
    const sa = sw.addDevice(a.spec(1, 0, row.poolWritable ?? true));
    const sb = sw.addDevice(b.spec(2, 0));
    const sc = sw.addDevice(c.spec(3, 0));
    b.postRx(40);
    const sent: Buffer[] = [];
    const sendCtoB = (n: number) => {
      for (let i = 0; i < n; i++) {
        const f = makeFrame(B, C, 64 + sent.length, sent.length);
        sent.push(f);
        t.true(c.send(f));
      }
    };
    sendCtoB(10);
    row.act(a);
    if (row.needsTrafficToA) t.true(c.send(makeFrame(A, C, 64, 99)));
    poll(sw);
    sendCtoB(10);
    poll(sw);

    const got = b.harvest();
    t.is(got.length, 20, 'zero loss between C and B');
    got.forEach((r, i) => t.true(isDelivery(r, sent[i])));
    const sta = dev(sw, sa);
    t.is(sta.drops[row.counter], 1);
    t.is(dev(sw, sb).rx_dropped, 0);
    const events = sw.events();
    if (row.quarantine) {
      t.is(sta.state, 'quarantined');
      t.deepEqual(events, [{ slot: sa, domid: 1, dev: 0, kind: 'quarantine', reason: row.counter }]);
      t.deepEqual(sw.events(), [], 'reported once');
      // A is not touched any more: traffic to it is dropped at its source.
      t.true(c.send(makeFrame(A, C, 64, 100)));
      poll(sw);
      t.true((dev(sw, sc).drops.dst_down ?? 0) >= 1);
    } else {
      t.is(sta.state, 'active');
      t.is(sta.tx_dropped, 1);
      t.deepEqual(events, []);
    }
    sw.removeDevice(sa);
    t.is(dev(sw, sa).state, 'removed');
    sw.close();
  });
}

test('no RX buffer at the destination: dropped and counted on the receiver', (t) => {
  const sw = new Switch({ vm2vm: true, poll: 'adaptive' });
  const a = new FakeGuest(A, 0x1000_0000n);
  const b = new FakeGuest(B, 0x2000_0000n);
  const sa = sw.addDevice(a.spec(1, 0));
  const sb = sw.addDevice(b.spec(2, 0));
  t.true(a.send(makeFrame(B, A, 64, 1)));
  poll(sw);
  t.like(dev(sw, sb), { rx_total: 1, rx_dropped: 1, drops: { rx_no_buffer: 1 } });
  t.like(dev(sw, sa), { tx_total: 1, tx_dropped: 1 });
  // An RX chain too small for the frame comes back empty and is counted.
  b.postRx(1, 1, 64);
  t.true(a.send(makeFrame(B, A, 500, 2)));
  poll(sw);
  const got = b.harvest();
  t.is(got.length, 1);
  t.is(got[0].len, 0);
  t.is(dev(sw, sb).drops.rx_too_big, 1);
  t.is(dev(sw, sb).state, 'active');
  sw.close();
});

test('a cleared flag byte marks the device dead, reported once, and its ring is no longer read', (t) => {
  const sw = new Switch({ vm2vm: true, poll: 'adaptive' });
  const a = new FakeGuest(A, 0x1000_0000n);
  const b = new FakeGuest(B, 0x2000_0000n);
  const sa = sw.addDevice(a.spec(7, 1));
  sw.addDevice(b.spec(8, 0));
  b.postRx(2);
  a.setFlag(0);
  t.true(a.send(makeFrame(B, A, 64, 1)));
  poll(sw);
  t.deepEqual(b.harvest(), []);
  t.is(dev(sw, sa).state, 'dead');
  t.deepEqual(sw.events(), [{ slot: sa, domid: 7, dev: 1, kind: 'dead', reason: 'vring_flag_cleared' }]);
  t.deepEqual(sw.events(), []);
  sw.close();
});

test('a new Switch given rings that already have indexes resumes from them', (t) => {
  const a = new FakeGuest(A, 0x1000_0000n);
  const b = new FakeGuest(B, 0x2000_0000n);
  b.postRx(10);
  const sent: Buffer[] = [];
  const first = new Switch({ vm2vm: true, poll: 'adaptive' });
  first.addDevice(a.spec(1, 0));
  first.addDevice(b.spec(2, 0));
  for (let i = 0; i < 3; i++) {
    sent.push(makeFrame(B, A, 64, i));
    t.true(a.send(sent[i]));
  }
  poll(first);
  first.close();
  for (let i = 3; i < 5; i++) {
    sent.push(makeFrame(B, A, 64, i));
    t.true(a.send(sent[i]));
  }
  const second = new Switch({ vm2vm: true, poll: 'adaptive' });
  const sa = second.addDevice(a.spec(1, 0));
  second.addDevice(b.spec(2, 0));
  poll(second);
  const got = b.harvest();
  t.is(got.length, 5, 'nothing lost, nothing twice');
  got.forEach((r, i) => t.true(isDelivery(r, sent[i])));
  t.is(a.tx.usedIdx, 5);
  t.is(dev(second, sa).tx_total, 2);
  second.close();
});

test('removing a device while the data thread switches traffic to it, then unmapping it, is safe', async (t) => {
  const sw = new Switch({ vm2vm: true, poll: 'adaptive' });
  const a = new FakeGuest(A, 0x1000_0000n);
  const b = new FakeGuest(B, 0x2000_0000n);
  const sa = sw.addDevice(a.spec(1, 0));
  const sb = sw.addDevice(b.spec(2, 0));
  b.postRx(256);
  const f = makeFrame(B, A, 300, 5);
  let queued = 0;
  while (a.send(f)) queued++;
  sw.start();
  sw.removeDevice(sb); // the thread is busy with A's frames to B right now
  b.unmap();
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    if (a.send(f)) queued++;
    if (queued >= 600) break;
    await new Promise((r) => setTimeout(r, 1));
  }
  while (a.tx.usedIdx !== a.tx.availIdx && Date.now() < deadline + 2000) await new Promise((r) => setTimeout(r, 1));
  sw.stop();
  const st = dev(sw, sa);
  t.is(st.tx_total, queued);
  t.true((st.drops.no_nic ?? 0) > 0, 'after removal B is unknown, and there is no NIC');
  t.is(dev(sw, sb).state, 'removed');
  sw.close();
});

test('registration errors are one sentence with an errno code', (t) => {
  const sw = new Switch({ vm2vm: true, poll: 'adaptive', maxDevices: 2 });
  const a = new FakeGuest(A, 0x1000_0000n);
  const again = new FakeGuest(A, 0x4000_0000n);
  sw.addDevice(a.spec(1, 0));
  t.throws(() => sw.addDevice(again.spec(5, 2)), {
    code: 'EEXIST',
    message: 'MAC 02:00:00:00:00:11 is already registered by domain 1 device 0',
  });
  sw.addDevice(new FakeGuest(B, 0x2000_0000n).spec(2, 0));
  t.throws(() => sw.addDevice(new FakeGuest(C, 0x3000_0000n).spec(3, 0)), { code: 'ENOSPC' });
  t.throws(() => sw.addDevice({ ...a.spec(9, 9), mac: 'zz' }), { instanceOf: TypeError });
  t.throws(() => sw.removeDevice(1234), { code: 'ENOENT' });
  // Mapping lengths travel with every address and must cover the layout (defence in depth).
  sw.removeDevice(1);
  const c = new FakeGuest(C, 0x3000_0000n);
  const good = c.spec(3, 0);
  t.throws(() => sw.addDevice({ ...good, tx: { ...good.tx, mapLen: 8192 } }), {
    code: 'EINVAL',
    message: 'the TX ring of domain 3 device 0 (256 entries) needs 10246 bytes but its mapping has 8192: map all 3 of its pages',
  });
  t.throws(() => sw.addDevice({ ...good, rx: { ...good.rx, mapLen: 0 } }), { code: 'EINVAL', message: /^the RX ring of domain 3 device 0/ });
  t.throws(() => sw.addDevice({ ...good, flag: { ...good.flag, mapLen: 0 } }), {
    code: 'EINVAL',
    message: 'the flag page of domain 3 device 0 has an empty mapping: map its page',
  });
  const r = good.regions[0];
  t.throws(() => sw.addDevice({ ...good, regions: [{ ...r, len: r.mapLen + 4096 }] }), {
    code: 'EINVAL',
    message: `region 0 of domain 3 device 0 (gva 0x30000000, ${r.mapLen + 4096} bytes) runs past its mapping of ${r.mapLen} bytes: map the whole region`,
  });
  const { mapLen: _dropped, ...noLen } = good.tx;
  t.throws(() => sw.addDevice({ ...good, tx: noLen as typeof good.tx }), { instanceOf: TypeError, message: /tx\.mapLen/ });
  t.is(sw.addDevice(good), 1, 'the same device with its true lengths is accepted');
  t.throws(() => new Switch({ vm2vm: true, poll: 'adaptive', port: 'xswnosuch9' }), {
    code: 'ENODEV',
    message: 'cannot open AF_PACKET socket on xswnosuch9: no such interface (check `ip link`)',
  });
  t.throws(() => new Switch({ mtu: 9001 }), { instanceOf: RangeError });
  t.deepEqual(
    dropReasons().filter((n) => ['mtu_exceeded', 'spoofed_src_mac', 'rx_no_buffer', 'rx_too_big', 'unknown_dst', 'runt', 'nic_tx_full', 'same_device', 'chain_loop'].includes(n)).length,
    9,
  );
  sw.close();
  t.throws(() => sw.stats(), { message: /closed/ });
});
