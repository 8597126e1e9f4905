// Watch registration and firing. A watch on W fires for a change at W or
// anywhere below it; for a node removed below a removed root, only a watch on
// exactly that node fires. A watch set with a relative path gets relative
// event paths. A watcher only hears about nodes it may read.
import { Perm } from '../wire';
import { domainPath, isSelfOrBelow } from './path';
import { accessFor, Caller, PERM_READ } from './perms';
import { Change } from './store';

/** The side of a connection that watches need: who it is and how to deliver an event. */
export interface Watcher extends Caller {
  sendEvent(path: string, token: string): void;
}

export interface Watch {
  watcher: Watcher;
  /** Absolute path or special name. */
  path: string;
  token: string;
  /** The prefix stripped from event paths of a relative watch ("/local/domain/<id>/"). */
  relativeTo?: string;
}

export class Watches {
  private list: Watch[] = [];

  /** Adds a watch; false if this watcher already has one with this path and token. */
  add(watcher: Watcher, path: string, token: string, relative: boolean): Watch | undefined {
    if (this.list.some((w) => w.watcher === watcher && w.path === path && w.token === token)) return undefined;
    const watch: Watch = { watcher, path, token, relativeTo: relative ? `${domainPath(watcher.domid)}/` : undefined };
    this.list.push(watch);
    return watch;
  }

  /** Removes a watch; false if there was none. */
  remove(watcher: Watcher, path: string, token: string): boolean {
    const i = this.list.findIndex((w) => w.watcher === watcher && w.path === path && w.token === token);
    if (i < 0) return false;
    this.list.splice(i, 1);
    return true;
  }

  removeAll(watcher: Watcher): void {
    this.list = this.list.filter((w) => w.watcher !== watcher);
  }

  /** Number of watches of all connections. */
  get size(): number {
    return this.list.length;
  }

  countFor(domid: number): number {
    let n = 0;
    for (const w of this.list) if (w.watcher.domid === domid && !w.watcher.privileged) n++;
    return n;
  }

  /** The path an event about `path` carries for this watch. */
  eventPath(watch: Watch, path: string): string {
    if (watch.relativeTo && path.startsWith(watch.relativeTo)) return path.slice(watch.relativeTo.length);
    return path;
  }

  /** Delivers the events for a list of store changes. */
  fire(changes: readonly Change[]): void {
    for (const change of changes) {
      for (const w of [...this.list]) {
        const hit = change.exact ? w.path === change.path : isSelfOrBelow(change.path, w.path);
        if (!hit || !mayRead(w.watcher, change.perms, change.oldPerms)) continue;
        w.watcher.sendEvent(this.eventPath(w, change.path), w.token);
      }
    }
  }

  /** Fires a special event (@introduceDomain, @releaseDomain) for watchers allowed by its perms. */
  fireSpecial(name: string, perms: readonly Perm[]): void {
    for (const w of [...this.list]) {
      if (w.path === name && mayRead(w.watcher, perms)) w.watcher.sendEvent(name, w.token);
    }
  }
}

function mayRead(who: Caller, perms: readonly Perm[], oldPerms?: readonly Perm[]): boolean {
  if (accessFor(who, perms) & PERM_READ) return true;
  return oldPerms !== undefined && (accessFor(who, oldPerms) & PERM_READ) !== 0;
}
