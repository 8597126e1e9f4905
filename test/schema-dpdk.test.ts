// The DPDK XenStore schema (schema/): key names and publish order, the strict
// parsers of every value a guest writes, the watch paths, and the one MAC rule
// both sides apply.
import test from 'ava';
import { parseDeviceMac } from '../frontend/mac';
import { matchDomainPath, parseDomid } from '../schema/domain';
import {
  deviceEntries, deviceKeys, dpdkDir, matchStartPath, mempoolEntries, mempoolKeys, parseEtherAddr, parseGref, parseGrefList,
  parseEvtchn, parseStart, parseVa, quote,
} from '../schema/dpdk';
import { parseMac } from '../schema/mac';

test('gref lists accept decimal refs 8..2^32-1, comma separated', (t) => {
  t.deepEqual(parseGrefList('8'), { ok: true, value: [8] });
  t.deepEqual(parseGrefList('8,9,4294967295'), { ok: true, value: [8, 9, 4294967295] });
  t.deepEqual(parseGrefList(Array.from({ length: 64 }, (_, i) => String(100 + i)).join(',')).ok, true);
});

const badLists: [string, string, RegExp][] = [
  ['empty', '', /is empty/],
  ['hex', '0x10', /not a comma-separated list/],
  ['space', '8, 9', /not a comma-separated list/],
  ['trailing comma', '8,9,', /not a comma-separated list/],
  ['negative', '-1', /not a comma-separated list/],
  ['reserved ref', '9,7', /"7" is a reserved grant reference/],
  ['ref zero', '0', /reserved/],
  ['above u32', '4294967296', /larger than a grant reference/],
  ['eleven digits', '12345678901', /not a decimal grant reference/],
  ['65 entries', Array.from({ length: 65 }, (_, i) => String(100 + i)).join(','), /65 grant references, more than the 64/],
  ['duplicate', '8,9,8', /lists grant reference 8 twice/],
  ['huge string', '9,'.repeat(5000) + '9', /not a comma-separated list/],
  ['newline', '8\n9', /not a comma-separated list/],
];
for (const [name, value, why] of badLists) {
  test(`gref list refuses ${name}`, (t) => {
    const r = parseGrefList(value);
    t.false(r.ok);
    if (!r.ok) t.regex(r.reason, why);
  });
}

test('a single gref is one decimal ref and nothing else', (t) => {
  t.deepEqual(parseGref('1234'), { ok: true, value: 1234 });
  for (const v of ['', '8,9', ' 8', '+8', '3', 'abc']) t.false(parseGref(v).ok, v);
});

test('VAs are hex, optional 0x, non-zero, page aligned', (t) => {
  t.deepEqual(parseVa('0x7f0000001000'), { ok: true, value: 0x7f0000001000n });
  t.deepEqual(parseVa('7F0000002000'), { ok: true, value: 0x7f0000002000n });
  t.deepEqual(parseVa('0xfffffffffffff000'), { ok: true, value: 0xfffffffffffff000n });
  const cases: [string, RegExp][] = [
    ['zz', /"zz" is not a hex address/],
    ['0x', /not a hex address/],
    ['0X1000', /not a hex address/],
    ['0x10000000000000000', /not a hex address/],
    ['0x0', /null address/],
    ['0x1001', /not page aligned/],
    ['-0x1000', /not a hex address/],
    ['0x1000 ', /not a hex address/],
  ];
  for (const [v, why] of cases) {
    const r = parseVa(v);
    t.false(r.ok, v);
    if (!r.ok) t.regex(r.reason, why, v);
  }
});

test('MACs are six hex pairs, unicast, non-zero, returned lower case', (t) => {
  t.deepEqual(parseEtherAddr('00:00:00:00:00:11'), { ok: true, value: '00:00:00:00:00:11' });
  t.deepEqual(parseEtherAddr('02:AB:cd:00:00:01'), { ok: true, value: '02:ab:cd:00:00:01' });
  const cases: [string, RegExp][] = [
    ['00:00:00:00:00:00', /zero MAC/],
    ['01:00:5e:00:00:01', /multicast/],
    ['ff:ff:ff:ff:ff:ff', /multicast/],
    ['00-00-00-00-00-11', /not a MAC address/],
    ['00:00:00:00:00:1', /not a MAC address/],
    ['00:00:00:00:00:111', /not a MAC address/],
    ['0:00:00:00:00:11 ', /not a MAC address/],
    ['gg:00:00:00:00:11', /not a MAC address/],
  ];
  for (const [v, why] of cases) {
    const r = parseEtherAddr(v);
    t.false(r.ok, v);
    if (!r.ok) t.regex(r.reason, why, v);
  }
});

test('only the value 1 starts a device', (t) => {
  t.true(parseStart('1'));
  for (const v of ['0', '', '01', '1 ', 'true', '2']) t.false(parseStart(v), v);
});

test('start-key paths are matched strictly', (t) => {
  t.deepEqual(matchStartPath('/local/domain/3/control/dpdk/event_type_start_0'), { domid: 3, dev: 0 });
  t.deepEqual(matchStartPath('/local/domain/12/control/dpdk/event_type_start_31'), { domid: 12, dev: 31 });
  t.deepEqual(matchStartPath('/local/domain/12/control/dpdk/event_type_start_99'), { domid: 12, dev: 99 });
  for (const p of [
    '/local/domain/0/control/dpdk/event_type_start_0',
    '/local/domain/03/control/dpdk/event_type_start_0',
    '/local/domain/3/control/dpdk/event_type_start_00',
    '/local/domain/3/control/dpdk/event_type_start_-1',
    '/local/domain/3/control/dpdk/event_type_start_',
    '/local/domain/3/control/dpdk/0_ether_addr',
    '/local/domain/3/control/dpdk/event_type_start_0/x',
    '/local/domain/32752/control/dpdk/event_type_start_0',
    'local/domain/3/control/dpdk/event_type_start_0',
  ]) t.is(matchStartPath(p), null, p);
});

test('domain paths and ids are matched strictly', (t) => {
  t.is(matchDomainPath('/local/domain/7'), 7);
  t.is(matchDomainPath('/local/domain/7/control'), 7);
  t.is(matchDomainPath('/local/domain/0'), null);
  t.is(matchDomainPath('/local/domain/7/control/dpdk'), null);
  t.is(parseDomid('0'), 0);
  t.is(parseDomid('42'), 42);
  for (const v of ['042', 'x', '', '32752', '-1']) t.is(parseDomid(v), null, v);
});

test('quoted guest values are escaped and clipped', (t) => {
  t.is(quote('a\nb'), '"a\\nb"');
  t.is(quote('x'.repeat(100)), `"${'x'.repeat(40)}..."`);
});

test('the node and key names are the DPDK guide\'s', (t) => {
  t.is(dpdkDir(7), '/local/domain/7/control/dpdk');
  t.deepEqual(mempoolKeys(2), { gref: '2_mempool_gref', va: '2_mempool_va' });
  t.deepEqual(deviceKeys(1), { rx: '1_rx_vring_gref', tx: '1_tx_vring_gref', mac: '1_ether_addr', flag: '1_vring_flag', evtchn: '1_event_channel', start: 'event_type_start_1' });
  t.deepEqual(mempoolEntries(0, { gref: '8,9', va: '0x1000' }).map(([k]) => k), ['0_mempool_gref', '0_mempool_va']);
  t.deepEqual(deviceEntries(0, { rxGref: '10', txGref: '11', mac: '00:00:00:00:00:11', flagGref: 12 }).at(-1), ['event_type_start_0', '1']);
  // The optional event channel (xsw's addition) goes before the start key, and only when offered.
  t.deepEqual(deviceEntries(0, { rxGref: '10', txGref: '11', mac: '00:00:00:00:00:11', flagGref: 12, evtchn: 5 }).map(([k]) => k),
    ['0_rx_vring_gref', '0_tx_vring_gref', '0_ether_addr', '0_vring_flag', '0_event_channel', 'event_type_start_0']);
  t.false(deviceEntries(0, { rxGref: '10', txGref: '11', mac: '00:00:00:00:00:11', flagGref: 12 }).some(([k]) => k === '0_event_channel'));
});

test('V_event_channel: a decimal port 1..2^32-1, nothing else', (t) => {
  t.deepEqual(parseEvtchn('7'), { ok: true, value: 7 });
  t.deepEqual(parseEvtchn('4294967295'), { ok: true, value: 4294967295 });
  for (const v of ['0', '', '-1', '0x10', '4294967296', '12345678901', '7 ', 'seven']) t.false(parseEvtchn(v).ok, v);
});

// What a guest may publish as V_ether_addr and what xsw-front takes as --mac is one rule.
const macRule: [string, boolean][] = [
  ['00:16:3e:00:00:01', true],
  ['02:AB:cd:00:00:01', true],
  ['00:00:00:00:00:00', false],
  ['01:00:5e:00:00:01', false],
  ['ff:ff:ff:ff:ff:ff', false],
  ['33:33:00:00:00:01', false],
  ['00:00:00:00:00', false],
  ['00-16-3e-00-00-01', false],
];
for (const [mac, allowed] of macRule) {
  test(`a device MAC ${mac} is ${allowed ? 'accepted' : 'refused'} by the back end and the front end alike`, (t) => {
    t.is(parseEtherAddr(mac).ok, allowed);
    if (allowed) t.is(parseDeviceMac(mac).toString('hex'), mac.toLowerCase().replace(/:/g, ''));
    else t.throws(() => parseDeviceMac(mac), { name: 'FrontError' });
  });
}

test('a destination (an eth-peer) may be any address, a malformed one still not', (t) => {
  for (const mac of ['00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:01']) t.true(parseMac(mac, 'destination').ok, mac);
  t.false(parseMac('ff:ff:ff:ff:ff', 'destination').ok);
});
