// The simulated platform's toolstack, in the role of xl/libxl: start and stop
// the embedded xenstored and the sim grant layer, create and destroy domains,
// run commands as a domain.
//
// Layout of the sim directory:
//   xenstored/socket          dom0's socket (XENSTORED_PATH)
//   xenstored/dom<id>.sock    domain <id>'s socket
//   xenstored/xenstored.pid   the daemon's pid; xenstored.log its log
//   domains/<id>/<pid>        process groups running as domain <id> (xsw-sim exec)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { simDestroyDomain, simInit } from '../../native/grants';
import { assignmentDir, assignmentKeys } from '../../schema/assignment';
import { XenStoreClient, XenStoreTransaction } from '../client';
import { Perm } from '../wire';
import { detachVif, removeVifs, VifSpec, writeVif } from './vif';

/** A failure to show to the user as is: one sentence naming the thing and the fix. */
export class SimError extends Error {}

/** The sim directory: XSW_SIM_DIR, else $XDG_RUNTIME_DIR/xsw-sim, else /run/xsw-sim as root, else /tmp/xsw-sim-<uid>. */
export function simDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XSW_SIM_DIR) return path.resolve(env.XSW_SIM_DIR);
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'xsw-sim');
  const uid = process.getuid?.() ?? 0;
  return uid === 0 ? '/run/xsw-sim' : path.join(os.tmpdir(), `xsw-sim-${uid}`);
}

export function simPaths(dir: string) {
  const xenstored = path.join(dir, 'xenstored');
  return {
    xenstored,
    socket: path.join(xenstored, 'socket'),
    domainSocket: (domid: number) => path.join(xenstored, `dom${domid}.sock`),
    pidFile: path.join(xenstored, 'xenstored.pid'),
    logFile: path.join(xenstored, 'xenstored.log'),
    domains: path.join(dir, 'domains'),
    domainProcs: (domid: number) => path.join(dir, 'domains', String(domid)),
  };
}

/**
 * The environment of a process on the simulated platform in `dir`, talking to
 * xenstored on `socket`: dom0's, or, with `domid`, that domain's (as exec()
 * runs a guest's processes).
 */
export function simEnv(dir: string, socket: string, domid?: number): NodeJS.ProcessEnv {
  return {
    ...process.env,
    XSW_SIM_DIR: dir,
    XENSTORED_PATH: socket,
    XSW_PLATFORM: 'sim',
    ...(domid === undefined ? {} : { XSW_SIM_DOMID: String(domid) }),
  };
}

/** The shell lines `xsw-sim up` prints, for eval. */
export function environmentLines(dir: string): string {
  return `export XSW_SIM_DIR=${shellQuote(dir)}\nexport XENSTORED_PATH=${shellQuote(simPaths(dir).socket)}\n`;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function accepts(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(socket);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** True if the sim's xenstored is running and accepting connections. */
export async function isUp(dir: string): Promise<boolean> {
  const p = simPaths(dir);
  const pid = readPid(p.pidFile);
  return pid !== undefined && alive(pid) && (await accepts(p.socket));
}

async function dom0(dir: string): Promise<XenStoreClient> {
  if (!(await isUp(dir))) {
    throw new SimError(`the simulated platform is not running in ${dir}: start it with \`eval "$(xsw-sim up)"\` (or set XSW_SIM_DIR to where it runs)`);
  }
  return XenStoreClient.connect({ path: simPaths(dir).socket });
}

async function withDom0<T>(dir: string, fn: (xs: XenStoreClient) => Promise<T>): Promise<T> {
  const xs = await dom0(dir);
  try {
    return await fn(xs);
  } finally {
    xs.close();
  }
}

export interface UpOptions {
  /** Pages each domain may grant (the sim's gntalloc `limit`). */
  gntallocLimit: number;
}

/**
 * Starts xenstored (detached) and the sim grant layer, and records dom0 in
 * XenStore as xen-init-dom0 does. Returns false if it was already up.
 */
export async function up(dir: string, opts: UpOptions): Promise<boolean> {
  if (await isUp(dir)) return false;
  const p = simPaths(dir);
  fs.mkdirSync(p.xenstored, { recursive: true });
  fs.mkdirSync(p.domains, { recursive: true });
  simInit(dir, { gntallocLimit: opts.gntallocLimit });
  const log = fs.openSync(p.logFile, 'a');
  const child = spawn(process.execPath, [path.join(__dirname, 'xenstored-main.js'), '--dir', p.xenstored], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new SimError(`cannot start xenstored (node at ${process.execPath}); see ${p.logFile}`);
  fs.writeFileSync(p.pidFile, `${pid}\n`);
  child.unref();
  const deadline = Date.now() + 10_000;
  while (!(await accepts(p.socket))) {
    if (!alive(pid) || Date.now() > deadline) {
      throw new SimError(`xenstored did not start (its log is ${p.logFile}): fix what it reports and run \`xsw-sim up\` again`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await withDom0(dir, async (xs) => {
    await xs.write('/local/domain/0/name', 'Domain-0');
    await xs.write('/local/domain/0/domid', '0');
  });
  return true;
}

/** Destroys every domain, stops xenstored and removes its sockets and pid file. False if nothing was running. */
export async function down(dir: string): Promise<boolean> {
  const p = simPaths(dir);
  const pid = readPid(p.pidFile);
  if (pid === undefined || !alive(pid)) {
    fs.rmSync(p.xenstored, { recursive: true, force: true });
    return false;
  }
  if (await accepts(p.socket)) {
    for (const d of await list(dir)) if (d.domid !== 0) await destroy(dir, d.name);
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  fs.rmSync(p.xenstored, { recursive: true, force: true });
  fs.rmSync(p.domains, { recursive: true, force: true });
  return true;
}

export interface DomainInfo {
  name: string;
  domid: number;
}

/** The domains XenStore knows (dom0 included), by domid. */
export async function list(dir: string): Promise<DomainInfo[]> {
  return withDom0(dir, (xs) => listWith(xs));
}

async function listWith(xs: XenStoreClient | XenStoreTransaction): Promise<DomainInfo[]> {
  const ids = ((await tryDirectory(xs, '/local/domain')) ?? []).filter((s) => /^[0-9]+$/.test(s)).map(Number);
  const out: DomainInfo[] = [];
  for (const domid of ids.sort((a, b) => a - b)) {
    out.push({ domid, name: (await xs.tryRead(`/local/domain/${domid}/name`)) ?? '' });
  }
  return out;
}

async function tryDirectory(xs: XenStoreClient | XenStoreTransaction, p: string): Promise<string[] | undefined> {
  try {
    return await xs.directory(p);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw err;
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface CreateOptions {
  /** MACs dom0 assigns to devices 0, 1, … (like mac= in an xl vif line). */
  macs?: string[];
  /** VLANs dom0 assigns to devices 0, 1, …. */
  vlans?: number[];
  /** Network devices (vif 0, 1, …) with the keys libxl writes (xenstore/sim/vif.ts). */
  vifs?: VifSpec[];
}

/**
 * Creates a domain as libxl does: the next free domid, /local/domain/<id>
 * (read-only to the guest, dom0-owned) with name and domid, ~/control
 * read-only, the guest's own writable nodes, the identity dom0 assigns to its
 * switch devices (schema/assignment.ts, readable by the guest only), then
 * XS_INTRODUCE (which fires @introduceDomain and opens the domain's socket).
 * Returns the domid. The MACs and VLANs must be valid already (cli.ts checks).
 */
export async function create(dir: string, name: string, opts: CreateOptions = {}): Promise<number> {
  if (!NAME.test(name)) {
    throw new SimError(`invalid domain name ${JSON.stringify(name)}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  return withDom0(dir, async (xs) => {
    const domid = await xs.transaction(async (tx) => {
      const domains = await listWith(tx);
      if (domains.some((d) => d.name === name)) throw new SimError(`a domain named ${name} already exists: pick another name or destroy it first`);
      let id = 1;
      while (domains.some((d) => d.domid === id) || (await xs.isDomainIntroduced(id))) id++;
      const home = `/local/domain/${id}`;
      const roperm: Perm[] = [{ access: 'n', domid: 0 }, { access: 'r', domid: id }];
      const rwperm: Perm[] = [{ access: 'n', domid: id }];
      const nodes: [string, string, Perm[]][] = [
        [home, '', roperm],
        [`${home}/name`, name, roperm],
        [`${home}/domid`, String(id), roperm],
        [`${home}/control`, '', roperm],
        [`${home}/control/shutdown`, '', rwperm],
        [`${home}/device`, '', roperm],
        ...['data', 'drivers', 'feature', 'attr', 'error'].map((n): [string, string, Perm[]] => [`${home}/${n}`, '', rwperm]),
      ];
      // A leftover of an earlier domain with this id must not become this one's identity.
      if ((await tx.tryRead(assignmentDir(id))) !== undefined) await tx.rm(assignmentDir(id));
      const macs = opts.macs ?? [];
      const vlans = opts.vlans ?? [];
      if (macs.length + vlans.length > 0) nodes.push([assignmentDir(id), '', roperm]);
      for (let dev = 0; dev < Math.max(macs.length, vlans.length); dev++) {
        const a = assignmentKeys(id, dev);
        nodes.push([a.dir, '', roperm]);
        if (macs[dev] !== undefined) nodes.push([a.mac, macs[dev], roperm]);
        if (vlans[dev] !== undefined) nodes.push([a.vlan, String(vlans[dev]), roperm]);
      }
      for (const [p, value, perms] of nodes) {
        await tx.write(p, value);
        await tx.setPerms(p, perms);
      }
      for (const [devid, spec] of (opts.vifs ?? []).entries()) await writeVif(tx, id, devid, spec);
      return id;
    });
    await xs.introduce(domid, 0, 0);
    fs.mkdirSync(simPaths(dir).domainProcs(domid), { recursive: true });
    return domid;
  });
}

async function waitForExit(pids: number[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (pids.some((pid) => pid > 0 && alive(pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

async function findDomain(xs: XenStoreClient, name: string): Promise<number> {
  const found = (await listWith(xs)).find((d) => d.name === name);
  if (!found) throw new SimError(`no domain named ${name}: see \`xsw-sim list\``);
  if (found.domid === 0) throw new SimError('Domain-0 is the toolstack\'s own domain: name a guest created with `xsw-sim create`');
  return found.domid;
}

/**
 * Runs a command as a domain (its socket and domid in the environment) and
 * resolves with its exit code (128 + signal number if killed). The command
 * runs in its own process group, recorded so that destroy can kill it.
 */
export async function exec(dir: string, name: string, cmd: string, args: string[]): Promise<number> {
  const domid = await withDom0(dir, (xs) => findDomain(xs, name));
  const p = simPaths(dir);
  const env = simEnv(dir, p.domainSocket(domid), domid);
  const child = spawn(cmd, args, { stdio: 'inherit', env, detached: true });
  const spawned = await new Promise<boolean>((resolve) => {
    child.once('spawn', () => resolve(true));
    child.once('error', () => resolve(false));
  });
  if (!spawned || child.pid === undefined) throw new SimError(`cannot run ${cmd}: check that it exists and is executable`);
  const pid = child.pid;
  const record = path.join(p.domainProcs(domid), String(pid));
  fs.mkdirSync(p.domainProcs(domid), { recursive: true });
  fs.writeFileSync(record, '');
  const forward = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig);
    } catch {
      // already gone
    }
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, forward);
  const code = await new Promise<number>((resolve) => {
    child.once('exit', (c, signal) => resolve(c ?? 128 + (signal ? os.constants.signals[signal] : 0)));
  });
  for (const s of signals) process.off(s, forward);
  fs.rmSync(record, { force: true });
  return code;
}

/**
 * Destroys a domain as `xl destroy`: kills its processes (SIGKILL), tears
 * down its grants, removes its XenStore nodes and releases it (which fires
 * @releaseDomain).
 */
export async function destroy(dir: string, name: string): Promise<number> {
  return withDom0(dir, async (xs) => {
    const domid = await findDomain(xs, name);
    const procs = simPaths(dir).domainProcs(domid);
    for (const entry of fs.existsSync(procs) ? fs.readdirSync(procs) : []) {
      const pid = Number(entry);
      if (!Number.isInteger(pid) || pid <= 0) continue;
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    await waitForExit(fs.existsSync(procs) ? fs.readdirSync(procs).map(Number) : [], 2000);
    simDestroyDomain(dir, domid);
    await xs.rm(`/local/domain/${domid}`);
    // libxl removes a domain's backend directories with it.
    if ((await xs.tryRead(assignmentDir(domid))) !== undefined) await xs.rm(assignmentDir(domid));
    await removeVifs(xs, domid);
    if (await xs.isDomainIntroduced(domid)) await xs.release(domid);
    fs.rmSync(procs, { recursive: true, force: true });
    return domid;
  });
}

/** `xl network-detach NAME DEVID`: see detachVif; false when the back end did not say Closed in time. */
export async function networkDetach(dir: string, name: string, devid: number, ms?: number): Promise<boolean> {
  return withDom0(dir, async (xs) => detachVif(xs, await findDomain(xs, name), devid, ms));
}
