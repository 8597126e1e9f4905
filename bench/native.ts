// The bench's own addon, build/Release/xsw_bench.node (bench/native/, built
// by `npm run build:bench`, which `npm run bench` runs first): machine
// probes, the AF_PACKET frame generator and the switch-core harness. The
// product addon xsw.node has none of these. XSW_BENCH_ADDON overrides the path.
import path from 'node:path';
import { loadAddon } from '../native/binding';

export interface Crossing {
  /** One-way time of a cache line CPU a → CPU b, median of the probe's batches (ns). */
  medianNs: number;
  minNs: number;
  maxNs: number;
  batches: number;
}

export interface CopyRate {
  nsPerCopy: number;
  gbytesPerS: number;
}

export interface NativeBlaster {
  start(): void;
  /** Stops the sending thread; returns the frames the kernel accepted. */
  stop(): number;
  sent(): number;
}

export interface NativeSwitchLoop {
  start(): void;
  stop(): void;
  /** Frames both devices have received. */
  received(): number;
  /** Frames the switch dropped. */
  drops(): number;
  /** Poll counts so far (absent in bench addons built before it existed, e.g. another checkout's with --xsw-b): the guest thread's RX polls (and empty ones), the switch's polls of the two devices' TX rings and the frames it took. */
  polls?(): { guestPolls: number; guestEmpty: number; switchPolls: number; switchFrames: number; switchBusyCycles?: number; switchCycles?: number; guestBusyCycles?: number; guestCycles?: number };
  /** Latency mode, after stop(): every round trip recorded (µs). */
  roundTrips(): Float64Array;
}

export interface BenchAddon {
  crossingTime(cpuA: number, cpuB: number, roundTrips: number, timeoutMs: number): Crossing;
  memcpyBandwidth(len: number, arenaBytes: number, stride: number, copies: number, rounds: number, cpu: number): CopyRate;
  Blaster: new (ifname: string, frame: Buffer, cpu: number) => NativeBlaster;
  /** idleDevices: devices of other guests attached that never send (0..62). */
  SwitchLoop: new (opts: { frameLen?: number; inFlight?: number; switchCpu?: number; guestCpu?: number; latency?: boolean; idleDevices?: number; switchCores?: number[] }) => NativeSwitchLoop;
}

let cached: BenchAddon | undefined;

/** Where the bench addon is loaded from. */
export function benchAddonPath(): string {
  return process.env.XSW_BENCH_ADDON ?? path.join(__dirname, '..', '..', 'build', 'Release', 'xsw_bench.node');
}

export function benchAddon(): BenchAddon {
  cached ??= loadAddon<BenchAddon>('bench', benchAddonPath(), "'npm run build:bench'");
  return cached;
}

/** Another checkout's bench addon (--xsw-b): its switch harness links that checkout's switch and PMD. */
export function benchAddonOf(root: string): BenchAddon {
  return loadAddon<BenchAddon>('bench', path.join(root, 'build', 'Release', 'xsw_bench.node'), `'npm run build:bench' in ${root}`);
}
