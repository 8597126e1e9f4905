// A child process as the demo, the bench and the tests run one: its output
// collected line by line (and as text), its end reported only once that output
// has been read to the end, every wait bounded, and stopping that reaches its
// whole process group when it has one of its own.
import { ChildProcess, spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';

/** Resolves after `ms`, or as soon as `signal` aborts. */
export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** A wait that ran out of time, was aborted, or saw the process end first; its message is for people. */
export class WaitError extends Error {}

/** How a child ended. A child that could not be started at all has code 127 and `error` set. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** The exit status a shell would show: the code, or 128 + the signal number. */
export function exitStatus(e: Exit): number {
  return e.code ?? 128 + (e.signal ? os.constants.signals[e.signal] ?? 0 : 0);
}

/** A pino log record (one JSON line on stderr). */
export interface LogRecord {
  level: number;
  msg: string;
  time: number;
  [key: string]: unknown;
}

/** The pino record on a line, or undefined when the line is not one. */
export function logRecord(line: string): LogRecord | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const o = JSON.parse(line) as Partial<LogRecord>;
    return typeof o.msg === 'string' && typeof o.level === 'number' ? (o as LogRecord) : undefined;
  } catch {
    return undefined;
  }
}

export interface ChildOptions {
  /** What to call it in messages (default: the command's file name). */
  name?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * Run it in a process group of its own: a Ctrl-C at the terminal reaches
   * only the parent, and stop() / killGroup() also take what it started.
   */
  group?: boolean;
  /** A pipe to its stdin (see write()); otherwise stdin is /dev/null. */
  stdin?: boolean;
  /** Called with each stdout line as it arrives. */
  onStdout?: (line: string) => void;
  /** Called with each stderr line as it arrives. */
  onStderr?: (line: string) => void;
}

/** After 'exit', how long 'close' may take: a grandchild that inherited the pipes can hold them open. */
const DRAIN_GRACE_MS = 2000;

export class Child {
  readonly name: string;
  readonly child: ChildProcess;
  /** Complete stdout / stderr lines so far (a last line without a newline joins at the end of its stream). */
  readonly out: string[] = [];
  readonly err: string[] = [];
  /** performance.now() when each stdout line arrived. */
  readonly outTimes: number[] = [];
  /** Resolves once the process has exited and its output has been read to the end. */
  readonly exited: Promise<Exit>;
  private text = { out: '', err: '' };
  private end: Exit | undefined;
  private readonly group: boolean;
  private waiters: (() => void)[] = [];

  constructor(cmd: string, args: string[], opts: ChildOptions = {}) {
    this.name = opts.name ?? path.basename(cmd);
    this.group = opts.group ?? false;
    this.child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      detached: this.group,
      stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    this.collect('out', this.out, opts.onStdout, this.outTimes);
    this.collect('err', this.err, opts.onStderr);
    let spawnError: Error | undefined;
    this.exited = new Promise((resolve) => {
      const finish = (e: Exit): void => {
        if (this.end) return;
        this.end = e;
        resolve(e);
        this.wake();
      };
      this.child.on('error', (e) => {
        if (this.child.pid === undefined) spawnError = e;
      });
      this.child.once('exit', (code, signal) => {
        setTimeout(() => finish({ code, signal }), DRAIN_GRACE_MS).unref();
      });
      this.child.once('close', (code, signal) => {
        finish(spawnError ? { code: 127, signal: null, error: spawnError } : { code, signal });
      });
    });
  }

  private collect(which: 'out' | 'err', into: string[], each?: (line: string) => void, stamps?: number[]): void {
    const stream = which === 'out' ? this.child.stdout : this.child.stderr;
    let partial = '';
    const add = (line: string): void => {
      into.push(line);
      stamps?.push(performance.now());
      each?.(line);
    };
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      this.text[which] += chunk;
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) add(line);
      this.wake();
    });
    stream?.on('end', () => {
      if (partial !== '') add(partial);
      partial = '';
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Until it has exited and its output is read. */
  get running(): boolean {
    return this.end === undefined;
  }

  /** All of stdout / stderr so far, as text. */
  get stdout(): string {
    return this.text.out;
  }

  get stderr(): string {
    return this.text.err;
  }

  /** The pino records it logged on stderr. */
  logs(): LogRecord[] {
    return this.err.flatMap((l) => logRecord(l) ?? []);
  }

  /**
   * Waits until `pick` returns a value (asked again at every new line and
   * every 100 ms). Throws WaitError on timeout, when `signal` aborts, or
   * when the process ends first.
   */
  async waitFor<T>(what: string, pick: () => T | undefined, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = pick();
      if (hit !== undefined) return hit;
      if (signal?.aborted) throw new WaitError(`interrupted while waiting for ${what}`);
      if (this.end) throw new WaitError(`${this.name} exited (status ${exitStatus(this.end)}) before ${what}${this.tail()}`);
      if (Date.now() > deadline) throw new WaitError(`timed out after ${timeoutMs / 1000} s waiting for ${what}${this.tail()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, Math.min(100, deadline - Date.now())));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for a line of stdout or stderr matching `re`, from line `from` on; returns its index. */
  waitLine(where: 'out' | 'err', re: RegExp, o: { from?: number; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<number> {
    const lines = where === 'out' ? this.out : this.err;
    return this.waitFor(`${this.name} to print a line matching ${re}`, () => {
      for (let i = o.from ?? 0; i < lines.length; i++) if (re.test(lines[i])) return i;
      return undefined;
    }, o.timeoutMs ?? 10000, o.signal);
  }

  /** Waits for a pino record whose msg matches `re`; returns it. */
  waitLog(re: RegExp, timeoutMs = 10000): Promise<LogRecord> {
    return this.waitFor(`${this.name} to log a message matching ${re}`, () => {
      for (const line of this.err) {
        const r = logRecord(line);
        if (r && re.test(r.msg)) return r;
      }
      return undefined;
    }, timeoutMs);
  }

  /** Its last lines (stderr, or stdout when stderr is empty), to show when something went wrong. */
  tail(n = 6): string {
    const pick = (lines: string[]) => lines.filter((l) => l.trim() !== '').slice(-n);
    const err = pick(this.err);
    const [lines, which] = err.length > 0 ? [err, 'stderr'] : [pick(this.out), 'stdout'];
    return lines.length === 0 ? '' : `; last lines of ${this.name}'s ${which}:\n    ${lines.join('\n    ')}`;
  }

  write(text: string): void {
    this.child.stdin?.write(text);
  }

  /** Ends its stdin (it reads end-of-file). */
  closeStdin(): void {
    this.child.stdin?.end();
  }

  /** Sends a signal to the process itself; nothing once it has exited. */
  kill(sig: NodeJS.Signals = 'SIGTERM'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(sig);
  }

  /** Sends a signal to its process group (to the process alone when it has no group of its own). */
  killGroup(sig: NodeJS.Signals = 'SIGKILL'): void {
    const pid = this.child.pid;
    if (!this.group || pid === undefined) return this.kill(sig);
    try {
      // Safe after the leader is gone: a group id is not reused while the group has members.
      process.kill(-pid, sig);
    } catch {
      // the group is empty
    }
  }

  /**
   * SIGTERM (or `sig`) to the group; SIGKILL after `graceMs`; then whatever is
   * left in its group goes too. Resolves once it has ended; nothing if it already had.
   */
  async stop(graceMs = 3000, sig: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.end) return;
    this.killGroup(sig);
    if (!(await this.endsWithin(graceMs))) {
      this.killGroup('SIGKILL');
      await this.endsWithin(DRAIN_GRACE_MS + 1000);
    }
    this.killGroup('SIGKILL');
  }

  /** Waits for its end, SIGKILLing it after `timeoutMs`. */
  async wait(timeoutMs = 15000): Promise<Exit> {
    if (!(await this.endsWithin(timeoutMs))) this.killGroup('SIGKILL');
    return this.exited;
  }

  private async endsWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
    const ended = await Promise.race([this.exited.then(() => true), late]);
    clearTimeout(timer);
    return ended;
  }
}

export interface RunResult {
  /** The exit status (see exitStatus): 127 when the command could not be started. */
  code: number;
  out: string;
  err: string;
  exit: Exit;
}

export interface RunOptions extends Pick<ChildOptions, 'env' | 'cwd' | 'group'> {
  /** SIGKILL it (its group, with `group`) after this long. */
  timeoutMs?: number;
}

/** Runs a command to completion and returns its status and output; never throws. */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const c = new Child(cmd, args, opts);
  const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => c.killGroup('SIGKILL'), opts.timeoutMs);
  const exit = await c.exited;
  clearTimeout(timer);
  return { code: exitStatus(exit), out: c.stdout, err: exit.error ? exit.error.message : c.stderr, exit };
}

/** Runs a command to completion; throws one sentence naming it and its stderr when it fails. */
export async function mustRun(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.exit.error) throw new Error(`cannot run ${cmd}: ${r.exit.error.message}`);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (status ${r.code}): ${r.err.trim().slice(0, 500) || 'no message'}`);
  return r;
}
