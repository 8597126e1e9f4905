// Networks (issue 16) in the control plane: where a device goes (dom0's
// assignment, --default-network, else the guide's 1000 + slot), the tag its
// frames carry on the uplink (--native-vlan: untagged), the registration
// line's ending, the per-network counters and the options.
import test from 'ava';
import { describePlacement, networkCounters, place } from '../backend/networks';
import { OptionError, parseOptions } from '../backend/options';
import { formatJson, formatTable } from '../backend/stats';

test('a device goes to dom0\'s network, else --default-network, else VLAN 1000 + slot', (t) => {
  t.deepEqual(place({ vlan: 10 }, 3, {}), { network: 10, vlan: 10, nicTag: 10, source: 'dom0' });
  t.deepEqual(place({ vlan: 10 }, 3, { defaultNetwork: 30 }), { network: 10, vlan: 10, nicTag: 10, source: 'dom0' });
  t.deepEqual(place({}, 3, { defaultNetwork: 30 }), { network: 30, vlan: 30, nicTag: 30, source: '--default-network' });
  t.deepEqual(place({}, 3, {}), { vlan: 1003, nicTag: 1003, source: 'slot' });
  // The native VLAN travels untagged; the others stay tagged.
  t.is(place({ vlan: 10 }, 0, { nativeVlan: 10 }).nicTag, 0);
  t.is(place({ vlan: 20 }, 0, { nativeVlan: 10 }).nicTag, 20);
  t.is(place({}, 0, { nativeVlan: 1000 }).nicTag, 1000, 'the guide\'s devices are never native');
});

test('the registration line says where the network came from and how the uplink carries it', (t) => {
  t.is(describePlacement(place({}, 0, {})), '');
  t.is(describePlacement(place({ vlan: 10 }, 0, {})), ' (network 10 from dom0)');
  t.is(describePlacement(place({}, 0, { defaultNetwork: 30, nativeVlan: 30 })), ' (network 30 from --default-network, untagged on the uplink (its native VLAN))');
});

test('per-network counters sum the devices of each network and take the uplink\'s frames on its tag', (t) => {
  const dev = (network: number | null, n: number) => ({ network, tx_total: n, tx_dropped: 1, rx_total: 2 * n, rx_dropped: 0 });
  const nets = networkCounters(
    [dev(10, 5), dev(20, 7), dev(10, 1), dev(null, 100)],
    [{ vlan: 0, rx: 3, tx: 4 }, { vlan: 20, rx: 9, tx: 8 }, { vlan: 1002, rx: 50, tx: 50 }],
    10,
  );
  t.deepEqual(nets, [
    { network: 10, devices: 2, tx_total: 6, tx_dropped: 2, rx_total: 12, rx_dropped: 0, nic_rx: 3, nic_tx: 4 },
    { network: 20, devices: 1, tx_total: 7, tx_dropped: 1, rx_total: 14, rx_dropped: 0, nic_rx: 9, nic_tx: 8 },
  ]);
  const snap = {
    devices: [{ slot: 0, domid: 1, dev: 0, mac: '00:00:00:00:00:11', vlan: 10, network: 10, state: 'active', tx_total: 5, tx_dropped: 1, rx_total: 10, rx_dropped: 0, drops: {} }],
    nic: { rx: 3, tx: 4, dropped: 0 },
    networks: nets.slice(0, 1),
  };
  const j = JSON.parse(formatJson(snap, new Date(0)));
  t.is(j.devices[0].network, 10);
  t.deepEqual(j.networks, nets.slice(0, 1));
  t.regex(formatTable(snap), /Network 10: 2 devices {2}TX 6 \(dropped 2\) {2}RX 12 \(dropped 0\) {2}uplink rx 3 tx 4/);
  // Without networks, the JSON line is the guide's, unchanged.
  const plain = JSON.parse(formatJson({ devices: [{ ...snap.devices[0], network: null }], nic: snap.nic }, new Date(0)));
  t.false('networks' in plain);
  t.false('network' in plain.devices[0]);
});

test('--native-vlan and --default-network take a VLAN id outside the switch\'s own range', (t) => {
  const o = parseOptions(['-p', 'eth0', '--native-vlan', '10', '--default-network', '20']);
  t.is(o.nativeVlan, 10);
  t.is(o.defaultNetwork, 20);
  t.false('nativeVlan' in parseOptions([]));
  for (const [flag, v, re] of [
    ['--native-vlan', '0', /--native-vlan takes a VLAN id from 1 to 4094, not "0"\./],
    ['--native-vlan', '4095', /from 1 to 4094/],
    ['--default-network', '010', /not "010"/],
    ['--default-network', '1003', /--default-network 1003 is in the range the switch gives devices itself \(1000-1063\); use another VLAN id\./],
  ] as const) {
    const e = t.throws(() => parseOptions([flag, v]), { instanceOf: OptionError });
    t.regex(e!.message, re);
  }
});
