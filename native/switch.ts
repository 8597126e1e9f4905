// The back end's data plane for TypeScript: a typed wrapper over the native
// switch (addon.switch, native/switch/switch.h). The control plane registers devices
// whose rings and mempools it has mapped, starts the data-plane thread, and
// reads counters and quarantine/death events; no packet ever crosses into JS.
//
// Errors from the native side carry `.code` (an errno name: 'EEXIST',
// 'ENOSPC', 'ENODEV', 'EPERM', 'EINVAL', 'ENOENT') and one sentence.
import type { CaptureChunk, NativeNicPortProbe, NativeSwitch, SwitchWakeups } from './addon';
import { addon } from './binding';
import { VIOLATION_NAMES, ViolationName } from './vring';

export interface SwitchOptions {
  /** Switch guest-to-guest frames locally. Default true. */
  vm2vm: boolean;
  /**
   * 'busy' never sleeps (benchmarks); 'adaptive' sleeps on the devices' wake-ups after 64 idle
   * loops, 'interrupt' after one (docs/dataplane.md#notifications). Default 'adaptive'.
   */
  poll: 'busy' | 'adaptive' | 'interrupt';
  /** The platform whose event channels guests' ports (DeviceSpec.evtchn) are bound in. Absent: none. */
  events?: { platform: string; simDir?: string };
  /** The NIC: 'IFNAME' (AF_PACKET) or 'tap:NAME'. Absent: vm2vm only. */
  port?: string;
  /** Default 1500, at most 9000. A frame is at most mtu + 14 bytes (+4 tagged on the NIC). */
  mtu?: number;
  /** Device slots. Default 64. */
  maxDevices?: number;
  /**
   * One data thread per CPU id listed, pinned there (at most 16, each in the process's affinity
   * mask); devices are spread over them (docs/dataplane.md#more-than-one-core). Absent: one
   * thread, not pinned.
   */
  cores?: number[];
}

export interface DeviceSpec {
  domid: number;
  dev: number;
  /** xx:xx:xx:xx:xx:xx, unicast, unique across devices. */
  mac: string;
  /** 1..4095: the device's pool on the NIC (its frames leave with this tag); 0: untagged. */
  vlan: number;
  /**
   * The guest's TX ring, mapped in this process (we are its device side). `mapLen`, here and
   * below, is the bytes mapped at the address as the mapper reports them (a mapping's
   * `buffer.byteLength`): the switch refuses, with EINVAL naming it, a ring, flag or region
   * whose mapping does not cover its layout.
   */
  tx: { addr: bigint; num: number; mapLen: number };
  /** The guest's RX ring. */
  rx: { addr: bigint; num: number; mapLen: number };
  /** Byte 0: 0xA5 while the guest lives, 0 when it died. */
  flag: { addr: bigint; mapLen: number };
  /** Where the guest's descriptors may point: one per mempool (gva -> hva), `len` at most `mapLen`. */
  regions: { gva: bigint; len: number; hva: bigint; mapLen: number; writable: boolean }[];
  /**
   * The network dom0 assigned (a VLAN id 1..4094), or absent: the guide's one switching domain.
   * Frames are switched locally only between devices of the same network (absent counts as one).
   */
  network?: number;
  /** The guest's unbound event channel port (XenStore's V_event_channel): bound when the switch has events. */
  evtchn?: number;
}

export type DeviceState = 'active' | 'quarantined' | 'dead' | 'removed';

export interface DeviceStats {
  slot: number;
  domid: number;
  dev: number;
  mac: string;
  vlan: number;
  state: DeviceState;
  /** Frames the guest sent (popped from its TX ring). */
  tx_total: number;
  /** Of those, frames delivered nowhere. */
  tx_dropped: number;
  /** Frames offered to the guest's RX ring. */
  rx_total: number;
  /** Of those, frames that could not be placed. */
  rx_dropped: number;
  tx_bytes: number;
  rx_bytes: number;
  /** reason -> count, only non-zero reasons (a DropName; see dropReasons()). */
  drops: Record<string, number>;
  /** The network the device was given (DeviceSpec.network), or null. */
  network?: number | null;
  /** The data thread that serves it (0 with one thread). */
  thread?: number;
}

/** One data thread's counters (docs/dataplane.md#more-than-one-core). */
export interface ThreadStats {
  thread: number;
  /** The CPU it is pinned to, or null. */
  cpu: number | null;
  /** Devices it serves (the NIC counts as one, on thread 0). */
  devices: number;
  loops: number;
  sleeps: number;
  /** Frames (or parts of a group frame) handed to another thread, which copied them. */
  handed_out: number;
  /** Frames other threads handed here and this thread copied. */
  handed_in: number;
  /** Handoffs or their completions dropped unread because their device had gone (removed, quarantined, dead). */
  handoff_dropped: number;
  /**
   * Its time while running, in the units of native/common/cycles.h (the TSC on x86): in
   * loops that found work, and in empty loops and sleeps. Only their ratio means anything
   * (the busy share, as OVS's pmd-stats-show gives it).
   */
  processing_cycles: number;
  idle_cycles: number;
}

export interface NicStats {
  rx: number;
  tx: number;
  dropped: number;
  drops: Record<string, number>;
  /** Frames received and sent per VLAN id (0: untagged), only VLANs with any. */
  vlans?: { vlan: number; rx: number; tx: number }[];
}

export interface SwitchEvent {
  slot: number;
  domid: number;
  dev: number;
  kind: 'quarantine' | 'dead';
  /** quarantine: a vring violation name (a ViolationName, e.g. 'chain_loop'); dead: 'vring_flag_cleared'. */
  reason: string;
}

/**
 * The switch's own drop reasons, after the ring violations (native/switch/drops.h's table;
 * test/native-names.test.ts checks this list against the addon's, both ways).
 */
export const SWITCH_DROP_NAMES = [
  'mtu_exceeded',
  'runt',
  'spoofed_src_mac',
  'same_device',
  'dst_down',
  'no_nic',
  'nic_tx_full',
  'nic_tx_error',
  'rx_no_buffer',
  'rx_too_big',
  'unknown_dst',
  'guest_rx_failed',
  'guest_vlan_tag',
  'nic_tx_share',
  'handoff_full',
] as const;
export type SwitchDropName = (typeof SWITCH_DROP_NAMES)[number];
/** A stats key of `drops`: a ring violation (the device was quarantined) or a switch drop reason. */
export type DropName = ViolationName | SwitchDropName;
/** Every drop name in counter order, as TypeScript knows them. */
export const DROP_NAMES: readonly DropName[] = [...VIOLATION_NAMES, ...SWITCH_DROP_NAMES];

/** How long a source MAC seen on the NIC side counts as a LAN host's (Linux bridges age theirs after 300 s). */
export const NIC_MAC_MAX_AGE_S = 300;

/** Every drop counter name the switch can report (stats keys), stable across releases. */
export function dropReasons(): string[] {
  return addon().switch.dropNames.filter((n) => n !== 'none');
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

function checkInt(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`Expected ${name} to be an integer from ${min} to ${max}, got ${String(v)}`);
  }
  return v;
}

function checkAddr(name: string, v: unknown): bigint {
  if (typeof v !== 'bigint' || v <= 0n) throw new TypeError(`Expected ${name} to be a non-zero bigint address`);
  return v;
}

export class Switch {
  private native: NativeSwitch | undefined;

  /** Opens the NIC port if one is given (throws Error with .code and one clear sentence). */
  constructor(opts: Partial<SwitchOptions> = {}) {
    const known = new Set(['vm2vm', 'poll', 'port', 'mtu', 'maxDevices', 'events', 'cores']);
    for (const k of Object.keys(opts)) {
      if (!known.has(k)) throw new TypeError(`Unknown Switch option '${k}': expected one of ${[...known].join(', ')}`);
    }
    const poll = opts.poll ?? 'adaptive';
    if (poll !== 'busy' && poll !== 'adaptive' && poll !== 'interrupt') {
      throw new TypeError(`Expected poll to be 'busy', 'adaptive' or 'interrupt', got '${String(poll)}'`);
    }
    if (opts.port !== undefined && (typeof opts.port !== 'string' || opts.port === '')) {
      throw new TypeError('Expected port to be an interface name or tap:NAME');
    }
    this.native = new (addon().switch.NativeSwitch)({
      vm2vm: opts.vm2vm ?? true,
      busy: poll === 'busy',
      interrupt: poll === 'interrupt',
      events: opts.events,
      mtu: checkInt('mtu', opts.mtu ?? 1500, 68, 9000),
      maxDevices: checkInt('maxDevices', opts.maxDevices ?? 64, 1, 4096),
      port: opts.port,
      cores: opts.cores === undefined ? undefined : opts.cores.map((c, i) => checkInt(`cores[${i}]`, c, 0, 65535)),
    });
  }

  private get n(): NativeSwitch {
    if (!this.native) throw new Error('this Switch is closed: create a new one');
    return this.native;
  }

  /** Starts the data-plane thread (no-op if it runs). */
  start(): void {
    this.n.start();
  }

  /** Stops and joins the data-plane thread (no-op if stopped). */
  stop(): void {
    this.n.stop();
  }

  /**
   * Registers a device and returns its slot. The switch resumes from the indexes already in the
   * rings. Throws EEXIST ("MAC … is already registered by domain D device V"), ENOSPC (no free
   * slot) or EINVAL (bad MAC, VLAN, ring size/alignment or regions, or a mapping shorter than
   * what it holds: "the TX ring of domain 1 device 0 (256 entries) needs 10246 bytes but its
   * mapping has 4096: map all 3 of its pages").
   */
  addDevice(spec: DeviceSpec): number {
    if (typeof spec?.mac !== 'string' || !MAC_RE.test(spec.mac)) {
      throw new TypeError(`Expected mac to look like 02:00:00:00:00:11, got '${String(spec?.mac)}'`);
    }
    checkInt('domid', spec.domid, 0, 0x7fef);
    checkInt('dev', spec.dev, 0, 0xffffffff);
    checkInt('vlan', spec.vlan, 0, 4095);
    if (spec.network !== undefined) checkInt('network', spec.network, 1, 4094);
    if (spec.evtchn !== undefined) checkInt('evtchn', spec.evtchn, 1, 0xffffffff);
    checkAddr('tx.addr', spec.tx?.addr);
    checkAddr('rx.addr', spec.rx?.addr);
    checkAddr('flag.addr', spec.flag?.addr);
    if (!Array.isArray(spec.regions) || spec.regions.length === 0) {
      throw new TypeError('Expected regions to be a non-empty array (one per mapped mempool)');
    }
    return this.n.addDevice(spec);
  }

  /**
   * Unregisters a device. Returns only once the data-plane thread has let go of it, so its rings
   * and mempools may be unmapped right after. Its last counters stay in stats() as 'removed'
   * until the slot is reused. Throws ENOENT for an empty slot.
   */
  removeDevice(slot: number): void {
    checkInt('slot', slot, 0, 0xffff);
    this.n.removeDevice(slot);
  }

  /** Counters of every device (including removed ones whose slot is not reused yet) and the NIC. */
  stats(): { devices: DeviceStats[]; nic: NicStats; threads: ThreadStats[] } {
    return this.n.stats();
  }

  /** Quarantines and deaths found by the data plane since the last call, each reported once. */
  events(): SwitchEvent[] {
    return this.n.events();
  }

  /**
   * True if a frame from the NIC carried `mac` as its source within the last `maxAgeS` seconds:
   * a host on the LAN side uses it. The data plane remembers up to 1024 such MACs (a fixed table,
   * native/switch/nic_macs.h); the stalest give way first.
   */
  nicMacSeen(mac: string, maxAgeS = NIC_MAC_MAX_AGE_S): boolean {
    if (typeof mac !== 'string' || !MAC_RE.test(mac)) throw new TypeError(`Expected mac to look like 02:00:00:00:00:11, got '${String(mac)}'`);
    return this.n.nicMacSeen(mac, checkInt('maxAgeS', maxAgeS, 0, 0xffffffff));
  }

  /**
   * Runs one data-plane loop on the calling thread and returns the work done (frames moved or
   * dropped, faults found). For tests and tools: throws while the thread runs.
   */
  pollOnce(thread?: number): number {
    return this.n.pollOnce(thread);
  }

  /**
   * Starts a live capture of `ports` (device slots; 'nic' for the NIC): the data plane copies
   * their frames (at most `snaplen` bytes each) into a ring of `slots` frames, dropping and
   * counting what does not fit. Port i is the session's pcapng interface i. Returns its id.
   * Throws ENOENT (no such device or no NIC), EBUSY (a port already captured), EINVAL.
   */
  captureStart(ports: (number | 'nic')[], snaplen: number, slots = 4096): number {
    return this.n.captureStart(ports.map((p) => (p === 'nic' ? -1 : checkInt('port', p, 0, 0xffff))), checkInt('snaplen', snaplen, 14, 262144), checkInt('slots', slots, 2, 1 << 20));
  }

  /** Pcapng EPBs of what the session captured since the last call (at most `maxRecords` frames). */
  captureRead(id: number, maxBytes = 1 << 20, maxRecords = 0xffffffff): CaptureChunk {
    return this.n.captureRead(id, maxBytes, maxRecords);
  }

  /** Ends a capture session; returns once the data plane has let go of its ring. */
  captureStop(id: number): void {
    this.n.captureStop(id);
  }

  /** Poll loops the data plane has run. */
  loops(): number {
    return this.n.loops();
  }

  /** The data threads' time split (ThreadStats.processing_cycles, idle_cycles), summed over the threads. */
  cycles(): { processing: number; idle: number } {
    let processing = 0;
    let idle = 0;
    for (const t of this.stats().threads) {
      processing += t.processing_cycles;
      idle += t.idle_cycles;
    }
    return { processing, idle };
  }

  /** How the data thread sleeps: the event channels, its sleeps, the slots it is woken for. */
  wakeups(): SwitchWakeups {
    return this.n.wakeups();
  }

  /** Stops the thread, closes the NIC port; the object is unusable afterwards. */
  close(): void {
    this.native?.close();
    this.native = undefined;
  }

  /** The native switch, for ports that attach to it natively (backend/vhost.ts). */
  nativeHandle(): NativeSwitch {
    return this.n;
  }
}

export interface ProbeFrame {
  data: Buffer;
  /** The VLAN id the kernel stripped (AF_PACKET aux data), or null (the tag, if any, is in-frame). */
  vlan: number | null;
}

/**
 * A NIC port driven frame by frame from JS, with the switch's own port code: for tests and
 * diagnostics (send a frame into a veth or TAP, see what comes out). Not for traffic.
 */
export class NicPortProbe {
  private native: NativeNicPortProbe | undefined;

  constructor(port: string, mtu = 1500) {
    this.native = new (addon().switch.NicPortProbe)(port, checkInt('mtu', mtu, 68, 9000));
  }

  /** Queues one frame and kicks the port; false when its transmit queue was full. */
  send(frame: Buffer): boolean {
    if (!this.native) throw new Error('this port is closed');
    return this.native.send(frame);
  }

  /** The frames that have arrived (at most 32), without waiting. */
  recv(): ProbeFrame[] {
    if (!this.native) throw new Error('this port is closed');
    return this.native.recv();
  }

  close(): void {
    this.native?.close();
    this.native = undefined;
  }
}
