// Command line of xsw-backend, parsed into a plain options object. Pure: it
// never exits or prints; a bad flag becomes an OptionError whose message is one
// sentence for the person who typed it.
import { Command, CommanderError, Option } from 'commander';
import type { MacPolicy } from './identity';
import { parseVhostUserSpec, VhostUserSpec } from './vhost-options';

export type Platform = 'xen' | 'sim' | 'auto';
export type Poll = 'busy' | 'adaptive' | 'interrupt';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface BackendOptions {
  vm2vm: boolean;
  /** Stats interval in seconds; 0 = off. */
  stats: number;
  json: boolean;
  /** NIC: an interface name (AF_PACKET), `tap:NAME` or `vhost-net:NAME`; undefined = vm2vm only. */
  port?: string;
  platform: Platform;
  poll: Poll;
  mtu: number;
  logLevel: LogLevel;
  maxDevicesPerGuest: number;
  maxPagesPerGuest: number;
  /** Switch-wide device slots (VLAN 1000 + slot), like DPDK's 64 VMDQ pools. */
  maxDevices: number;
  /** Switch-wide cap on pages mapped for all guests together. */
  maxPages: number;
  /** Who decides a device's MAC: the guest (unless dom0 assigned one), or dom0 only. */
  macPolicy: MacPolicy;
  /** Seconds to keep reconnecting to a lost XenStore before giving up (0: give up at once). */
  xenstoreRetry: number;
  /** The network the uplink carries untagged (its native VLAN); undefined: every network tagged. */
  nativeVlan?: number;
  /** The network of devices dom0 assigned none; undefined: the guide's 1000 + slot. */
  defaultNetwork?: number;
  /** The control socket's path; undefined: next to the instance lock (backend/control.ts). */
  controlSocket?: string;
  /** The control socket's file mode (0o600: root only). */
  controlMode: number;
  /** Serve Prometheus metrics on this address (backend/metrics.ts); undefined: off. */
  metrics?: { host: string; port: number };
  /** Serve stock netfront guests' vifs (backend/vif); false leaves them to another back end. */
  netif: boolean;
  /** vhost-user ports (--vhost-user, repeatable). */
  vhostUser: VhostUserSpec[];
  /** Data threads, one pinned to each CPU id (--cores); undefined: one thread, not pinned. */
  cores?: number[];
}

export class OptionError extends Error {
  /** The exit code: 0 for --help/--version, 2 for a usage error. */
  constructor(message: string, readonly exitCode = 2, readonly output = '') {
    super(message);
    this.name = 'OptionError';
  }
}

export const DEFAULTS: BackendOptions = {
  vm2vm: true,
  stats: 0,
  json: false,
  platform: 'auto',
  poll: 'adaptive',
  mtu: 1500,
  logLevel: 'info',
  // 64 slots / 8 = at least 8 guests always fit, each at its full allowance.
  maxDevicesPerGuest: 8,
  maxPagesPerGuest: 65536,
  maxDevices: 64,
  // 8 guests at the full per-guest page allowance (2 GiB of 4 KiB pages).
  maxPages: 8 * 65536,
  macPolicy: 'guest',
  xenstoreRetry: 60,
  controlMode: 0o600,
  netif: true,
  vhostUser: [],
};

function integer(flag: string, min: number, max: number): (v: string) => number {
  return (v: string) => {
    if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) {
      throw new OptionError(`${flag} takes a whole number from ${min} to ${max}, not "${v}".`);
    }
    return Number(v);
  };
}

// --cores: CPU ids and ranges, "0,1" or "1-3" or "0,2-3"; each once, at most 16 in all.
// Whether this process may run on them is checked when the switch starts.
export function parseCores(v: string): number[] {
  const bad = () => new OptionError(`--cores takes CPU ids and ranges like 0,1 or 1-3, not "${v}".`);
  const out: number[] = [];
  for (const part of v.split(',')) {
    const m = /^([0-9]{1,4})(?:-([0-9]{1,4}))?$/.exec(part);
    if (!m) throw bad();
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (last < first) throw bad();
    for (let c = first; c <= last; c++) {
      if (out.includes(c)) throw new OptionError(`--cores lists CPU ${c} twice; give each CPU once.`);
      out.push(c);
      if (out.length > 16) throw new OptionError(`--cores "${v}" lists more than 16 CPUs; give at most 16.`);
    }
  }
  return out;
}

// A network: a VLAN id 1..4094 outside 1000..1063, the VLANs the switch gives devices itself.
function network(flag: string): (v: string) => number {
  return (v: string) => {
    if (!/^[1-9][0-9]{0,3}$/.test(v) || Number(v) > 4094) {
      throw new OptionError(`${flag} takes a VLAN id from 1 to 4094, not "${v}".`);
    }
    const n = Number(v);
    if (n >= 1000 && n < 1064) {
      throw new OptionError(`${flag} ${n} is in the range the switch gives devices itself (1000-1063); use another VLAN id.`);
    }
    return n;
  };
}

function vm2vmValue(v: string): boolean {
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  throw new OptionError(`--vm2vm takes 0 or 1 (or use --no-vm2vm), not "${v}".`);
}

function port(v: string): string {
  const name = v.replace(/^(tap|vhost-net):/, '');
  // Linux interface names: 1..15 bytes, no '/', whitespace or ':' (IFNAMSIZ 16).
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) {
    throw new OptionError(`-p/--port takes an interface name (up to 15 letters, digits, '.', '-', '_'), tap:NAME or vhost-net:NAME, not "${v}".`);
  }
  return v;
}

function controlMode(v: string): number {
  if (!/^0?[0-7]{3}$/.test(v) || (parseInt(v, 8) & 0o600) !== 0o600 || (parseInt(v, 8) & 0o007) !== 0) {
    throw new OptionError(`--control-mode takes an octal file mode that lets the owner read and write and others nothing, such as 0600 or 0660, not "${v}".`);
  }
  return parseInt(v, 8);
}

function controlSocket(v: string): string {
  if (v === '' || v.length > 107) throw new OptionError(`--control-socket takes a path of 1 to 107 bytes (a unix socket's limit), not "${v}".`);
  return v;
}

/** [ADDR:]PORT: an IPv4 address or host name (default 127.0.0.1), or [IPv6]:PORT. */
export function parseMetricsAddress(v: string): { host: string; port: number } {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):)?([0-9]{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new OptionError(`--metrics takes [ADDR:]PORT (such as 9469 or 0.0.0.0:9469), not "${v}".`);
  }
  const host = m[1] === undefined ? '127.0.0.1' : m[1].replace(/^\[(.*)\]$/, '$1');
  return { host, port };
}

function vhostUserValue(v: string, prev: VhostUserSpec[]): VhostUserSpec[] {
  let spec: VhostUserSpec;
  try {
    spec = parseVhostUserSpec(v);
  } catch (err) {
    throw new OptionError((err as Error).message);
  }
  if (prev.some((p) => p.path === spec.path)) throw new OptionError(`--vhost-user ${spec.path} is given twice; give each socket once.`);
  return [...prev, spec];
}

function buildCommand(): Command {
  return new Command('xsw-backend')
    .description('Switch packets between Xen guests running xsw-front, and between them and a NIC.')
    .option('--vm2vm [0|1]', 'switch guest-to-guest traffic in software (default on)', vm2vmValue)
    .option('--no-vm2vm', 'send all guest traffic to the NIC')
    .option('--stats <seconds>', 'print device statistics every N seconds (0 = off)', integer('--stats', 0, 86400), DEFAULTS.stats)
    .option('--json', 'print statistics as one JSON object per interval', false)
    .option('-p, --port <ifname|tap:NAME|vhost-net:NAME>', 'the NIC: an interface (AF_PACKET), a TAP device, or a TAP driven through /dev/vhost-net rings; none = vm2vm only', port)
    .addOption(new Option('--platform <platform>', 'grant platform').choices(['xen', 'sim', 'auto']).default(DEFAULTS.platform))
    .addOption(new Option('--poll <mode>', 'data-plane polling: busy spins; adaptive (default) and interrupt sleep on notifications when idle, after a short spin or at once').choices(['busy', 'adaptive', 'interrupt']).default(DEFAULTS.poll))
    .option('--mtu <bytes>', 'largest frame payload accepted', integer('--mtu', 68, 9000), DEFAULTS.mtu)
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
        .default(DEFAULTS.logLevel),
    )
    .option('--max-devices-per-guest <n>', 'devices one guest may attach', integer('--max-devices-per-guest', 1, 32), DEFAULTS.maxDevicesPerGuest)
    .option('--max-pages-per-guest <n>', 'pages one guest may have mapped', integer('--max-pages-per-guest', 1, 1 << 24), DEFAULTS.maxPagesPerGuest)
    .option('--max-devices <n>', 'devices across all guests (VLAN 1000 + slot)', integer('--max-devices', 1, 64), DEFAULTS.maxDevices)
    .option('--max-pages <n>', 'pages all guests together may have mapped', integer('--max-pages', 1, 1 << 26), DEFAULTS.maxPages)
    .addOption(
      new Option('--mac-policy <policy>', 'guest: a guest picks its MAC unless dom0 assigned one; dom0: only MACs dom0 assigned')
        .choices(['guest', 'dom0'])
        .default(DEFAULTS.macPolicy),
    )
    .option('--xenstore-retry <seconds>', 'how long to keep reconnecting to a lost XenStore while attached devices keep switching', integer('--xenstore-retry', 0, 86400), DEFAULTS.xenstoreRetry)
    .option('--native-vlan <vid>', 'the network the uplink carries untagged (default: every network tagged)', network('--native-vlan'))
    .option('--default-network <vid>', 'the network of devices dom0 assigned none (default: VLAN 1000 + slot, the guide\'s model)', network('--default-network'))
    .option('--control-socket <path>', 'the control socket for xsw-ctl (default /run/xsw/backend.sock; $XSW_SIM_DIR/backend.sock on the simulated platform)', controlSocket)
    .option('--control-mode <mode>', 'the control socket\'s file mode', controlMode, DEFAULTS.controlMode)
    .option('--metrics <[addr:]port>', 'serve Prometheus metrics over HTTP (address default 127.0.0.1)', parseMetricsAddress)
    .option('--no-netif', 'leave vifs (backend/vif, stock xen-netfront guests) to another back end, such as the kernel\'s netback')
    .option('--vhost-user <PATH[,client][,mac=MAC]>', 'a vhost-user port (DPDK virtio_user, QEMU): xsw listens on PATH, or with ,client connects to it; repeatable', vhostUserValue, [])
    .option('--cores <list>', 'data threads: one per CPU id listed (e.g. 0,1 or 1-3), each pinned there, devices spread over them (default: one thread, not pinned)', parseCores)
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} });
}

/** Parses arguments (without node and the script). Throws OptionError. */
export function parseOptions(args: string[]): BackendOptions {
  const cmd = buildCommand();
  let help = '';
  cmd.configureOutput({ writeOut: (s) => (help += s), writeErr: () => {} });
  try {
    cmd.parse(args, { from: 'user' });
  } catch (err) {
    if (err instanceof OptionError) throw err;
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) throw new OptionError('', 0, help);
      // Commander says "error: unknown option '--x'"; make it a sentence with a fix.
      const text = err.message.replace(/^error: /, '');
      throw new OptionError(`${text.charAt(0).toUpperCase()}${text.slice(1)}; see xsw-backend --help.`);
    }
    throw err;
  }
  const o = cmd.opts();
  return {
    vm2vm: o.vm2vm === undefined ? true : Boolean(o.vm2vm),
    stats: o.stats,
    json: Boolean(o.json),
    port: o.port,
    platform: o.platform,
    poll: o.poll,
    mtu: o.mtu,
    logLevel: o.logLevel,
    maxDevicesPerGuest: o.maxDevicesPerGuest,
    maxPagesPerGuest: o.maxPagesPerGuest,
    maxDevices: o.maxDevices,
    maxPages: o.maxPages,
    macPolicy: o.macPolicy,
    xenstoreRetry: o.xenstoreRetry,
    ...(o.nativeVlan !== undefined ? { nativeVlan: o.nativeVlan } : {}),
    ...(o.defaultNetwork !== undefined ? { defaultNetwork: o.defaultNetwork } : {}),
    controlSocket: o.controlSocket,
    controlMode: o.controlMode,
    metrics: o.metrics,
    netif: o.netif !== false,
    vhostUser: o.vhostUser,
    ...(o.cores !== undefined ? { cores: o.cores } : {}),
  };
}

/** The --help text. */
export function helpText(): string {
  return buildCommand().helpInformation();
}
