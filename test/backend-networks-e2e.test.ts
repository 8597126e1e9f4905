// Networks 10 and 20 on one switch (issue 16), end to end: xsw-backend with its
// uplink on a veth, four xsw-front guests dom0 put in networks 10 and 20, and
// a frame generator/capture on the wire (backend-wire.py). Unicast and
// broadcast within a network arrive, nothing crosses, the wire sees each
// network's tag, and frames arriving on VID 20 reach only network 20.
// Needs root (netns, veth, AF_PACKET).
import test from 'ava';
import { Rig, statsUntil } from './fixtures/backend-rig';

const A1 = '02:00:00:00:0a:01';
const A2 = '02:00:00:00:0a:02';
const B1 = '02:00:00:00:0b:01';
const B2 = '02:00:00:00:0b:02';
const GEN = '02:00:00:00:00:01';
const FRONT = ['--nb-mbuf', '1024', '--log-level', 'warn'];
const N = 100;

interface Stats {
  devices: { mac: string; vlan: number; network?: number; rx_total: number; tx_total: number }[];
  networks?: { network: number; devices: number; rx_total: number; nic_rx: number; nic_tx: number }[];
  nic: { dropped: number };
}

async function assign(rig: Rig, domid: number, mac: string, network: number): Promise<void> {
  const dir = `/local/domain/0/backend/xsw/${domid}`;
  await rig.dom0.write(`${dir}/0/mac`, mac);
  await rig.dom0.write(`${dir}/0/vlan`, String(network));
  for (const p of [dir, `${dir}/0`, `${dir}/0/mac`, `${dir}/0/vlan`]) await rig.dom0.setPerms(p, ['n0', `r${domid}`]);
}

test.serial('networks 10 and 20 on one switch: within a network frames arrive, across none, the wire sees the right tags', async (t) => {
  const rig = await Rig.start();
  try {
    const guests: [number, string, number, string][] = [
      [1, A1, 10, A2],                  // network 10: forwards to a2, a local device of its network
      [2, A2, 10, GEN],                 // network 10: forwards to the wire
      [3, B1, 20, A2],                  // network 20: forwards to a2's MAC, which is not in its network
      [4, B2, 20, 'ff:ff:ff:ff:ff:ff'], // network 20: broadcasts what it gets
    ];
    for (const [domid, mac, network] of guests) {
      await rig.createDomain(domid);
      await assign(rig, domid, mac, network);
    }
    const be = rig.backend(['--stats', '1', '--json']);
    await be.waitLog(/watching/);
    for (const [domid, mac, network, peer] of guests) {
      rig.guest(domid, ['--mac', mac, '--fwd', 'mac', '--eth-peer', peer, ...FRONT]);
      await be.waitLog(new RegExp(`MAC_ADDRESS ${mac} and VLAN_TAG ${network} registered \\(network ${network} from dom0\\)$`));
    }

    // Unicast within network 10: wire -> a1 -> a2 (switched locally) -> wire, tagged 10.
    const u = await rig.wire(['--dst', A1, '--src', GEN, '--vlan', '10', '--count', String(N), '--gap-ms', '0.5', '--expect', String(N)]);
    t.is(u.frames.length, N);
    t.true(u.frames.every((f) => f.src === A2 && f.dst === GEN && f.vlan === 10 && f.intact));

    // A broadcast arriving on VID 20 reaches b1 and b2 only. b2 broadcasts it
    // again (the wire and b1 get it, network 10 does not); b1 sends all it got
    // to a2's MAC, which network 20 does not have: out to the wire, tagged 20.
    const bc = await rig.wire(['--dst', 'ff:ff:ff:ff:ff:ff', '--src', GEN, '--vlan', '20', '--count', String(N), '--gap-ms', '0.5', '--expect', String(3 * N), '--tag', '2']);
    t.is(bc.frames.length, 3 * N);
    t.true(bc.frames.every((f) => f.vlan === 20 && f.intact), 'everything network 20 sent left tagged 20');
    t.is(bc.frames.filter((f) => f.src === B2 && f.dst === 'ff:ff:ff:ff:ff:ff').length, N);
    t.is(bc.frames.filter((f) => f.src === B1 && f.dst === A2).length, 2 * N);

    // a1's MAC on VID 20: nobody of network 20 has it.
    const cross = await rig.wire(['--dst', A1, '--src', GEN, '--vlan', '20', '--count', String(N), '--gap-ms', '0.5', '--wait-ms', '500', '--tag', '3']);
    t.is(cross.frames.length, 0);

    const s = await statsUntil<Stats>(be, (x) => x.nic.dropped >= N);
    const rx = (mac: string) => s.devices.find((d) => d.mac === mac)!.rx_total;
    t.is(rx(A1), N);
    t.is(rx(A2), N, 'a2 got a1\'s frames, none of network 20\'s');
    t.is(rx(B1), 2 * N);
    t.is(rx(B2), N);
    t.deepEqual(s.devices.map((d) => d.network), [10, 10, 20, 20]);
    const net = (n: number) => s.networks!.find((x) => x.network === n)!;
    t.is(net(10).nic_tx, N);
    t.is(net(20).nic_tx, 3 * N);
    t.is(net(20).nic_rx, 2 * N, 'the broadcasts and the frames for a1\'s MAC arrived on VID 20');
    t.is(net(10).nic_rx, N);
  } finally {
    await rig.close();
  }
});

test.serial('--native-vlan 10: network 10 crosses the uplink untagged, network 20 tagged', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    await assign(rig, 1, A1, 10);
    await rig.createDomain(2);
    await assign(rig, 2, B1, 20);
    const be = rig.backend(['--native-vlan', '10']);
    await be.waitLog(/the uplink carries network 10 untagged/);
    rig.guest(1, ['--mac', A1, '--fwd', 'mac', '--eth-peer', GEN, ...FRONT]);
    await be.waitLog(/MAC_ADDRESS 02:00:00:00:0a:01 and VLAN_TAG 10 registered \(network 10 from dom0, untagged on the uplink \(its native VLAN\)\)$/);
    rig.guest(2, ['--mac', B1, '--fwd', 'mac', '--eth-peer', GEN, ...FRONT]);
    await be.waitLog(/MAC_ADDRESS 02:00:00:00:0b:01 and VLAN_TAG 20 registered \(network 20 from dom0\)$/);
    const native = await rig.wire(['--dst', A1, '--src', GEN, '--count', String(N), '--gap-ms', '0.5', '--expect', String(N)]);
    t.is(native.frames.length, N);
    t.true(native.frames.every((f) => f.src === A1 && f.vlan === null && f.intact));
    const tagged = await rig.wire(['--dst', B1, '--src', GEN, '--vlan', '20', '--count', String(N), '--gap-ms', '0.5', '--expect', String(N), '--tag', '2']);
    t.is(tagged.frames.length, N);
    t.true(tagged.frames.every((f) => f.src === B1 && f.vlan === 20 && f.intact));
    // Tagged 10 is not how network 10 arrives on this uplink.
    const wrong = await rig.wire(['--dst', A1, '--src', GEN, '--vlan', '10', '--count', '20', '--gap-ms', '0.5', '--wait-ms', '500', '--tag', '3']);
    t.is(wrong.frames.length, 0);
  } finally {
    await rig.close();
  }
});

test.serial('a TAP uplink is a trunk too: networks 10 and 20 tagged, each reaching only its own devices', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    await assign(rig, 1, A1, 10);
    await rig.createDomain(2);
    await assign(rig, 2, B1, 20);
    const be = rig.backend(['-p', 'tap:xswtrunk0'], { nic: false });
    await be.waitLog(/watching/);
    rig.guest(1, ['--mac', A1, '--fwd', 'mac', '--eth-peer', GEN, ...FRONT]);
    rig.guest(2, ['--mac', B1, '--fwd', 'mac', '--eth-peer', GEN, ...FRONT]);
    await be.waitLog(/MAC_ADDRESS 02:00:00:00:0a:01 and VLAN_TAG 10 registered \(network 10 from dom0\)$/);
    await be.waitLog(/MAC_ADDRESS 02:00:00:00:0b:01 and VLAN_TAG 20 registered \(network 20 from dom0\)$/);
    // The kernel's side of the TAP is the wire here.
    const bc = await rig.wire(['--dst', 'ff:ff:ff:ff:ff:ff', '--src', GEN, '--vlan', '20', '--count', String(N), '--gap-ms', '0.5', '--expect', String(N)], 'xswtrunk0');
    t.is(bc.frames.length, N);
    t.true(bc.frames.every((f) => f.src === B1 && f.vlan === 20 && f.intact), 'only network 20 answered a broadcast on VID 20');
    const u = await rig.wire(['--dst', A1, '--src', GEN, '--vlan', '10', '--count', String(N), '--gap-ms', '0.5', '--expect', String(N), '--tag', '2'], 'xswtrunk0');
    t.is(u.frames.length, N);
    t.true(u.frames.every((f) => f.src === A1 && f.vlan === 10 && f.intact));
  } finally {
    await rig.close();
  }
});
