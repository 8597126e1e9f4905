// Typed view of the bench's native helpers (native/napi/bench_napi.cc).
import { addon } from '../native/binding';

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
  /** Latency mode, after stop(): every round trip recorded (µs). */
  roundTrips(): Float64Array;
}

interface BenchAddon {
  crossingTime(cpuA: number, cpuB: number, roundTrips: number, timeoutMs: number): Crossing;
  memcpyBandwidth(len: number, arenaBytes: number, stride: number, copies: number, rounds: number, cpu: number): CopyRate;
  Blaster: new (ifname: string, frame: Buffer, cpu: number) => NativeBlaster;
  SwitchLoop: new (opts: { frameLen?: number; inFlight?: number; switchCpu?: number; guestCpu?: number; latency?: boolean }) => NativeSwitchLoop;
}

export function benchAddon(): BenchAddon {
  return addon().bench as BenchAddon;
}
