import test from 'ava';
import { formatJson, formatTable, StatsSnapshot } from '../backend/stats';

const snap: StatsSnapshot = {
  devices: [
    {
      slot: 0, domid: 1, dev: 0, mac: '00:00:00:00:00:11', vlan: 1000, state: 'active',
      tx_total: 100, tx_dropped: 3, rx_total: 50, rx_dropped: 0, tx_bytes: 6400, rx_bytes: 3200, drops: { no_rx_buffer: 3, chain_loop: 0 },
    },
    {
      slot: 1, domid: 2, dev: 0, mac: '00:00:00:00:00:22', vlan: 1001, state: 'quarantined',
      tx_total: 7, tx_dropped: 7, rx_total: 0, rx_dropped: 0, drops: { avail_idx_jump: 1 },
    },
  ],
  nic: { rx: 9, tx: 8, dropped: 1 },
};

test('the table has DPDK print_stats lines per device, with domid, MAC, VLAN and state', (t) => {
  const out = formatTable(snap);
  const lines = out.split('\n');
  t.true(lines.includes('Device statistics ===================================='));
  t.true(lines.includes('Statistics for device 0 ------------------------------'));
  t.true(lines.includes('Statistics for device 1 ------------------------------'));
  t.regex(out, /Domain: 1 device 0 {2}MAC: 00:00:00:00:00:11 {2}VLAN: 1000 {2}State: active/);
  t.regex(out, /State: quarantined/);
  t.regex(out, /TX total: +100\nTX dropped: +3\nTX successful: +97\nRX total: +50\nRX dropped: +0\nRX successful: +50/);
  t.regex(out, /Drops: +no_rx_buffer=3\n/);
  t.regex(out, /Drops: +avail_idx_jump=1/);
  t.regex(out, /NIC: rx 9 {2}tx 8 {2}dropped 1/);
  t.true(lines.includes('======================================================'));
});

test('the JSON line has exactly the documented fields', (t) => {
  const line = formatJson(snap, new Date('2024-01-02T03:04:05Z'));
  t.false(line.includes('\n'));
  const o = JSON.parse(line);
  t.deepEqual(Object.keys(o), ['time', 'devices', 'nic']);
  t.is(o.time, '2024-01-02T03:04:05.000Z');
  t.deepEqual(o.devices[0], {
    domid: 1, dev: 0, mac: '00:00:00:00:00:11', vlan: 1000, state: 'active',
    tx_total: 100, tx_dropped: 3, rx_total: 50, rx_dropped: 0, drops: { no_rx_buffer: 3, chain_loop: 0 }, kind: 'pmd',
  });
  t.is(o.devices[1].state, 'quarantined');
  t.deepEqual(o.nic, { rx: 9, tx: 8, dropped: 1 });
});

test('a vhost-user device says so, with its socket, in both forms', (t) => {
  const vh = { ...snap.devices[0], slot: 5, domid: 0x8000, mac: '02:00:00:00:01:01', vlan: 1005, kind: 'vhost-user', path: '/run/xsw/a.sock' };
  const withVhost = { ...snap, devices: [...snap.devices, vh] };
  const o = JSON.parse(formatJson(withVhost, new Date(0)));
  t.is(o.devices[2].kind, 'vhost-user');
  t.is(o.devices[2].path, '/run/xsw/a.sock');
  t.false('path' in o.devices[0]);
  t.regex(formatTable(withVhost), /vhost-user: \/run\/xsw\/a\.sock  MAC: 02:00:00:00:01:01  VLAN: 1005/);
});

test('refusals, when given, are printed by reason in both forms', (t) => {
  const withRefused = { ...snap, refused: { mac_taken: 2, bad_key: 1 } };
  t.regex(formatTable(withRefused), /Refused devices: mac_taken=2 bad_key=1/);
  t.deepEqual(JSON.parse(formatJson(withRefused, new Date(0))).refused, { mac_taken: 2, bad_key: 1 });
  t.notRegex(formatTable(snap), /Refused/);
});

test('a netif device carries its kind and its engine counters in the JSON line', (t) => {
  const vif = { ...snap.devices[0], slot: 2, domid: 4, kind: 'netif', netif: { tx_slots: 7, tx_csum_completed: 1 } };
  const o = JSON.parse(formatJson({ ...snap, devices: [vif] }, new Date(0)));
  t.is(o.devices[0].kind, 'netif');
  t.deepEqual(o.devices[0].netif, { tx_slots: 7, tx_csum_completed: 1 });
});

test('with several data threads (--cores): a line per thread, and threads plus each device\'s thread in the JSON', (t) => {
  const threads = [
    { thread: 0, cpu: 2, devices: 2, loops: 100, sleeps: 4, handed_out: 10, handed_in: 7, handoff_dropped: 0, processing_cycles: 300, idle_cycles: 700 },
    { thread: 1, cpu: 3, devices: 1, loops: 90, sleeps: 5, handed_out: 7, handed_in: 10, handoff_dropped: 1 },
  ];
  const multi: StatsSnapshot = { ...snap, devices: snap.devices.map((d, i) => ({ ...d, thread: i })), threads };
  const out = formatTable(multi);
  t.regex(out, /Thread 0 \(CPU 2\): 2 devices {2}loops 100 {2}handed out 10 {2}in 7 {2}handoff dropped 0 {2}busy 30\.0 %$/m);
  t.regex(out, /Thread 1 \(CPU 3\): 1 devices {2}loops 90 {2}handed out 7 {2}in 10 {2}handoff dropped 1$/m); // no cycles counted: no share
  const o = JSON.parse(formatJson(multi, new Date()));
  t.deepEqual(o.threads, threads);
  t.deepEqual(o.devices.map((d: { thread: number }) => d.thread), [0, 1]);
  // One thread (no `threads`): the line is unchanged, no thread fields.
  const one = JSON.parse(formatJson({ ...snap, devices: snap.devices.map((d) => ({ ...d, thread: 0 })) }, new Date()));
  t.false('threads' in one);
  t.false('thread' in one.devices[0]);
  t.notRegex(formatTable(snap), /Thread /);
});
