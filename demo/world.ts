// The demo's world, built from the real command-line tools as a user would
// type them: a private simulated platform (`xsw-sim up` in a fresh temporary
// directory), the back end, guests running xsw-front under `xsw-sim exec`,
// and, as root, a veth "wire" in a network namespace with the generator on
// its far end. teardown() undoes all of it, whatever state it is in.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Child, ChildOptions, exitStatus, logRecord, run, sleep, WaitError } from '../harness/child';
import { Netns } from '../harness/netns';
import { CLI } from '../harness/cli-paths';
import { formatMac } from '../frontend/mac';
import { parseStatsJson } from '../frontend/stats';
import type { DeviceStats } from '../native/front';
import { simEnv, simPaths } from '../xenstore/sim/toolstack';
import type { WireResult, WireSpec } from './wire-frames';

const WIRE_GENERATOR = path.join(__dirname, 'wire-generator.js');

/** Pages each simulated guest may grant: the default 8192-mbuf mempool, its gref list and the rings, with room to spare. */
const GNTALLOC_LIMIT = 16384;
/** The back end's NIC and the generator's end of the veth pair, both inside the namespace. */
export const NIC = 'xsw0';
const GEN = 'gen0';
const STOP_GRACE_MS = 5000;

/** A guest's device 0 counters, and when xsw-front printed them (ms). */
export type FrontCounters = DeviceStats & { time: number };

export interface Guest {
  name: string;
  domid: number;
  mac: string;
  /** The VLAN the back end gave the guest's device. */
  vlan: number;
  proc: Child;
}

/** The guest's latest stats line (device 0) at or after `since` (ms), if any. */
export function latestCounters(g: Guest, since = 0): FrontCounters | undefined {
  for (let i = g.proc.out.length - 1; i >= 0; i--) {
    const s = parseStatsJson(g.proc.out[i]);
    const d = s?.devices[0];
    if (s && d) return s.time >= since ? { ...d, time: s.time } : undefined;
  }
  return undefined;
}

export class DemoWorld {
  readonly env: NodeJS.ProcessEnv;
  readonly guests: Guest[] = [];
  backend: Child | undefined;
  netns: Netns | undefined;
  private wire: Child | undefined;
  private simUp = false;
  private xenstoredPid: number | undefined;

  private constructor(
    readonly dir: string,
    private readonly say: (line: string) => void,
  ) {
    this.env = simEnv(dir, simPaths(dir).socket);
  }

  /** A fresh private sim directory (nothing started yet). */
  static create(say: (line: string) => void): DemoWorld {
    return new DemoWorld(fs.mkdtempSync(path.join(os.tmpdir(), 'xsw-demo-')), say);
  }

  /** A child in its own process group (a Ctrl-C reaches only the demo, which then stops everything in order). */
  private spawn(name: string, cmd: string, args: string[], o: Omit<ChildOptions, 'name' | 'env' | 'group'> = {}): Child {
    return new Child(cmd, args, { ...o, name, env: this.env, group: true });
  }

  /** xsw-ctl against this world's back end (docs/operations.md): its stdout, or one line saying why not. */
  async ctl(args: string[]): Promise<string> {
    const r = await run(process.execPath, [CLI.ctl, ...args], { env: this.env, group: true, timeoutMs: 10000 });
    return r.code === 0 ? r.out : `xsw-ctl ${args.join(' ')} failed: ${r.err.trim() || `status ${r.code}`}\n`;
  }

  private async sim(args: string[], timeoutMs = 20000): Promise<string> {
    const r = await run(process.execPath, [CLI.sim, ...args], { env: this.env, group: true, timeoutMs });
    if (r.code !== 0) {
      throw new Error(`xsw-sim ${args.join(' ')} failed (status ${r.code}): ${r.err.trim() || 'no message'}`);
    }
    return r.out;
  }

  /** xsw-sim up: xenstored and the grant table in the private directory. */
  async up(): Promise<number | undefined> {
    this.simUp = true;
    await this.sim(['up', '--gntalloc-limit', String(GNTALLOC_LIMIT)]);
    const pid = Number(fs.readFileSync(simPaths(this.dir).pidFile, 'utf8').trim());
    this.xenstoredPid = Number.isInteger(pid) && pid > 0 ? pid : undefined;
    return this.xenstoredPid;
  }

  /**
   * A network namespace with a veth pair: the back end's NIC (xsw0) and the
   * generator's end (gen0). Returns undefined when done, else why it could
   * not be built (teardown removes what was).
   */
  async buildWire(): Promise<string | undefined> {
    try {
      this.netns = await Netns.add(`xswdemo${process.pid}`);
      await this.netns.addVeth(NIC, GEN);
    } catch (err) {
      return (err as Error).message;
    }
    return undefined;
  }

  /** The argv a command needs to run inside the namespace (as is without one). */
  private inNetns(cmd: string, args: string[]): [string, string[]] {
    return this.netns ? this.netns.wrap(cmd, args) : [cmd, args];
  }

  /** Starts xsw-backend and waits until it watches XenStore. */
  async startBackend(args: string[], onStdout: (line: string) => void, signal: AbortSignal): Promise<Child> {
    const [cmd, argv] = this.inNetns(process.execPath, [CLI.backend, ...args]);
    const proc = this.spawn('xsw-backend', cmd, argv, {
      onStdout,
      onStderr: (line) => {
        const l = logRecord(line);
        if (l && l.level >= 40) this.say(`backend ${l.level >= 50 ? 'error' : 'warning'}: ${l.msg}`);
      },
    });
    this.backend = proc;
    await proc.waitFor('the back end to watch XenStore', () => proc.err.find((l) => /watching \/local\/domain/.test(logRecord(l)?.msg ?? '')), 20000, signal);
    return proc;
  }

  /** A domain with vif 0 as libxl creates it (`xsw-sim create NAME --vif mac=MAC`); returns its domid. */
  async createVifDomain(name: string, mac: string): Promise<number> {
    return Number((await this.sim(['create', name, '--vif', `mac=${mac}`])).trim());
  }

  /** The xenstored socket a domain's own kernel would talk to. */
  domainSocket(domid: number): string {
    return simPaths(this.dir).domainSocket(domid);
  }

  /**
   * Creates a domain, runs xsw-front in it with `args`, and waits for the
   * back end to register its MAC. Returns the guest with the VLAN it got.
   */
  async startGuest(name: string, mac: string, args: string[], signal: AbortSignal): Promise<Guest> {
    const backend = this.backend;
    if (!backend) throw new Error('start the back end before the guests');
    const domid = Number((await this.sim(['create', name])).trim());
    const proc = this.spawn(`${name}'s xsw-front`, process.execPath, [CLI.sim, 'exec', name, '--', process.execPath, CLI.front, '--mac', mac, ...args]);
    const guest: Guest = { name, domid, mac, vlan: 0, proc };
    this.guests.push(guest);
    const registered = new RegExp(`MAC_ADDRESS ${mac} and VLAN_TAG ([0-9]+) registered`);
    const refused = new RegExp(`(refused|quarantined) domain ${domid} `);
    guest.vlan = await Promise.race([
      backend.waitFor(
        `the back end to register ${name}'s MAC ${mac}`,
        () => {
          for (const line of backend.err) {
            const msg = logRecord(line)?.msg ?? '';
            const m = registered.exec(msg);
            if (m) return Number(m[1]);
            if (refused.test(msg)) throw new WaitError(`the back end ${msg}`);
          }
          return undefined;
        },
        20000,
        signal,
      ),
      proc.exited.then((exit) => {
        throw new WaitError(`${name}'s xsw-front exited (status ${exitStatus(exit)}) before the back end registered it${proc.tail()}`);
      }),
    ]);
    return guest;
  }

  /**
   * Waits for a stats line of the guest, printed at or after `since`, that
   * satisfies `done`; on timeout returns the latest one (or undefined).
   */
  async counters(g: Guest, since: number, done: (c: FrontCounters) => boolean, timeoutMs: number, signal: AbortSignal): Promise<FrontCounters | undefined> {
    try {
      return await g.proc.waitFor(`${g.name}'s counters`, () => {
        const c = latestCounters(g, since);
        return c && done(c) ? c : undefined;
      }, timeoutMs, signal);
    } catch (err) {
      if (signal.aborted) throw err;
      return latestCounters(g, since);
    }
  }

  /** Runs the generator on gen0 inside the namespace and returns what it saw. */
  async runWire(spec: WireSpec, signal: AbortSignal): Promise<WireResult> {
    const mac = formatMac;
    const [cmd, argv] = this.inNetns(process.execPath, [
      WIRE_GENERATOR, '--iface', GEN, '--count', String(spec.count), '--size', String(spec.size),
      '--dst', mac(spec.dst), '--src', mac(spec.src), '--vlan', String(spec.vlan),
      '--expect-dst', mac(spec.expectDst), '--expect-src', mac(spec.expectSrc), '--expect-vlan', String(spec.expectVlan),
    ]);
    const proc = this.spawn('the wire generator', cmd, argv);
    this.wire = proc;
    const onAbort = (): void => proc.killGroup();
    signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => proc.killGroup(), 60000);
    const code = exitStatus(await proc.exited);
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    this.wire = undefined;
    if (signal.aborted) throw new WaitError('interrupted while the generator was sending');
    const line = proc.out.find((l) => l.startsWith('{'));
    if (code !== 0 || !line) throw new Error(`the wire generator failed (status ${code})${proc.tail()}`);
    return JSON.parse(line) as WireResult;
  }

  /**
   * Stops everything in order: the guests (their xsw-front drops the flag and
   * removes its keys), the back end, the platform (xsw-sim down), the
   * namespace, the directory. Each step is bounded; returns what it did.
   */
  async teardown(): Promise<string[]> {
    const done: string[] = [];
    this.wire?.killGroup();
    const guests = this.guests.filter((g) => g.proc.running);
    await Promise.all(guests.map((g) => g.proc.stop(STOP_GRACE_MS)));
    if (guests.length > 0) done.push(`${guests.map((g) => g.name).join(', ')} stopped`);
    if (this.backend?.running) {
      await this.backend.stop(STOP_GRACE_MS);
      done.push('back end stopped');
    }
    if (this.simUp) {
      try {
        await this.sim(['down']);
        done.push('xenstored stopped and domains destroyed');
      } catch (err) {
        this.say(`xsw-sim down failed (${(err as Error).message}); killing xenstored`);
        if (this.xenstoredPid !== undefined) killGroup(this.xenstoredPid);
      }
    }
    if (this.netns) {
      const name = this.netns.name;
      try {
        await this.netns.remove();
        done.push(`namespace ${name} deleted`);
      } catch (err) {
        this.say(`could not delete namespace ${name}: ${(err as Error).message} (remove it with: ip netns del ${name})`);
      }
    }
    await removeDir(this.dir);
    done.push(`${this.dir} removed`);
    return done;
  }
}

function killGroup(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Removes the sim directory, retrying briefly while the last processes let go of it. */
async function removeDir(dir: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
      if (!fs.existsSync(dir)) return;
    } catch {
      // a file is still being written by a dying process: try again
    }
    await sleep(100);
  }
}
