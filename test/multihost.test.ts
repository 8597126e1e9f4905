// Two hosts on one machine (issue 16), each with its own xenstored,
// xsw-backend and guests in its own network namespace, their uplinks joined
// by (a) a Linux bridge, (b) kernel VXLAN, (c) Open vSwitch
// (fixtures/multihost-rig.ts). dom0 puts each guest in network 10 or 20:
//   host A: a1 (10) sends N test frames to b1, a2 (10) sends N to b2's MAC,
//           a3 (20) broadcasts N;
//   host B: b1 (10) returns what it gets to a1, b2 (20) counts what it gets.
// a1 gets its N frames back intact; b2 gets exactly a3's N broadcasts and none
// of a2's frames; no device hears another network. Then b1 moves to host A
// (a new domain there, same assignment): it keeps network 10 whatever its
// slot, and a1 reaches it again. Needs root (namespaces, veth, AF_PACKET).
import test, { ExecutionContext } from 'ava';
import type { Child } from '../harness/child';
import { parseStatsJson, StatsSample } from '../frontend/stats';
import { buildFabric, Fabric, FabricKind, Host } from './fixtures/multihost-rig';
import { statsUntil } from './fixtures/backend-rig';

const MAC = { a1: '02:00:00:00:0a:01', a2: '02:00:00:00:0a:02', a3: '02:00:00:00:0a:03', b1: '02:00:00:00:0b:01', b2: '02:00:00:00:0b:02' };
// Rings of 1024 and a gentle rate: the guests keep up even on a loaded machine.
const FRONT = ['--nb-mbuf', '4096', '--ring-size', '1024', '--log-level', 'warn', '--stats', '1', '--json'];
const N = 200;

interface BackendStats {
  devices: { domid: number; mac: string; vlan: number; network?: number; rx_total: number; tx_total: number }[];
  networks?: { network: number; devices: number; tx_total: number; rx_total: number; nic_rx: number; nic_tx: number }[];
  nic: { rx: number; tx: number; dropped: number };
}

/** The guest's last stats line for its device 0. */
function frontStats(p: Child): StatsSample['devices'][0] | undefined {
  for (let i = p.out.length - 1; i >= 0; i--) {
    const s = parseStatsJson(p.out[i]);
    if (s && s.devices.length > 0) return s.devices[0];
  }
  return undefined;
}

async function frontUntil(p: Child, ok: (d: StatsSample['devices'][0]) => boolean, timeoutMs = 15000): Promise<StatsSample['devices'][0]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const d = frontStats(p);
    if (d && ok(d)) return d;
    if (Date.now() > deadline) throw new Error(`${p.name} never got there; last stats: ${JSON.stringify(d)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const registered = (mac: string, vlan: number) =>
  new RegExp(`^\\(\\d+\\) MAC_ADDRESS ${mac} and VLAN_TAG ${vlan} registered \\(network ${vlan} from dom0\\)$`);

async function twoHosts(t: ExecutionContext, kind: FabricKind): Promise<void> {
  const a = await Host.start('a');
  const b = await Host.start('b');
  let fabric: Fabric | undefined;
  try {
    fabric = await buildFabric(kind, a, b, [10, 20]);
    t.log(fabric.note);
    await a.createGuest(1, MAC.a1, 10);
    await a.createGuest(2, MAC.a2, 10);
    await a.createGuest(3, MAC.a3, 20);
    await b.createGuest(1, MAC.b1, 10);
    await b.createGuest(2, MAC.b2, 20);
    const beA = a.backend();
    const beB = b.backend();
    await beA.waitLog(/watching/);
    await beB.waitLog(/watching/);

    // Host B's guests first, so that nothing host A sends finds them missing.
    b.guest(1, ['--mac', MAC.b1, '--fwd', 'mac', '--eth-peer', MAC.a1, ...FRONT]);
    const b2 = b.guest(2, ['--mac', MAC.b2, '--fwd', 'rxonly', '--verify', ...FRONT]);
    await beB.waitLog(registered(MAC.b1, 10));
    await beB.waitLog(registered(MAC.b2, 20));
    const a1 = a.guest(1, ['--mac', MAC.a1, '--fwd', 'txonly', '--eth-peer', MAC.b1, '--count', String(N), '--rate', '1000', '--verify', ...FRONT]);
    const a2 = a.guest(2, ['--mac', MAC.a2, '--fwd', 'txonly', '--eth-peer', MAC.b2, '--count', String(N), '--rate', '1000', ...FRONT]);
    const a3 = a.guest(3, ['--mac', MAC.a3, '--fwd', 'txonly', '--eth-peer', 'ff:ff:ff:ff:ff:ff', '--count', String(N), '--rate', '1000', ...FRONT]);
    await beA.waitLog(registered(MAC.a1, 10));
    await beA.waitLog(registered(MAC.a2, 10));
    await beA.waitLog(registered(MAC.a3, 20));

    // a1 gets its N frames back from host B, intact and in order.
    const back = await frontUntil(a1, (d) => d.tx_packets >= N && d.rx_packets >= N);
    t.is(back.rx_packets, N, 'a1 got each of its frames back once');
    t.is(back.rx_bad, 0);
    t.is(back.rx_out_of_order, 0);
    await frontUntil(a2, (d) => d.tx_packets >= N);
    await frontUntil(a3, (d) => d.tx_packets >= N);
    // b2 (network 20) gets a3's broadcasts, not one of the frames a2 (network 10) sent to its MAC.
    const got = await frontUntil(b2, (d) => d.rx_packets >= N);
    await new Promise((r) => setTimeout(r, 1500));
    const b2Final = frontStats(b2)!;
    t.is(b2Final.rx_packets, N, 'b2 got exactly network 20\'s broadcasts');
    t.is(got.rx_bad, 0);

    // The back ends agree: nothing crossed, per device and per network.
    // Each waits for the counts that still grow while frames cross the uplink
    // (a loaded host's Open vSwitch can lag behind the guests), and fails with
    // the last stats if they never arrive: host B's uplink received a1's and
    // a2's frames on VLAN 10 and a3's on VLAN 20; host A's sent a3's on VLAN 20.
    const net = (s: BackendStats, id: number) => s.networks?.find((n) => n.network === id);
    const sA = await statsUntil<BackendStats>(beA, (s) => (net(s, 10)?.rx_total ?? 0) >= N && (net(s, 20)?.nic_tx ?? 0) >= N);
    const sB = await statsUntil<BackendStats>(beB, (s) => (net(s, 20)?.rx_total ?? 0) >= N && (net(s, 10)?.nic_rx ?? 0) >= 2 * N && (net(s, 20)?.nic_rx ?? 0) >= N);
    const dev = (s: BackendStats, mac: string) => s.devices.find((d) => d.mac === mac)!;
    t.is(dev(sA, MAC.a1).rx_total, N, 'a1 heard only its returned frames (not a3\'s broadcasts)');
    t.is(dev(sA, MAC.a2).rx_total, 0, 'a2 heard nothing (not a3\'s broadcasts)');
    t.is(dev(sB, MAC.b1).rx_total, N, 'b1 heard only a1\'s frames (not a3\'s broadcasts)');
    t.is(dev(sB, MAC.b2).rx_total, N);
    t.deepEqual(sB.networks!.map((n) => [n.network, n.devices]), [[10, 1], [20, 1]]);

    // b1 moves to host A (a new domain there, the same assignment) and a1
    // restarts: both keep network 10, whatever slot they land in.
    const b1Proc = b.procs.find((p) => p.name === 'xsw-front b1')!;
    b1Proc.kill('SIGKILL');
    a1.kill('SIGKILL');
    await Promise.all([b1Proc.exited, a1.exited]);
    await beB.waitLog(/detached domain 1 device 0/);
    await beA.waitLog(/detached domain 1 device 0/);
    await b.removeGuest(1);
    await a.createGuest(7, MAC.b1, 10);
    a.guest(7, ['--mac', MAC.b1, '--fwd', 'mac', '--eth-peer', MAC.a1, ...FRONT]);
    const moved = await beA.waitLog(registered(MAC.b1, 10));
    t.is(moved.domid, 7);
    const from = beA.err.length;
    const a1again = a.guest(1, ['--mac', MAC.a1, '--fwd', 'txonly', '--eth-peer', MAC.b1, '--count', String(N), '--rate', '1000', '--verify', ...FRONT]);
    await beA.waitLine('err', /MAC_ADDRESS 02:00:00:00:0a:01 and VLAN_TAG 10 registered \(network 10 from dom0\)/, { from });
    const local = await frontUntil(a1again, (d) => d.tx_packets >= N && d.rx_packets >= N);
    t.is(local.rx_packets, N, 'a1 reaches b1 on its new host, in the same network');
    t.is(local.rx_bad, 0);
  } finally {
    await fabric?.close();
    await a.close();
    await b.close();
  }
}

for (const kind of ['bridge', 'vxlan', 'ovs'] as FabricKind[]) {
  test.serial(`two hosts over ${kind}: a guest reaches its network on the other host and no other`, (t) => twoHosts(t, kind));
}
