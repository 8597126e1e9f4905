// xsw-front's command line (commander): parsing, per-option checks with a
// sentence for people, and the cross-option rules.
import { Command, InvalidArgumentError, Option } from 'commander';
import { FWD_MODES, FwdMode, PollMode } from '../native/front';
import { FrontError } from './errors';
import { EthPeer, parseDeviceMac, parseEthPeer } from './mac';

export interface FrontConfig {
  macs: Buffer[];
  devices: number;
  fwd: FwdMode;
  peers: EthPeer[];
  txpkts: number;
  burst: number;
  rate: number;
  count: number;
  tap?: string;
  nbMbuf: number;
  ringSize: number;
  maxPktLen?: number;
  poll: PollMode;
  /** Offer the back end an event channel (false: --no-notify, a polled device as DPDK's). */
  notify: boolean;
  stats: number;
  json: boolean;
  platform: 'auto' | 'xen' | 'sim';
  logLevel: string;
  verify: boolean;
  duration?: number;
}

const MAX_FRAME = 9018;

function integer(name: string, min: number, max: number, hint: string) {
  return (text: string): number => {
    if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
      throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}: ${hint}.`);
    }
    return Number(text);
  };
}

function seconds(name: string) {
  return (text: string): number => {
    const v = Number(text);
    if (text.trim() === '' || !Number.isFinite(v) || v < 0) {
      throw new InvalidArgumentError(`${name} must be a number of seconds, 0 or more: e.g. ${name} 5.`);
    }
    return v;
  };
}

function collectMac(text: string, prev: Buffer[]): Buffer[] {
  try {
    return [...prev, parseDeviceMac(text, '--mac')];
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message + '.');
  }
}

function collectPeer(text: string, prev: EthPeer[]): EthPeer[] {
  try {
    return [...prev, parseEthPeer(text)];
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message + '.');
  }
}

function ringSize(text: string): number {
  // The schema does not publish the ring size: the back end derives it from the
  // ring's page count, which is unique only from 256 entries up (every smaller
  // ring fits in 2 pages).
  const v = integer('--ring-size', 256, 32768, 'use a power of two from 256 to 32768')(text);
  if ((v & (v - 1)) !== 0) throw new InvalidArgumentError(`--ring-size must be a power of two (${v} is not): use e.g. 256.`);
  return v;
}

/** The data room of one mbuf: frames above it span several buffers. */
const DATA_ROOM = 2048;

/**
 * The default --ring-size: the largest power of two up to 4096 whose ring and
 * one burst of 32 fit each device's share of the mbufs, and at least 256. A
 * receiver whose CPU is shared (with its sender, other guests, the host) takes
 * at most a ring of frames per turn on it, so the ring, not its speed, caps
 * what it receives: 256 entries last 85 µs at 3 Mpps (docs/PERFORMANCE.md).
 */
export function defaultRingSize(nbMbuf: number, devices: number, maxPktLen?: number): number {
  const perDevice = Math.floor(nbMbuf / devices);
  const segs = Math.ceil((maxPktLen ?? DATA_ROOM) / DATA_ROOM);
  let size = 4096;
  while (size > 256 && size + 32 * segs > perDevice) size /= 2;
  return size;
}

export function buildProgram(): Command {
  return new Command()
    .name('xsw-front')
    .description(
      "The guest side of xsw: grants a mempool and virtio rings to dom0, publishes them in XenStore (DPDK's control/dpdk keys) and runs a forwarding engine per device on a native thread.",
    )
    .option('--mac <mac>', 'MAC of a device, xx:xx:xx:xx:xx:xx (repeat for several devices)', collectMac, [] as Buffer[])
    .option('--devices <n>', 'number of devices; those without --mac get 00:16:3e:<domid>:<index>', integer('--devices', 1, 32, 'use 1 to 32'))
    .addOption(new Option('--fwd <mode>', 'forwarding engine').choices(FWD_MODES as string[]).default('io'))
    .option('--eth-peer <[N,]mac>', "destination MAC for mac and txonly modes, for device N or all (testpmd's N,MAC)", collectPeer, [] as EthPeer[])
    .option('--txpkts <bytes>', 'txonly frame size', integer('--txpkts', 34, MAX_FRAME, 'a test frame needs 34 bytes, at most 9018'), 64)
    .option('--burst <n>', 'packets per burst', integer('--burst', 1, 32, 'use 32'), 32)
    .option('--rate <pps>', 'txonly: at most this many frames per second (0: no limit)', integer('--rate', 0, 1e9, 'e.g. --rate 100000'), 0)
    .option('--count <n>', 'txonly: stop sending after this many frames (0: no limit)', integer('--count', 0, Number.MAX_SAFE_INTEGER, 'e.g. --count 1000'), 0)
    .option('--tap <name>', 'tap mode: the TAP interface to bridge the device to (created if missing)')
    .option('--nb-mbuf <n>', 'mbufs in the mempool, shared out evenly between the devices', integer('--nb-mbuf', 1, 16777216, 'e.g. 8192'), 8192)
    .option('--ring-size <n>', 'entries per vring (power of two; default: the largest up to 4096 that each device\'s mbufs fill, at least 256)', ringSize)
    .option('--max-pkt-len <n>', 'largest frame; above 2048, RX chains span several buffers (jumbo)', integer('--max-pkt-len', 14, MAX_FRAME, 'e.g. 9018 for jumbo frames'))
    .addOption(new Option('--poll <mode>', 'busy: spin always; adaptive: sleep on the back end\'s notifications after a short spin when idle; interrupt: at once').choices(['busy', 'adaptive', 'interrupt']).default('adaptive'))
    .option('--no-notify', 'offer the back end no event channel: the device is polled, as DPDK\'s front end')
    .option('--stats <sec>', 'print per-device counters every N seconds (0: only at exit)', seconds('--stats'), 0)
    .option('--json', 'print stats as one JSON object per line')
    .addOption(new Option('--platform <platform>', 'grant platform').choices(['auto', 'xen', 'sim']).default('auto').env('XSW_PLATFORM'))
    .addOption(new Option('--log-level <level>', 'pino log level (logs go to stderr)').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'))
    .option('--verify', 'rxonly, txonly: check received test frames and count rx_bad and rx_out_of_order')
    .option('--duration <sec>', 'stop by itself after N seconds', seconds('--duration'));
}

/** Applies the rules that involve several options; throws FrontError with the fix. */
export function checkConfig(raw: Record<string, unknown>, fwdGiven: boolean): FrontConfig {
  const macs = raw.mac as Buffer[];
  const devices = (raw.devices as number | undefined) ?? macs.length;
  if (devices === 0) throw new FrontError('no device to create: give --mac xx:xx:xx:xx:xx:xx (or --devices N)');
  if (devices < macs.length) {
    throw new FrontError(`--devices ${devices} is fewer than the ${macs.length} --mac options given: drop --devices or raise it`);
  }
  const seen = new Set(macs.map((m) => m.toString('hex')));
  if (seen.size !== macs.length) throw new FrontError('the same --mac is given twice: each device needs its own MAC address');
  let fwd = raw.fwd as FwdMode;
  const tap = raw.tap as string | undefined;
  if (tap !== undefined && !fwdGiven) fwd = 'tap';
  if (fwd === 'tap' && tap === undefined) throw new FrontError('--fwd tap needs the TAP interface to use: add --tap NAME');
  if (tap !== undefined && fwd !== 'tap') throw new FrontError(`--tap only works with --fwd tap, not --fwd ${fwd}: drop one of them`);
  if (fwd === 'tap' && devices !== 1) throw new FrontError('tap mode bridges exactly one device to its TAP interface: give one --mac');
  if (raw.verify && fwd !== 'rxonly' && fwd !== 'txonly') {
    throw new FrontError('--verify checks received test frames in rxonly mode or txonly mode: add --fwd rxonly (or --fwd txonly)');
  }
  const peers = raw.ethPeer as EthPeer[];
  for (const p of peers) {
    if (p.device !== undefined && p.device >= devices) {
      throw new FrontError(`--eth-peer names device ${p.device} but there are only ${devices} (numbered from 0): fix the N in N,MAC`);
    }
  }
  const maxPktLen = raw.maxPktLen as number | undefined;
  const txpkts = raw.txpkts as number;
  const limit = maxPktLen ?? DATA_ROOM;
  if (fwd === 'txonly' && txpkts > limit) {
    throw new FrontError(`--txpkts ${txpkts} is larger than the largest frame (${limit} bytes): raise --max-pkt-len to at least ${txpkts}`);
  }
  return {
    macs,
    devices,
    fwd,
    peers,
    txpkts,
    burst: raw.burst as number,
    rate: raw.rate as number,
    count: raw.count as number,
    tap,
    nbMbuf: raw.nbMbuf as number,
    ringSize: (raw.ringSize as number | undefined) ?? defaultRingSize(raw.nbMbuf as number, devices, maxPktLen),
    maxPktLen,
    poll: raw.poll as PollMode,
    notify: raw.notify !== false,
    stats: raw.stats as number,
    json: Boolean(raw.json),
    platform: raw.platform as FrontConfig['platform'],
    logLevel: raw.logLevel as string,
    verify: Boolean(raw.verify),
    duration: raw.duration as number | undefined,
  };
}

/** Parses argv (node, script, args...); commander prints its own errors and exits 1. */
export function parseArgs(argv: string[]): FrontConfig {
  const program = buildProgram();
  program.parse(argv);
  const fwdGiven = program.getOptionValueSource('fwd') === 'cli';
  return checkConfig(program.opts(), fwdGiven);
}

/** The eth-peer of device `index`: its own N,MAC, else a MAC without N, else 02:00:00:00:00:00. */
export function peerFor(cfg: FrontConfig, index: number): Buffer {
  const own = cfg.peers.filter((p) => p.device === index).pop();
  const common = cfg.peers.filter((p) => p.device === undefined).pop();
  return (own ?? common)?.mac ?? Buffer.from([0x02, 0, 0, 0, 0, 0]);
}
