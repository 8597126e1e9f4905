// Every process and resource the bench starts is recorded here, so that a
// failure or Ctrl-C still stops them (by their own process group id) and
// undoes the machine changes (netns, hugepages, mounts, sim dir), newest
// first.
import { ChildProcess, spawn, SpawnOptions } from 'node:child_process';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A child process in its own process group, its output collected line by line. */
export class Proc {
  readonly out: string[] = [];
  readonly err: string[] = [];
  readonly exited: Promise<number | null>;
  private waiters: (() => void)[] = [];
  private done = false;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    const collect = (stream: NodeJS.ReadableStream | null | undefined, into: string[], stamps?: number[]) => {
      let buf = '';
      stream?.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        into.push(...lines);
        if (stamps) for (let i = 0; i < lines.length; i++) stamps.push(performance.now());
        this.wake();
      });
    };
    collect(child.stdout, this.out, this.outTimes);
    collect(child.stderr, this.err);
    this.exited = new Promise((r) =>
      child.on('exit', (code, signal) => {
        this.done = true;
        r(code ?? (signal ? 128 : null));
        this.wake();
      }),
    );
    running.add(this);
    void this.exited.then(() => running.delete(this));
  }

  /** performance.now() when each stdout line arrived. */
  readonly outTimes: number[] = [];

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return !this.done;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves at the next output line or exit, or after ms. */
  next(ms: number): Promise<void> {
    return new Promise((r) => {
      const t = setTimeout(r, ms);
      this.waiters.push(() => {
        clearTimeout(t);
        r();
      });
    });
  }

  /** Waits for a line matching re (stdout or stderr) from line `from` on; returns its index. */
  async waitFor(re: RegExp, timeoutMs: number, where: 'out' | 'err' = 'out', from = 0): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = where === 'out' ? this.out : this.err;
      for (let i = from; i < lines.length; i++) if (re.test(lines[i])) return i;
      if (this.done) throw new Error(`${this.name} exited before printing ${re}: ${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.name} did not print ${re} within ${timeoutMs} ms: ${this.tail()}`);
      await this.next(Math.max(1, Math.min(100, deadline - Date.now())));
    }
  }

  tail(): string {
    return [...this.err.slice(-6), ...this.out.slice(-6)].join(' | ').slice(0, 1500);
  }

  write(text: string): void {
    this.child.stdin?.write(text);
  }

  /** Signals the whole process group; after graceMs, SIGKILL. Resolves when it has exited. */
  async stop(graceMs = 3000, sig: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.done) return;
    signalGroup(this.pid, sig);
    const killed = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!killed) {
      signalGroup(this.pid, 'SIGKILL');
      await Promise.race([this.exited, sleep(2000)]);
    }
    // Whatever the leader left behind in its group goes too.
    signalGroup(this.pid, 'SIGKILL');
  }
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

const running = new Set<Proc>();

let shuttingDown = false;

/** Starts cmd in its own process group, stdin piped only when asked. Refused once cleanup has begun. */
export function start(name: string, cmd: string, args: string[], opts: SpawnOptions & { stdin?: boolean } = {}): Proc {
  if (shuttingDown) throw new Error('the bench is stopping: nothing new is started');
  const child = spawn(cmd, args, {
    ...opts,
    detached: true,
    stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  child.on('error', () => undefined);
  return new Proc(name, child);
}

/** Runs a command to completion; rejects with its stderr when it fails and `check` is set. */
export function run(cmd: string, args: string[], check = true, opts: SpawnOptions = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout?.on('data', (d) => (out += d));
    c.stderr?.on('data', (d) => (err += d));
    c.on('error', (e) => (check ? reject(new Error(`cannot run ${cmd}: ${e.message}`)) : resolve({ code: -1, out, err: e.message })));
    c.on('exit', (code) => {
      if (check && code !== 0) reject(new Error(`${cmd} ${args.join(' ')} failed (exit ${code}): ${err.trim().slice(0, 500)}`));
      else resolve({ code, out, err });
    });
  });
}

/** All processes still running, in start order. */
export function runningProcs(): Proc[] {
  return [...running];
}

type Undo = { what: string; fn: () => Promise<void> | void };
const undos: Undo[] = [];

/** Registers a step that undoes a change; returns a function that runs it now (once). */
export function onCleanup(what: string, fn: () => Promise<void> | void): () => Promise<void> {
  const u: Undo = { what, fn };
  undos.push(u);
  return async () => {
    const i = undos.indexOf(u);
    if (i < 0) return;
    undos.splice(i, 1);
    await fn();
  };
}

/** Stops every running process, then undoes every change, newest first. Errors are reported, not thrown. */
export async function cleanupAll(log: (s: string) => void = () => undefined): Promise<void> {
  shuttingDown = true;
  while (running.size) await Promise.all(runningProcs().map((p) => p.stop(1500).catch(() => undefined)));
  while (undos.length) {
    const u = undos.pop()!;
    try {
      await u.fn();
    } catch (err) {
      log(`cleanup: could not ${u.what}: ${(err as Error).message}`);
    }
  }
}
