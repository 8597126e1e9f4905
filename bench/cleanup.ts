// Every process and resource the bench starts is recorded here, so that a
// failure or Ctrl-C still stops them (each with its own process group) and
// undoes the machine changes (netns, hugepages, mounts, sim dir), newest
// first.
import { Child, ChildOptions } from '../harness/child';

const running = new Set<Child>();

let shuttingDown = false;

/** Starts cmd in its own process group, recorded until it ends. Refused once cleanup has begun. */
export function start(name: string, cmd: string, args: string[], opts: Omit<ChildOptions, 'name' | 'group'> = {}): Child {
  if (shuttingDown) throw new Error('the bench is stopping: nothing new is started');
  const p = new Child(cmd, args, { ...opts, name, group: true });
  running.add(p);
  void p.exited.then(() => running.delete(p));
  return p;
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
  while (running.size) await Promise.all([...running].map((p) => p.stop(1500).catch(() => undefined)));
  while (undos.length) {
    const u = undos.pop()!;
    try {
      await u.fn();
    } catch (err) {
      log(`cleanup: could not ${u.what}: ${(err as Error).message}`);
    }
  }
}
