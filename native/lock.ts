// An exclusive lock that lasts as long as the process (native/common/file_lock.h):
// flock on a file, released by the kernel when the holder exits or is killed.
import { addon } from './binding';

/**
 * Takes the lock on `path` (creating the file). Returns the open fd that holds
 * it (close it to let go), or undefined when another process holds it. Throws
 * an Error with `.code` when the file cannot be opened or locked.
 */
export function lockFileExclusive(path: string): number | undefined {
  const fd = addon().lock.lockFileExclusive(path);
  return fd < 0 ? undefined : fd;
}
