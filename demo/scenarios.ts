// The demo's scenarios and their verdicts. Each prints what went in, what
// came out and whether every frame came back correct, with exact counts.
//
//  wire (root):  generator --VLAN 1000, dst :11--> NIC --> vm1 (mac fwd, peer :22)
//    loopback    vm2 not running: :22 is unknown, so the frames leave through
//                the NIC with dst :22, src :11, VLAN 1000
//    inter-VM    vm2 running (mac fwd, peer :33): vm1 --> vm2 --> NIC with dst
//                :33, src :22, vm2's VLAN (1001)
//  guests only:  vm3 (txonly, dst :11) --> vm1 --> vm2 --> vm3 (:33): vm3
//                receives and verifies exactly the frames it sent, in order
import { parseDeviceMac } from '../frontend/mac';
import { BackendTable, lastTable } from './stats-table';
import { WireResult, wirePassed } from './wire-frames';
import { DemoWorld, FrontCounters, Guest, latestCounters } from './world';

export const MAC = {
  vm1: '00:00:00:00:00:11',
  vm2: '00:00:00:00:00:22',
  vm3: '00:00:00:00:00:33',
  generator: '02:00:00:00:00:fe',
};
/** Size of the test frames (untagged). */
export const FRAME_SIZE = 128;
/** vm3's txonly rate: well below what two busy cores move, so no ring ever overflows. */
export const TXONLY_RATE = 2000;

export interface Verdict {
  name: string;
  passed: boolean;
  /** One line: counts, what was checked, PASS or FAIL. */
  line: string;
}

const ZERO: FrontCounters = {
  time: 0, rx_packets: 0, rx_bytes: 0, rx_dropped: 0, tx_packets: 0, tx_bytes: 0, tx_dropped: 0, rx_nombuf: 0, rx_bad: 0, rx_out_of_order: 0, tx_done: 0,
};

function verdict(name: string, passed: boolean, text: string): Verdict {
  return { name, passed, line: `${name}: ${text} — ${passed ? 'PASS' : 'FAIL'}` };
}

function wrongText(r: WireResult): string {
  const reasons = Object.entries(r.wrong).map(([k, n]) => `${k} ${n}`).join(', ');
  return `${r.received - r.correct} wrong (${reasons})${r.firstWrong ? `, first: ${r.firstWrong}` : ''}`;
}

/** What a guest forwarded between two stats lines, checked against n. */
function forwarded(g: Guest, before: FrontCounters, after: FrontCounters | undefined, n: number): { ok: boolean; text: string } {
  if (!after) return { ok: false, text: `${g.name} printed no counters` };
  const rx = after.rx_packets - before.rx_packets;
  const tx = after.tx_packets - before.tx_packets;
  const ok = rx === n && tx === n && after.tx_dropped === before.tx_dropped;
  return { ok, text: ok ? `${g.name} forwarded ${n}` : `${g.name} received ${rx} and sent ${tx} of ${n}` };
}

/** The guest's counters as of now: the first stats line printed from now on. */
async function fresh(p: DemoWorld, g: Guest, signal: AbortSignal): Promise<FrontCounters> {
  return (await p.counters(g, Date.now(), () => true, 4000, signal)) ?? latestCounters(g) ?? ZERO;
}

/** Sends n frames into the NIC and checks what comes back and that each guest on the path forwarded n. */
async function wireScenario(
  p: DemoWorld,
  name: string,
  n: number,
  vm1: Guest,
  path: Guest[],
  expect: { dst: string; src: string; vlan: number },
  signal: AbortSignal,
): Promise<Verdict> {
  const before = await Promise.all(path.map((g) => fresh(p, g, signal)));
  const r = await p.runWire(
    {
      count: n,
      size: FRAME_SIZE,
      dst: parseDeviceMac(vm1.mac),
      src: parseDeviceMac(MAC.generator),
      vlan: vm1.vlan,
      expectDst: parseDeviceMac(expect.dst),
      expectSrc: parseDeviceMac(expect.src),
      expectVlan: expect.vlan,
    },
    signal,
  );
  const end = Date.now();
  const fwd = await Promise.all(
    path.map(async (g, i) => {
      const b = before[i];
      const after = await p.counters(g, end, (c) => c.rx_packets - b.rx_packets >= n && c.tx_packets - b.tx_packets >= n, 4000, signal);
      return forwarded(g, b, after, n);
    }),
  );
  const frames = wirePassed(r, n);
  const passed = frames && fwd.every((f) => f.ok);
  const checked = `dst ${expect.dst}, src ${expect.src}, VLAN ${expect.vlan}, payload intact, in order`;
  const text =
    `${r.sent} in, ${r.received} out, ` +
    (frames ? `all correct (${checked})` : r.received === r.correct ? `all that came back correct (${checked})` : wrongText(r)) +
    `; ${fwd.map((f) => f.text).join(', ')}`;
  return verdict(name, passed, text);
}

/** Guide scenario 1: only vm1 runs; its frames for :22 leave through the NIC. */
export function loopback(p: DemoWorld, n: number, vm1: Guest, signal: AbortSignal): Promise<Verdict> {
  return wireScenario(p, 'loopback', n, vm1, [vm1], { dst: MAC.vm2, src: MAC.vm1, vlan: vm1.vlan }, signal);
}

/** Guide scenario 2: vm2 runs; vm1's frames cross vm2 and leave with dst :33 on vm2's VLAN. */
export function interVm(p: DemoWorld, n: number, vm1: Guest, vm2: Guest, signal: AbortSignal): Promise<Verdict> {
  return wireScenario(p, 'inter-VM', n, vm1, [vm1, vm2], { dst: MAC.vm3, src: MAC.vm2, vlan: vm2.vlan }, signal);
}

/** Without root: vm3 sends n test frames to vm1; they come back through vm1 and vm2 and vm3 verifies them. */
export async function guestsOnly(p: DemoWorld, n: number, vm1: Guest, vm2: Guest, vm3: Guest, signal: AbortSignal): Promise<Verdict> {
  const name = 'inter-VM (vm3 → vm1 → vm2 → vm3)';
  const timeoutMs = Math.ceil((n / TXONLY_RATE) * 1000) + 15000;
  await p.counters(vm3, 0, (c) => c.tx_done === 1 && c.rx_packets >= n, timeoutMs, signal);
  // A fresh line after that: an extra frame would show.
  const [c1, c2, c3] = await Promise.all([vm1, vm2, vm3].map((g) => fresh(p, g, signal)));
  const fwd = [forwarded(vm1, ZERO, c1, n), forwarded(vm2, ZERO, c2, n)];
  const frames = c3.tx_packets === n && c3.rx_packets === n && c3.rx_bad === 0 && c3.rx_out_of_order === 0 && c3.rx_dropped === 0;
  const passed = frames && fwd.every((f) => f.ok);
  const got = frames
    ? 'all intact and in order (test frame checks: magic, length, CRC-32, sequence)'
    : `${c3.rx_bad} bad, ${c3.rx_out_of_order} out of order, ${c3.rx_dropped} dropped`;
  return verdict(name, passed, `${c3.tx_packets} sent by vm3, ${c3.rx_packets} back, ${got}; ${fwd.map((f) => f.text).join(', ')}`);
}

export interface ExpectedTotals {
  /** Per MAC: frames the guest sent to the switch and frames the switch gave it. */
  devices: { name: string; mac: string; tx: number; rx: number }[];
  nic: { rx: number; tx: number };
}

/** The back end's own counters (its next stats table after `fromLine`): the expected totals and no drop anywhere. */
export async function switchCounters(
  p: DemoWorld,
  expected: ExpectedTotals,
  fromLine: number,
  statsSeconds: number,
  signal: AbortSignal,
): Promise<Verdict> {
  const backend = p.backend!;
  let table: BackendTable | undefined;
  try {
    table = await backend.waitFor('the back end\'s next stats table', () => lastTable(backend.out, fromLine), (statsSeconds + 5) * 1000, signal);
  } catch (err) {
    if (signal.aborted) throw err;
    return verdict('switch counters', false, (err as Error).message);
  }
  const problems: string[] = [];
  const parts: string[] = [];
  for (const want of expected.devices) {
    const d = table.devices.find((x) => x.mac === want.mac && x.state === 'active');
    if (!d) {
      problems.push(`${want.name} (${want.mac}) is not active in the table`);
      continue;
    }
    parts.push(`${want.name} TX ${d.txTotal} RX ${d.rxTotal}`);
    if (d.txTotal !== want.tx || d.rxTotal !== want.rx) problems.push(`${want.name} TX ${d.txTotal}/RX ${d.rxTotal}, expected ${want.tx}/${want.rx}`);
    if (d.txDropped !== 0 || d.rxDropped !== 0) problems.push(`${want.name} dropped TX ${d.txDropped} RX ${d.rxDropped}`);
  }
  parts.push(`NIC rx ${table.nic.rx} tx ${table.nic.tx}`);
  if (table.nic.rx !== expected.nic.rx || table.nic.tx !== expected.nic.tx) {
    problems.push(`NIC rx ${table.nic.rx}/tx ${table.nic.tx}, expected ${expected.nic.rx}/${expected.nic.tx}`);
  }
  if (table.nic.dropped !== 0) problems.push(`NIC dropped ${table.nic.dropped}`);
  const passed = problems.length === 0;
  return verdict('switch counters', passed, passed ? `${parts.join(', ')}, nothing dropped` : problems.join('; '));
}
