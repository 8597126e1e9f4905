// Watch registration and firing. A watch on W fires for a change at W or
// anywhere below it; for a node removed below a removed root, only a watch on
// exactly that node fires. A watch set with a relative path gets relative
// event paths. A watcher only hears about nodes it may read.
//
// Nothing here scans every watch: watches are indexed per watcher (the
// duplicate check, UNWATCH) and in a tree of path components (firing walks
// only the changed path's own components), and counted per domain.
import { Perm } from '../wire';
import { domainPath } from './path';
import { accessFor, Caller, PERM_READ } from './perms';
import { Change } from './store';

/** The side of a connection that watches need: who it is and where its events go. */
export interface Watcher extends Caller {
  /** Queues the event `watch` fires for a change at absolute path `path` (or the special name). */
  queueEvent(watch: Watch, path: string): void;
}

export interface Watch {
  readonly watcher: Watcher;
  /** Absolute path or special name. */
  readonly path: string;
  /** Opaque bytes, held as a latin1 string (one char per byte). */
  readonly token: string;
  /** The prefix stripped from event paths of a relative watch ("/local/domain/<id>/"). */
  readonly relativeTo?: string;
  /** Registration order: events of one change reach a watcher in this order. */
  readonly seq: number;
}

interface PathNode {
  children: Map<string, PathNode>;
  watches: Set<Watch>;
}

const newPathNode = (): PathNode => ({ children: new Map(), watches: new Set() });

const key = (path: string, token: string): string => `${path}\0${token}`;

export class Watches {
  private readonly root = newPathNode();
  private readonly special = new Map<string, Set<Watch>>();
  private readonly byWatcher = new Map<Watcher, Map<string, Watch>>();
  private readonly perDomain = new Map<number, number>();
  private count = 0;
  private seq = 0;

  /** Adds a watch; undefined if this watcher already has one with this path and token. */
  add(watcher: Watcher, path: string, token: string, relative: boolean): Watch | undefined {
    let mine = this.byWatcher.get(watcher);
    if (mine?.has(key(path, token))) return undefined;
    const watch: Watch = { watcher, path, token, relativeTo: relative ? `${domainPath(watcher.domid)}/` : undefined, seq: this.seq++ };
    if (!mine) this.byWatcher.set(watcher, (mine = new Map()));
    mine.set(key(path, token), watch);
    this.setOf(path, true)?.add(watch);
    this.count++;
    if (!watcher.privileged) this.perDomain.set(watcher.domid, this.countFor(watcher.domid) + 1);
    return watch;
  }

  /** Removes a watch; false if there was none. */
  remove(watcher: Watcher, path: string, token: string): boolean {
    const mine = this.byWatcher.get(watcher);
    const watch = mine?.get(key(path, token));
    if (!mine || !watch) return false;
    mine.delete(key(path, token));
    if (mine.size === 0) this.byWatcher.delete(watcher);
    this.unlink(watch);
    return true;
  }

  removeAll(watcher: Watcher): void {
    const mine = this.byWatcher.get(watcher);
    if (!mine) return;
    this.byWatcher.delete(watcher);
    for (const w of mine.values()) this.unlink(w);
  }

  /** Number of watches of all connections. */
  get size(): number {
    return this.count;
  }

  /** Watches held by one watcher. */
  countOf(watcher: Watcher): number {
    return this.byWatcher.get(watcher)?.size ?? 0;
  }

  /** Watches held by a domain's unprivileged connections. */
  countFor(domid: number): number {
    return this.perDomain.get(domid) ?? 0;
  }

  /** The path an event about `path` carries for this watch. */
  eventPath(watch: Watch, path: string): string {
    if (watch.relativeTo && path.startsWith(watch.relativeTo)) return path.slice(watch.relativeTo.length);
    return path;
  }

  /** Delivers the events for a list of store changes. */
  fire(changes: readonly Change[]): void {
    const hits: Watch[] = [];
    for (const change of changes) {
      hits.length = 0;
      this.matching(change.path, change.exact, hits);
      if (hits.length > 1) hits.sort((a, b) => a.seq - b.seq);
      for (const w of hits) {
        if (mayRead(w.watcher, change.perms, change.oldPerms)) w.watcher.queueEvent(w, change.path);
      }
    }
  }

  /** Fires a special event (@introduceDomain, @releaseDomain) for watchers allowed by its perms. */
  fireSpecial(name: string, perms: readonly Perm[]): void {
    const set = this.special.get(name);
    if (!set) return;
    for (const w of [...set].sort((a, b) => a.seq - b.seq)) {
      if (mayRead(w.watcher, perms)) w.watcher.queueEvent(w, name);
    }
  }

  /** Watches on `path` (exact) or on it and every ancestor, into `out`. */
  private matching(path: string, exact: boolean, out: Watch[]): void {
    let node: PathNode | undefined = this.root;
    if (!exact || path === '/') for (const w of node.watches) out.push(w);
    if (path === '/') return;
    let start = 1;
    while (node) {
      const slash = path.indexOf('/', start);
      const end = slash < 0 ? path.length : slash;
      node = node.children.get(path.slice(start, end));
      if (!node) return;
      if (slash < 0) {
        for (const w of node.watches) out.push(w);
        return;
      }
      if (!exact) for (const w of node.watches) out.push(w);
      start = slash + 1;
    }
  }

  /** The set of watches on `path`, made (with its path nodes) when `create`. */
  private setOf(path: string, create: boolean): Set<Watch> | undefined {
    if (path.startsWith('@')) {
      let set = this.special.get(path);
      if (!set && create) this.special.set(path, (set = new Set()));
      return set;
    }
    let node = this.root;
    if (path === '/') return node.watches;
    for (const part of path.slice(1).split('/')) {
      let next = node.children.get(part);
      if (!next) {
        if (!create) return undefined;
        node.children.set(part, (next = newPathNode()));
      }
      node = next;
    }
    return node.watches;
  }

  private unlink(watch: Watch): void {
    this.count--;
    if (!watch.watcher.privileged) {
      const n = this.countFor(watch.watcher.domid) - 1;
      if (n === 0) this.perDomain.delete(watch.watcher.domid);
      else this.perDomain.set(watch.watcher.domid, n);
    }
    if (watch.path.startsWith('@')) {
      const set = this.special.get(watch.path);
      set?.delete(watch);
      if (set?.size === 0) this.special.delete(watch.path);
      return;
    }
    // Delete, then prune path nodes left with neither watches nor children.
    const trail: [PathNode, string][] = [];
    let node = this.root;
    if (watch.path !== '/') {
      for (const part of watch.path.slice(1).split('/')) {
        const next = node.children.get(part);
        if (!next) return;
        trail.push([node, part]);
        node = next;
      }
    }
    node.watches.delete(watch);
    for (let i = trail.length - 1; i >= 0; i--) {
      const [parent, part] = trail[i];
      const child = parent.children.get(part) as PathNode;
      if (child.watches.size > 0 || child.children.size > 0) break;
      parent.children.delete(part);
    }
  }
}

function mayRead(who: Caller, perms: readonly Perm[], oldPerms?: readonly Perm[]): boolean {
  if (accessFor(who, perms) & PERM_READ) return true;
  return oldPerms !== undefined && (accessFor(who, oldPerms) & PERM_READ) !== 0;
}
