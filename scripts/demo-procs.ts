// Child processes of the demo: each runs in its own process group (so a
// Ctrl-C in the terminal reaches only the demo, which then stops everything
// in order), its output is collected line by line, and every wait has a
// deadline so the demo never hangs.
import { spawn, ChildProcess } from 'node:child_process';
import os from 'node:os';

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

/** A wait that ran out of time or was cut short by Ctrl-C; its message is for people. */
export class WaitError extends Error {}

export interface SpawnOptions {
  env: NodeJS.ProcessEnv;
  /** Called with each stdout line as it arrives (e.g. to show the stats table live). */
  onStdout?: (line: string) => void;
  /** Called with each stderr line as it arrives. */
  onStderr?: (line: string) => void;
}

export class DemoProcess {
  readonly out: string[] = [];
  readonly err: string[] = [];
  /** Resolves with the exit code (128 + signal number when killed). */
  readonly exited: Promise<number>;
  private exitCode: number | undefined;
  /** The process itself has exited (its output may still be arriving). */
  private gone = false;
  private wake: (() => void)[] = [];
  private readonly child: ChildProcess;

  constructor(readonly name: string, cmd: string, args: string[], opts: SpawnOptions) {
    this.child = spawn(cmd, args, { env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.lines(this.child.stdout, this.out, opts.onStdout);
    this.lines(this.child.stderr, this.err, opts.onStderr);
    this.exited = new Promise((resolve) => {
      this.child.once('error', () => this.finish(127, resolve));
      // 'close' comes once the output is read to the end; a grandchild that
      // inherited the pipes could hold them open, so 'exit' is enough after 1 s.
      this.child.once('exit', (code, signal) => {
        this.gone = true;
        setTimeout(() => this.finish(code ?? 128 + signalNumber(signal), resolve), 1000).unref();
      });
      this.child.once('close', (code, signal) => this.finish(code ?? 128 + signalNumber(signal), resolve));
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  private finish(code: number, resolve: (code: number) => void): void {
    if (this.exitCode !== undefined) return;
    this.exitCode = code;
    resolve(code);
    this.notify();
  }

  private notify(): void {
    for (const w of this.wake.splice(0)) w();
  }

  private lines(stream: NodeJS.ReadableStream | null, into: string[], each?: (line: string) => void): void {
    let partial = '';
    stream?.on('data', (chunk: Buffer) => {
      const parts = (partial + chunk.toString()).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        into.push(line);
        each?.(line);
      }
      this.notify();
    });
  }

  /**
   * Waits until `pick` returns a value for one of the lines (checked again on
   * every new line and every 100 ms); throws WaitError on timeout, on abort or
   * if the process exits first.
   */
  async waitFor<T>(what: string, pick: () => T | undefined, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = pick();
      if (hit !== undefined) return hit;
      if (signal?.aborted) throw new WaitError(`interrupted while waiting for ${what}`);
      if (!this.running) throw new WaitError(`${this.name} exited (status ${this.exitCode}) before ${what}${this.tail()}`);
      if (Date.now() > deadline) throw new WaitError(`timed out after ${timeoutMs / 1000} s waiting for ${what}${this.tail()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        this.wake.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The last lines of stderr, to show when something went wrong. */
  tail(n = 6): string {
    const lines = this.err.filter((l) => l.trim() !== '').slice(-n);
    return lines.length === 0 ? '' : `; last lines of ${this.name}'s stderr:\n    ${lines.join('\n    ')}`;
  }

  /** Sends a signal to the process (not its group); ignored once it is gone. */
  signal(sig: NodeJS.Signals): void {
    if (this.gone || this.child.pid === undefined) return;
    try {
      process.kill(this.child.pid, sig);
    } catch {
      // already gone
    }
  }

  /** SIGTERM, then after `graceMs` SIGKILL to its whole process group. Resolves with the exit code. */
  async stop(graceMs: number): Promise<number> {
    this.signal('SIGTERM');
    const timer = new Promise<'late'>((r) => setTimeout(() => r('late'), graceMs).unref());
    if ((await Promise.race([this.exited, timer])) === 'late') this.kill();
    return this.exited;
  }

  /** SIGKILL to the process group (the process and anything it started without detaching). */
  kill(): void {
    const pid = this.child.pid;
    if (pid === undefined || this.gone) return;
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  if (!signal) return 0;
  return os.constants.signals[signal] ?? 0;
}

/** Runs a command to completion (stdout and stderr collected), killing it after `timeoutMs`. */
export async function runCommand(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<{ code: number; out: string; err: string }> {
  const p = new DemoProcess(cmd, cmd, args, { env });
  const timer = setTimeout(() => p.kill(), timeoutMs);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, out: p.out.join('\n'), err: p.err.join('\n') };
}
