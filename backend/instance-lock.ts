// One back end per host: two would attach the same devices and poll the same
// rings (duplicated and reordered frames, guests falsely quarantined). Each
// back end holds an exclusive flock on a file of its platform for as long as
// it lives; the kernel drops it when the process dies, even by SIGKILL, so
// nothing stale is left. The holder's pid is written into the file, for the
// sentence the second one prints.
//   xen: /run/xsw/backend.lock        sim: <XSW_SIM_DIR>/backend.lock
import fs from 'node:fs';
import path from 'node:path';
import { defaultSimDir } from '../native/grants';
import { lockFileExclusive } from '../native/lock';

export const XEN_LOCK_FILE = '/run/xsw/backend.lock';

/** The lock file of a grant platform (the sim directory identifies a simulated host). */
export function lockFileFor(platform: 'xen' | 'sim', env: NodeJS.ProcessEnv = process.env): string {
  if (platform === 'xen') return XEN_LOCK_FILE;
  return path.join(env.XSW_SIM_DIR ? path.resolve(env.XSW_SIM_DIR) : defaultSimDir(), 'backend.lock');
}

export interface HeldLock {
  file: string;
  /** Lets go of the lock (process exit does it too). */
  release(): void;
}

/** Why the lock could not be taken: another holder (its pid when it has written it). */
export interface LockBusy {
  file: string;
  holder: number | undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function readHolder(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock on `file` (creating its directory), writes this process's
 * pid into it, and returns it; or says who holds it. Throws (with the file's
 * name) when the file cannot be created or locked.
 */
export async function takeInstanceLock(file: string): Promise<HeldLock | LockBusy> {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  const fd = lockFileExclusive(file);
  if (fd === undefined) {
    // The holder writes its pid right after locking: give it a moment.
    let holder = readHolder(file);
    for (let i = 0; i < 10 && holder === undefined; i++) {
      await sleep(50);
      holder = readHolder(file);
    }
    return { file, holder };
  }
  fs.ftruncateSync(fd, 0);
  fs.writeSync(fd, `${process.pid}\n`, 0);
  let held = true;
  return {
    file,
    release: () => {
      if (!held) return;
      held = false;
      fs.closeSync(fd);
    },
  };
}
