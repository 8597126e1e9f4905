// The systems under test, each as "start traffic → read the receiver's
// counter → stop". xsw: the back end alone on CPU_SWITCH, the guests on
// CPU_GUESTS. The DPDK peers use the same placement (the vhost switch's
// forwarding lcore on CPU_SWITCH, the guests' on CPU_GUESTS).
import { deviceKeys, dpdkDir } from '../schema/dpdk';
import { XenStoreClient } from '../xenstore/client';
import { processTreeCpuSeconds } from './cpuload';
import { BLAST, CPU_GUESTS, CPU_SWITCH, frontCounter, linkRxPackets, PINGER, rssBytes, SimRig } from './rig';
import { Child, mustRun, run, sleep } from '../harness/child';
import { CLI } from '../harness/cli-paths';
import { call } from '../ctl/client';
import { onCleanup, start } from './cleanup';
import { Hugepages, socketDir, Testpmd } from './testpmd';
import fs from 'node:fs';
import path from 'node:path';
import { BenchAddon, benchAddon, benchAddonPath, NativeSwitchLoop } from './native';
import { crossingNs, placementOf, Traffic, Placement } from './window';

export const MAC1 = '02:00:00:00:01:01';
export const MAC2 = '02:00:00:00:02:01';
const MAC_WIRE = '02:00:00:00:00:77';
const MAC_UNKNOWN = '02:00:00:00:00:99';

/** The namespaces the bench creates (deleted at cleanup). */
export const NS_NIC = `xswb${process.pid}-nic`; // xsw's NIC: xswbn0 (back end) ↔ xswbn1 (the wire)
export const NS_P1 = `xswb${process.pid}-p1`; // the kernel peer: xswbp1 in p1 ↔ xswbp2 in p2
export const NS_P2 = `xswb${process.pid}-p2`;

async function stopAll(procs: (Child | undefined)[]): Promise<void> {
  for (const p of procs) await p?.stop(3000);
}

async function backendUp(rig: SimRig, args: string[], ns?: string): Promise<Child> {
  const be = rig.backend(['--log-level', 'info', ...args], ns);
  await be.waitLine('err', /watching \/local\/domain/, { timeoutMs: 20000 });
  return be;
}

/**
 * xsw guest → guest: vm1 txonly → back end → vm2 rxonly, every process in
 * poll mode `mode`. Facts: the back end's RSS growth per guest.
 */
export async function xswGuestToGuest(rig: SimRig, size: number, mode: PollMode = 'busy'): Promise<Traffic> {
  const be = await backendUp(rig, ['--poll', mode]);
  const rssBase = rssBytes(be.pid);
  let rx: Child | undefined;
  let tx: Child | undefined;
  try {
    rx = await rig.front('vm2', CPU_GUESTS, ['--poll', mode, '--mac', MAC2, '--fwd', 'rxonly']);
    tx = await rig.front('vm1', CPU_GUESTS, ['--poll', mode, '--mac', MAC1, '--fwd', 'txonly', '--txpkts', String(size), '--eth-peer', MAC2]);
    await rig.registered(be, 2);
  } catch (err) {
    await stopAll([tx, rx, be]);
    throw err;
  }
  const rxp = rx;
  return {
    read: async () => {
      const c = await frontCounter(rxp);
      return { t: c.t, count: c.rx };
    },
    facts: () => ({ rss_base: rssBase, rss_per_guest: (rssBytes(be.pid) - rssBase) / 2 }),
    stop: () => stopAll([tx, rx, be]),
  };
}

/** Frames injected per device in the loop tests (testpmd: `start tx_first 4` = 4 bursts of 32). */
export const LOOP_IN_FLIGHT = 128;

/**
 * xsw's switch core: the back end's data plane on CPU_SWITCH between two
 * devices whose guest side (the front end's PMD) is one thread on
 * CPU_GUESTS, frames looping (bench/native/switch_loop.h). With
 * `idleDevices`, that many more devices of other guests are attached and
 * never send.
 */
export async function xswSwitchLoop(size: number, idleDevices = 0, bench: BenchAddon = benchAddon()): Promise<Traffic> {
  const loop = new bench.SwitchLoop({ frameLen: size, inFlight: LOOP_IN_FLIGHT, switchCpu: CPU_SWITCH, guestCpu: CPU_GUESTS, idleDevices });
  const stop = onCleanup('stop the switch harness', () => loop.stop());
  loop.start();
  return loopTraffic(loop, stop);
}

/** The harness's traffic: the devices' receive count, and its poll counts over the window (pollFacts). */
function loopTraffic(loop: NativeSwitchLoop, stop: () => Promise<void>): Traffic {
  const none = { guestPolls: 0, guestEmpty: 0, switchPolls: 0, switchFrames: 0 };
  const polls = () => ({ ...none, ...loop.polls?.() });
  let from = polls();
  let received = loop.received();
  return {
    read: async () => ({ t: performance.now(), count: loop.received() }),
    mark: () => {
      from = polls();
      received = loop.received();
    },
    facts: () => {
      const to = polls();
      return {
        switch_drops: loop.drops(),
        ...pollFacts('switch', to.switchPolls - from.switchPolls, undefined, to.switchFrames - from.switchFrames, share(to.switchBusyCycles, from.switchBusyCycles, to.switchCycles, from.switchCycles)),
        ...pollFacts('guest', to.guestPolls - from.guestPolls, to.guestEmpty - from.guestEmpty, loop.received() - received, share(to.guestBusyCycles, from.guestBusyCycles, to.guestCycles, from.guestCycles)),
      };
    },
    stop,
  };
}

/**
 * Why-is-it-slow facts of one side (switch or guest): its share of RX polls that
 * found nothing (`<side>_empty_pct`) and the frames per poll, where counted, and
 * its busy share (`<side>_busy_pct`: of its time, the part spent in polls that
 * found frames) where its cycles were counted.
 */
export function pollFacts(side: 'switch' | 'guest', polls: number, empty: number | undefined, frames: number | undefined, busyPct?: number): Record<string, number> {
  const out: Record<string, number> = {};
  if (busyPct !== undefined && Number.isFinite(busyPct)) out[`${side}_busy_pct`] = busyPct;
  if (!(polls > 0)) return out;
  if (empty !== undefined) out[`${side}_empty_pct`] = (empty / polls) * 100;
  if (frames !== undefined) out[`${side}_frames_per_poll`] = frames / polls;
  return out;
}

/** A busy share in %: busy cycles over all cycles between two readings (undefined where not counted). */
function share(busyTo: number | undefined, busyFrom: number | undefined, allTo: number | undefined, allFrom: number | undefined): number | undefined {
  if (busyTo === undefined || busyFrom === undefined || allTo === undefined || allFrom === undefined) return undefined;
  const all = allTo - allFrom;
  return all > 0 ? (100 * (busyTo - busyFrom)) / all : undefined;
}

/** Poll facts of a testpmd over the window: clear its forwarding stats at mark, read them at the end. */
function testpmdPolls(side: 'switch' | 'guest', tp: Testpmd): Pick<Traffic, 'mark' | 'facts'> {
  let cleared = 0;
  return {
    mark: () => {
      tp.command('clear fwd stats all');
      cleared = performance.now();
    },
    facts: async () => {
      const asked = performance.now();
      const b = await tp.burstStats();
      // Its busy cycles over every TSC cycle of the window (clear to show, as the commands were written).
      const busy = b.busyCycles !== undefined && b.tscMhz && cleared ? (100 * b.busyCycles) / (b.tscMhz * 1000 * (asked - cleared)) : undefined;
      return pollFacts(side, b.rxBursts, b.rxEmpty, b.rxPackets, busy);
    },
  };
}

/**
 * Poll facts of xsw-backend over the window, from its control socket (<sim dir>/backend.sock):
 * its loops (one thread: each polls every device's TX ring once) and the frames taken from them.
 */
function backendPolls(rig: SimRig): Pick<Traffic, 'mark' | 'facts'> {
  const sock = path.join(rig.dir, 'backend.sock');
  const read = async () => {
    const show = await call<{ switch_loops: number; switch_cycles?: { processing: number; idle: number } }>(sock, { cmd: 'show' });
    const stats = await call<{ devices: { tx_total: number }[] }>(sock, { cmd: 'stats' });
    const c = show.switch_cycles;
    return { loops: show.switch_loops, frames: stats.devices.reduce((a, d) => a + d.tx_total, 0), devices: stats.devices.length, busy: c?.processing, all: c ? c.processing + c.idle : undefined };
  };
  let from: Awaited<ReturnType<typeof read>> | undefined;
  return {
    mark: async () => {
      from = await read().catch(() => undefined);
    },
    facts: async () => {
      const to = await read();
      return from ? pollFacts('switch', (to.loops - from.loops) * to.devices, undefined, to.frames - from.frames, share(to.busy, from.busy, to.all, from.all)) : {};
    },
  };
}

/** Facts of several sources merged (each may fail alone: a fact missing is not a failed window). */
function mergeFacts(...parts: Pick<Traffic, 'mark' | 'facts'>[]): Pick<Traffic, 'mark' | 'facts'> {
  return {
    mark: async () => {
      for (const p of parts) await p.mark?.();
    },
    facts: async () => {
      let out: Record<string, number> = {};
      for (const p of parts) out = { ...out, ...(await Promise.resolve(p.facts?.()).catch(() => ({}))) };
      return out;
    },
  };
}

/**
 * The one-switch-core loop on a switch with two data threads (--cores): its two devices on
 * different threads, so every frame is handed from one thread to the other. `cores`: the two
 * switch CPUs (neither the guest's).
 */
export async function xswSwitchLoopCores(size: number, cores: number[]): Promise<Traffic> {
  const loop = new (benchAddon().SwitchLoop)({ frameLen: size, inFlight: LOOP_IN_FLIGHT, switchCpu: cores[0], guestCpu: CPU_GUESTS, switchCores: cores });
  const stop = onCleanup('stop the switch harness', () => loop.stop());
  loop.start();
  return loopTraffic(loop, stop);
}

/** The same loop through DPDK's vhost switch: one guest testpmd with two virtio_user ports in io forwarding, `start tx_first 4`. */
export async function vhostSwitchLoop(huge: Hugepages, size: number): Promise<Traffic> {
  const dir = socketDir();
  const sw = Testpmd.start('vhost-switch', huge, CPU_SWITCH, [`net_vhost0,iface=${dir}/s0,queues=1`, `net_vhost1,iface=${dir}/s1,queues=1`], ['--forward-mode=io'], dir);
  let guest: Testpmd | undefined;
  try {
    await sw.ready();
    guest = Testpmd.start('vhost-guest-loop', huge, CPU_GUESTS, [`virtio_user0,path=${dir}/s0`, `virtio_user1,path=${dir}/s1`], ['--forward-mode=io', `--txpkts=${size}`], dir, false);
    await guest.ready();
    guest.command(`start tx_first ${LOOP_IN_FLIGHT / 32}`);
  } catch (err) {
    for (const t of [guest, sw]) await t?.stop();
    throw err;
  }
  const g = guest;
  return {
    read: async () => {
      const c = await g.rxPacketsAll(2);
      return { t: c.t, count: c.rx };
    },
    ...mergeFacts(testpmdPolls('switch', sw), testpmdPolls('guest', g)),
    stop: async () => {
      for (const t of [guest, sw]) await t?.stop();
    },
  };
}

/** The two ports of the *same guests* rows: a testpmd with two virtio_user ports, each with its own MAC. */
export const SAME_MAC0 = '02:00:00:00:0c:01';
export const SAME_MAC1 = '02:00:00:00:0c:02';

/**
 * The guest of the *same guests* rows, identical for both switches: one
 * testpmd (forwarding lcore on CPU_GUESTS, hugepages) with two virtio_user
 * ports on the sockets s0 and s1 of `dir`, in mac forwarding (what port 0
 * receives leaves port 1 with port 1's MAC as source and port 0's as
 * destination, and the other way round: so the frames pass a switch that
 * checks source MACs and switches by destination), after `start tx_first 4`.
 */
async function sameGuest(huge: Hugepages, dir: string, size: number): Promise<Testpmd> {
  const guest = Testpmd.start('same-guest', huge, CPU_GUESTS, [`virtio_user0,path=${dir}/s0,mac=${SAME_MAC0}`, `virtio_user1,path=${dir}/s1,mac=${SAME_MAC1}`], ['--forward-mode=mac', `--eth-peer=0,${SAME_MAC1}`, `--eth-peer=1,${SAME_MAC0}`, `--txpkts=${size}`], dir, false);
  try {
    await guest.ready();
    guest.command(`start tx_first ${LOOP_IN_FLIGHT / 32}`);
  } catch (err) {
    await guest.stop();
    throw err;
  }
  return guest;
}

function sameGuestTraffic(guest: Testpmd, stop: () => Promise<void>, sw: Pick<Traffic, 'mark' | 'facts'>): Traffic {
  return {
    read: async () => {
      const c = await guest.rxPacketsAll(2);
      return { t: c.t, count: c.rx };
    },
    ...mergeFacts(testpmdPolls('guest', guest), sw),
    stop,
  };
}

/** *Same guests*, xsw: the guest's two virtio_user ports on two vhost-user ports of xsw-backend (--poll busy, alone on CPU_SWITCH). */
export async function xswSameGuests(rig: SimRig, huge: Hugepages, size: number): Promise<Traffic> {
  const dir = socketDir();
  const be = await backendUp(rig, ['--vhost-user', `${dir}/s0,mac=${SAME_MAC0}`, '--vhost-user', `${dir}/s1,mac=${SAME_MAC1}`]);
  let guest: Testpmd | undefined;
  try {
    guest = await sameGuest(huge, dir, size);
    await rig.registered(be, 2);
  } catch (err) {
    await guest?.stop();
    await stopAll([be]);
    throw err;
  }
  const g = guest;
  return sameGuestTraffic(g, async () => {
    await g.stop();
    await stopAll([be]);
  }, backendPolls(rig));
}

/** *Same guests*, DPDK: the same guest on DPDK's vhost switch (testpmd io between two net_vhost ports on CPU_SWITCH). */
export async function vhostSameGuests(huge: Hugepages, size: number): Promise<Traffic> {
  const dir = socketDir();
  const sw = Testpmd.start('vhost-switch', huge, CPU_SWITCH, [`net_vhost0,iface=${dir}/s0,queues=1`, `net_vhost1,iface=${dir}/s1,queues=1`], ['--forward-mode=io'], dir);
  let guest: Testpmd | undefined;
  try {
    await sw.ready();
    guest = await sameGuest(huge, dir, size);
  } catch (err) {
    for (const t of [guest, sw]) await t?.stop();
    throw err;
  }
  const g = guest;
  return sameGuestTraffic(g, async () => {
    for (const t of [g, sw]) await t.stop();
  }, testpmdPolls('switch', sw));
}

/** DPDK's vhost switch: testpmd io between two net_vhost ports; guests are testpmds on virtio_user, txonly → rxonly. */
export async function vhostSwitch(huge: Hugepages, size: number): Promise<Traffic> {
  const dir = socketDir();
  const sw = Testpmd.start('vhost-switch', huge, CPU_SWITCH, [`net_vhost0,iface=${dir}/s0,queues=1`, `net_vhost1,iface=${dir}/s1,queues=1`], ['--forward-mode=io'], dir);
  let rx: Testpmd | undefined;
  let tx: Testpmd | undefined;
  try {
    await sw.ready();
    rx = Testpmd.start('vhost-guest-rx', huge, CPU_GUESTS, [`virtio_user0,path=${dir}/s1`], ['--forward-mode=rxonly'], dir);
    await rx.ready();
    tx = Testpmd.start('vhost-guest-tx', huge, CPU_GUESTS, [`virtio_user0,path=${dir}/s0`], ['--forward-mode=txonly', `--txpkts=${size}`], dir);
    await tx.ready();
  } catch (err) {
    for (const t of [tx, rx, sw]) await t?.stop();
    throw err;
  }
  const rxp = rx;
  return {
    read: async () => {
      const c = await rxp.rxPackets(0);
      return { t: c.t, count: c.rx };
    },
    stop: async () => {
      for (const t of [tx, rx, sw]) await t?.stop();
    },
  };
}

/** One ring hop: testpmd virtio_user txonly → testpmd vhost rxonly (the upper bound of a single hop). */
export async function vhostLink(huge: Hugepages, size: number): Promise<Traffic> {
  const dir = socketDir();
  const host = Testpmd.start('vhost-link-host', huge, CPU_SWITCH, [`net_vhost0,iface=${dir}/s0,queues=1`], ['--forward-mode=rxonly'], dir);
  let guest: Testpmd | undefined;
  try {
    await host.ready();
    guest = Testpmd.start('vhost-link-guest', huge, CPU_GUESTS, [`virtio_user0,path=${dir}/s0`], ['--forward-mode=txonly', `--txpkts=${size}`], dir);
    await guest.ready();
  } catch (err) {
    for (const t of [guest, host]) await t?.stop();
    throw err;
  }
  return {
    read: async () => {
      const c = await host.rxPackets(0);
      return { t: c.t, count: c.rx };
    },
    stop: async () => {
      for (const t of [guest, host]) await t?.stop();
    },
  };
}

function blaster(ns: string, dev: string, size: number, dst: string, vlan: number | undefined, cpu: number): Child {
  return start('generator', 'ip', ['netns', 'exec', ns, process.execPath, BLAST, dev, String(size), dst, MAC_WIRE, vlan === undefined ? '-' : String(vlan), String(cpu)]);
}

/** The kernel's veth pair between two namespaces: the generator in p1 (CPU_GUESTS), counted at p2's veth. */
export async function kernelVeth(size: number): Promise<Traffic> {
  const gen = blaster(NS_P1, 'xswbp1', size, MAC_UNKNOWN, undefined, CPU_GUESTS);
  await sleep(200);
  if (!gen.running) throw new Error(`the frame generator exited: ${gen.tail()}`);
  return {
    read: async () => {
      const c = await linkRxPackets(NS_P2, 'xswbp2');
      return { t: c.t, count: c.rx };
    },
    stop: () => gen.stop(),
  };
}

/** NIC → guest: the generator sends to vm1's MAC with VLAN 1000 on the veth; the back end (AF_PACKET) switches into vm1 (rxonly). */
export async function xswNicToGuest(rig: SimRig, size: number): Promise<Traffic> {
  const be = await backendUp(rig, ['-p', 'xswbn0'], NS_NIC);
  let rx: Child | undefined;
  let gen: Child | undefined;
  try {
    // The generator and the receiver share CPU_GUESTS: the receiver sleeps when its ring is empty (adaptive).
    rx = await rig.front('vm1', CPU_GUESTS, ['--mac', MAC1, '--fwd', 'rxonly', '--poll', 'adaptive']);
    await rig.registered(be, 1);
    gen = blaster(NS_NIC, 'xswbn1', size, MAC1, 1000, CPU_GUESTS);
  } catch (err) {
    await stopAll([gen, rx, be]);
    throw err;
  }
  const rxp = rx;
  return {
    read: async () => {
      const c = await frontCounter(rxp);
      return { t: c.t, count: c.rx };
    },
    stop: () => stopAll([gen, rx, be]),
  };
}

/** Guest → NIC: vm1 txonly to an unknown MAC; the back end sends it out of the veth (tagged); counted at the far end. */
export async function xswGuestToNic(rig: SimRig, size: number): Promise<Traffic> {
  const be = await backendUp(rig, ['-p', 'xswbn0'], NS_NIC);
  let tx: Child | undefined;
  try {
    tx = await rig.front('vm1', CPU_GUESTS, ['--mac', MAC1, '--fwd', 'txonly', '--txpkts', String(size), '--eth-peer', MAC_UNKNOWN]);
    await rig.registered(be, 1);
  } catch (err) {
    await stopAll([tx, be]);
    throw err;
  }
  return {
    read: async () => {
      const c = await linkRxPackets(NS_NIC, 'xswbn1');
      return { t: c.t, count: c.rx };
    },
    stop: () => stopAll([tx, be]),
  };
}

export interface LatencyResult {
  system: string;
  rttUs: number[];
  lost: number;
  crossBeforeNs: number;
  crossAfterNs: number;
  placement: Placement;
}

/** xsw round trip: the pinger guest (two devices, CPU_GUESTS) through the back end (CPU_SWITCH) and back. */
export async function xswLatency(rig: SimRig, count: number, warmup: number): Promise<LatencyResult> {
  const crossBeforeNs = crossingNs();
  const be = await backendUp(rig, []);
  let pinger: Child | undefined;
  try {
    pinger = await rig.guest('vm3', CPU_GUESTS, PINGER, [String(count), String(warmup), '64']);
    const exit = await pinger.exited;
    if (exit.code !== 0) throw new Error(`the latency pinger failed: ${pinger.tail()}`);
  } finally {
    await stopAll([pinger, be]);
  }
  const j = JSON.parse(pinger.out.find((l) => l.startsWith('{')) ?? '{}') as { rtt_us?: number[]; lost?: number };
  if (!j.rtt_us) throw new Error(`the latency pinger printed no result: ${pinger.tail()}`);
  const crossAfterNs = crossingNs();
  return { system: 'xsw', rttUs: j.rtt_us, lost: j.lost ?? 0, crossBeforeNs, crossAfterNs, placement: placementOf(crossBeforeNs, crossAfterNs) };
}

/**
 * The wake-up round trip: the back end in --poll interrupt, an echo guest
 * (xsw-front --fwd macswap --poll interrupt), both asleep before each ping
 * (a 1 ms pause); the pinger's device A (JS, spinning, alone on CPU_GUESTS)
 * pings the echo guest, which shares CPU_SWITCH with the back end.
 * Each round trip wakes the back end (A's kick), the echo guest (the back
 * end's event), and the back end again (the echo guest's kick).
 */
export async function xswWakeupLatency(rig: SimRig, count: number, warmup: number): Promise<LatencyResult> {
  const crossBeforeNs = crossingNs();
  const be = await backendUp(rig, ['--poll', 'interrupt']);
  let echo: Child | undefined;
  let pinger: Child | undefined;
  try {
    // The two sleepers share the switch's CPU; the spinning pinger has the other to itself.
    echo = await rig.front('vm2', CPU_SWITCH, ['--poll', 'interrupt', '--mac', MAC2, '--fwd', 'macswap']);
    pinger = await rig.guest('vm3', CPU_GUESTS, PINGER, [String(count), String(warmup), '64', '1000', MAC2]);
    const exit = await pinger.exited;
    if (exit.code !== 0) throw new Error(`the wake-up pinger failed: ${pinger.tail()}`);
  } finally {
    await stopAll([pinger, echo, be]);
  }
  const j = JSON.parse(pinger.out.find((l) => l.startsWith('{')) ?? '{}') as { rtt_us?: number[]; lost?: number };
  if (!j.rtt_us) throw new Error(`the wake-up pinger printed no result: ${pinger.tail()}`);
  const crossAfterNs = crossingNs();
  return { system: 'xsw interrupt', rttUs: j.rtt_us, lost: j.lost ?? 0, crossBeforeNs, crossAfterNs, placement: placementOf(crossBeforeNs, crossAfterNs) };
}

/**
 * The wake-up floor: xswWakeupLatency's pattern with no xsw code
 * (bench/native/wakeup_floor.cc): a spinning pinger on CPU_GUESTS wakes
 * process A (asleep in ppoll), A wakes B (asleep in read), B wakes A, A
 * answers; A and B share CPU_SWITCH; a 1 ms pause before each ping; eventfds.
 */
export async function wakeupFloor(count: number, warmup: number): Promise<LatencyResult> {
  const crossBeforeNs = crossingNs();
  const exe = path.join(path.dirname(benchAddonPath()), 'xsw_wakeup_floor');
  if (!fs.existsSync(exe)) throw new Error(`${exe} is missing: run 'npm run build:bench'`);
  const p = start('wake-up floor', exe, [String(count), String(warmup), '1000', String(CPU_GUESTS), String(CPU_SWITCH)]);
  const exit = await p.exited;
  if (exit.code !== 0) throw new Error(`the wake-up floor failed: ${p.tail()}`);
  const j = JSON.parse(p.out.find((l) => l.startsWith('{')) ?? '{}') as { rtt_us?: number[]; lost?: number };
  if (!j.rtt_us) throw new Error(`the wake-up floor printed no result: ${p.tail()}`);
  const crossAfterNs = crossingNs();
  return { system: 'eventfds, no xsw', rttUs: j.rtt_us, lost: j.lost ?? 0, crossBeforeNs, crossAfterNs, placement: placementOf(crossBeforeNs, crossAfterNs) };
}

/** The data plane's own round trip: the switch harness with one frame in flight, A → switch → B → switch → A. */
export async function xswCoreLatency(ms: number): Promise<LatencyResult> {
  const crossBeforeNs = crossingNs();
  const loop = new (benchAddon().SwitchLoop)({ frameLen: 64, switchCpu: CPU_SWITCH, guestCpu: CPU_GUESTS, latency: true });
  const stop = onCleanup('stop the switch harness', () => loop.stop());
  loop.start();
  await sleep(ms);
  await stop();
  const all = Array.from(loop.roundTrips());
  const rttUs = all.slice(Math.floor(all.length / 10)); // the first tenth is warm-up
  const crossAfterNs = crossingNs();
  return { system: 'xsw switch core', rttUs, lost: 0, crossBeforeNs, crossAfterNs, placement: placementOf(crossBeforeNs, crossAfterNs) };
}

/** The kernel's round trip: ping (ICMP echo, answered by the kernel) between the two veth namespaces. */
export async function vethLatency(count: number): Promise<LatencyResult> {
  const crossBeforeNs = crossingNs();
  await run('ip', ['netns', 'exec', NS_P1, 'taskset', '-c', String(CPU_GUESTS), 'ping', '-n', '-q', '-c', '50', '-i', '0.01', '10.211.0.2']); // warm-up (ARP, caches)
  const p = await mustRun('ip', ['netns', 'exec', NS_P1, 'taskset', '-c', String(CPU_GUESTS), 'ping', '-n', '-c', String(count), '-i', '0.002', '10.211.0.2']);
  const rtt = [...p.out.matchAll(/time=([0-9.]+) ms/g)].map((m) => Number(m[1]) * 1000);
  const crossAfterNs = crossingNs();
  return { system: 'kernel veth (ping)', rttUs: rtt, lost: count - rtt.length, crossBeforeNs, crossAfterNs, placement: placementOf(crossBeforeNs, crossAfterNs) };
}

export interface AttachResult {
  /** From `event_type_start_0 = 1` appearing in XenStore to the back end's "registered" log line (ms). */
  attachMs: number[];
  /** From starting xsw-front (8192 mbufs) to "registered" (ms): process start, grants, publication, attach. */
  startToAttachMs: number[];
}

/** Attach time of a guest with 8192 mbufs, `reps` times, with the back end already running. */
export async function xswAttach(rig: SimRig, reps: number): Promise<AttachResult> {
  const domid = await rig.domain('vm4');
  const be = await backendUp(rig, []);
  const xs = await XenStoreClient.connect({ path: rig.dom0Socket });
  const startKey = `${dpdkDir(domid)}/${deviceKeys(0).start}`;
  const announced: number[] = [];
  xs.on('watch', (path: string) => {
    if (path === startKey) {
      const t = Date.now();
      void xs.tryRead(startKey).then((v) => v === '1' && announced.push(t), () => undefined);
    }
  });
  const out: AttachResult = { attachMs: [], startToAttachMs: [] };
  try {
    await xs.watch(`/local/domain/${domid}/control`, 'bench');
    for (let i = 0; i < reps; i++) {
      const from = be.err.length;
      const seen = announced.length;
      const t0 = Date.now();
      const guest = await rig.front('vm4', CPU_GUESTS, ['--mac', '02:00:00:00:04:01', '--fwd', 'rxonly', '--poll', 'adaptive', '--nb-mbuf', '8192']);
      try {
        const [line] = await rig.registered(be, 1, 30000, from);
        const when = (JSON.parse(be.err[line]) as { time: number }).time;
        for (let k = 0; k < 50 && announced.length === seen; k++) await sleep(10);
        if (announced.length > seen) out.attachMs.push(when - announced[seen]);
        out.startToAttachMs.push(when - t0);
      } finally {
        const detachFrom = be.err.length;
        await guest.stop(5000);
        await be.waitLine('err', /detached domain/, { from: detachFrom, timeoutMs: 5000 }).catch(() => undefined);
      }
    }
  } finally {
    xs.close();
    await be.stop(3000);
  }
  return out;
}

export type PollMode = 'busy' | 'adaptive' | 'interrupt';

export interface IdleResult {
  mode: PollMode;
  seconds: number;
  /** CPU used over the interval, in % of one CPU. */
  backendPct: number;
  guestsPct: number;
}

/**
 * What an idle switch costs: the back end and two attached guests (xsw-front
 * rxonly, nothing sent, no stats printed), all in poll mode `mode`, measured
 * over `seconds` once both are registered. Each process's CPU time comes from
 * /proc (its whole process tree: a guest is `xsw-sim exec` and its child).
 */
export async function xswIdle(rig: SimRig, mode: PollMode, seconds: number): Promise<IdleResult> {
  const be = await backendUp(rig, ['--poll', mode]);
  const guests: Child[] = [];
  try {
    for (const [name, mac] of [['vm5', '02:00:00:00:05:01'], ['vm6', '02:00:00:00:06:01']]) {
      guests.push(await rig.guest(name, CPU_GUESTS, CLI.front, ['--poll', mode, '--log-level', 'warn', '--mac', mac, '--fwd', 'rxonly']));
    }
    await rig.registered(be, 2);
    await sleep(1000); // start-up work done
    const cpu = () => ({ be: processTreeCpuSeconds(be.pid!), guests: guests.reduce((a, g) => a + processTreeCpuSeconds(g.pid!), 0), t: performance.now() });
    const a = cpu();
    await sleep(seconds * 1000);
    const b = cpu();
    const wall = (b.t - a.t) / 1000;
    for (const p of [be, ...guests]) if (!p.running) throw new Error(`${p.name} exited during the idle measurement: ${p.tail()}`);
    return { mode, seconds: wall, backendPct: ((b.be - a.be) / wall) * 100, guestsPct: ((b.guests - a.guests) / wall) * 100 };
  } finally {
    await stopAll([...guests, be]);
  }
}

export interface PacedResult {
  mode: PollMode;
  rate: number;
  sent: number;
  received: number;
}

/**
 * The three processes with the sender paced: vm1 sends `count` 64-byte
 * frames at `rate` per second (xsw-front --rate --count), everything in poll
 * mode `mode`; how many of them vm2 received once traffic has drained.
 */
export async function xswPaced(rig: SimRig, mode: PollMode, rate: number, count: number): Promise<PacedResult> {
  const be = await backendUp(rig, ['--poll', mode]);
  let rx: Child | undefined;
  let tx: Child | undefined;
  try {
    rx = await rig.front('vm2', CPU_GUESTS, ['--poll', mode, '--mac', MAC2, '--fwd', 'rxonly']);
    await rig.registered(be, 1);
    tx = await rig.front('vm1', CPU_GUESTS, ['--poll', mode, '--mac', MAC1, '--fwd', 'txonly', '--txpkts', '64', '--eth-peer', MAC2, '--rate', String(rate), '--count', String(count)]);
    await rig.registered(be, 2);
    const deadline = Date.now() + Math.max(30000, (count / rate) * 4000);
    let sent = 0;
    while (sent < count) {
      if (Date.now() > deadline) throw new Error(`the paced sender sent ${sent} of ${count} frames in time: ${tx.tail()}`);
      sent = (await frontCounter(tx)).tx;
    }
    await sleep(1000); // what was in flight has arrived
    const received = (await frontCounter(rx)).rx;
    return { mode, rate, sent, received };
  } finally {
    await stopAll([tx, rx, be]);
  }
}
