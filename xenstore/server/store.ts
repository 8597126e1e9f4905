// The node tree and the store operations with Xen's permission and quota
// rules. Nodes are kept in a flat map keyed by absolute path; each node lists
// its children's names in creation order (children.ts). A node object is
// never mutated: a change replaces it, so a transaction can hold on to what
// it saw.
//
// Operations are written once against the Tree interface, which is either the
// live store (LiveTree) or a transaction's view of it (transaction.ts).
import { Perm } from '../wire';
import { ChildList } from './children';
import { InvalidArgument, NoEntry, NotPermitted, PermissionDenied, QuotaReached, TransactionAgain } from './errors';
import { baseName, childPath, parentOf } from './path';
import { accessFor, allows, Caller, inheritPerms, PERM_OWNER, PERM_READ, PERM_WRITE } from './perms';
import { Quota } from './quota';

export interface Node {
  readonly value: Buffer;
  readonly perms: readonly Perm[];
  readonly children: ChildList;
  /** Changes whenever the node (value, perms or list of children) changes. */
  readonly gen: number;
}

/** What an operation changed, for watches: fired with `path`, seen by those who may read it. */
export interface Change {
  path: string;
  /** True: only watches on exactly this path fire (a node removed below the removed root). */
  exact: boolean;
  perms: readonly Perm[];
  /** For a perms change: a watcher who could read the node before also sees the event. */
  oldPerms?: readonly Perm[];
}

export interface Tree {
  get(path: string): Node | undefined;
  /** Stores a node (its gen is assigned by the tree). */
  put(path: string, node: Omit<Node, 'gen'>): void;
  del(path: string): void;
  /** Nodes currently owned by a domain. */
  owned(domid: number): number;
}

/** A caller plus the limits that apply to it. */
export interface Actor extends Caller {
  quota: Quota;
}

/** The live store: the tree every connection sees outside transactions. */
export class LiveTree implements Tree {
  private nodes = new Map<string, Node>();
  private owners = new Map<number, number>();
  private gen = 0;

  constructor() {
    this.nodes.set('/', { value: Buffer.alloc(0), perms: [{ access: 'n', domid: 0 }], children: ChildList.EMPTY, gen: 0 });
    this.owners.set(0, 1);
  }

  get(path: string): Node | undefined {
    return this.nodes.get(path);
  }

  put(path: string, node: Omit<Node, 'gen'>): void {
    const old = this.nodes.get(path);
    if (old) this.count(old.perms[0].domid, -1);
    this.count(node.perms[0].domid, +1);
    this.nodes.set(path, { ...node, gen: this.nextGen() });
  }

  del(path: string): void {
    const old = this.nodes.get(path);
    if (!old) return;
    this.count(old.perms[0].domid, -1);
    this.nodes.delete(path);
  }

  owned(domid: number): number {
    return this.owners.get(domid) ?? 0;
  }

  /** A fresh generation number (also used by transactions for their own copies). */
  nextGen(): number {
    return ++this.gen;
  }

  /** The latest generation handed out: a transaction started now has seen everything up to it. */
  get generation(): number {
    return this.gen;
  }

  /** Every path, for whole-store passes such as revoking a released domain's rights. */
  paths(): IterableIterator<string> {
    return this.nodes.keys();
  }

  get size(): number {
    return this.nodes.size;
  }

  private count(domid: number, delta: number): void {
    const n = (this.owners.get(domid) ?? 0) + delta;
    if (n === 0) this.owners.delete(domid);
    else this.owners.set(domid, n);
  }
}

/** The nearest existing ancestor of a missing path (the root always exists). */
function nearestAncestor(tree: Tree, path: string): { path: string; node: Node } {
  let p = parentOf(path);
  while (p !== undefined) {
    const node = tree.get(p);
    if (node) return { path: p, node };
    p = parentOf(p);
  }
  throw new Error('the store has no root node');
}

/**
 * The node at `path` if `actor` has `want` on it. Like Xen's get_node, a
 * missing node is reported as EACCES rather than ENOENT when the caller has
 * no `want` access on the nearest existing ancestor, so nobody learns about
 * nodes they may not see.
 */
export function getNode(tree: Tree, actor: Actor, path: string, want: number): Node {
  const node = tree.get(path);
  if (node) {
    if (!allows(actor, node.perms, want)) throw new PermissionDenied(path);
    return node;
  }
  const ancestor = nearestAncestor(tree, path);
  if ((accessFor(actor, ancestor.node.perms) & want) === 0) throw new PermissionDenied(path);
  throw new NoEntry(path);
}

export function read(tree: Tree, actor: Actor, path: string): Buffer {
  return getNode(tree, actor, path, PERM_READ).value;
}

export function directory(tree: Tree, actor: Actor, path: string): ChildList {
  return getNode(tree, actor, path, PERM_READ).children;
}

export function getPerms(tree: Tree, actor: Actor, path: string): readonly Perm[] {
  return getNode(tree, actor, path, PERM_READ).perms;
}

const EMPTY = Buffer.alloc(0);

/** C xenstored's record header (generation, perms count, data and children lengths) and one perms entry. */
const NODE_HEADER_BYTES = 24;
const PERM_BYTES = 8;

/** A node's accounted size, as C xenstored's record: header, perms, value, child names with NULs. */
export function nodeSize(value: Buffer, perms: readonly Perm[], children: ChildList): number {
  return NODE_HEADER_BYTES + PERM_BYTES * perms.length + value.length + children.bytes;
}

/** ENOSPC when a domain would write a node whose accounted size reaches the node-size quota. */
function checkSize(actor: Actor, path: string, value: Buffer, perms: readonly Perm[], children: ChildList): void {
  if (actor.privileged) return;
  const size = nodeSize(value, perms, children);
  if (size >= actor.quota.nodeSize) throw new QuotaReached(`${path} would take ${size} bytes, the limit is ${actor.quota.nodeSize}`);
}

/**
 * Creates `path` and any missing parents, each inheriting its parent's perms.
 * Every limit is checked before anything changes.
 */
function create(tree: Tree, actor: Actor, path: string, value: Buffer): Change[] {
  const missing: string[] = [];
  let p: string | undefined = path;
  while (p !== undefined && !tree.get(p)) {
    missing.push(p);
    p = parentOf(p);
  }
  if (!actor.privileged && tree.owned(actor.domid) + missing.length > actor.quota.nodes) {
    throw new QuotaReached(path);
  }
  const topPath = parentOf(missing[missing.length - 1]) as string;
  const top = tree.get(topPath) as Node;
  const perms = inheritPerms(actor, top.perms);
  const topChildren = top.children.with(baseName(missing[missing.length - 1]));
  checkSize(actor, topPath, top.value, top.perms, topChildren);
  // Each new node but the last has one child: the next one down.
  for (let i = missing.length - 1; i >= 0; i--) {
    const children = i === 0 ? ChildList.EMPTY : ChildList.EMPTY.with(baseName(missing[i - 1]));
    checkSize(actor, missing[i], i === 0 ? value : EMPTY, perms, children);
  }
  // From the top down: each parent exists before its child is linked in.
  tree.put(topPath, { ...top, children: topChildren });
  for (let i = missing.length - 1; i >= 0; i--) {
    const children = i === 0 ? ChildList.EMPTY : ChildList.EMPTY.with(baseName(missing[i - 1]));
    tree.put(missing[i], { value: i === 0 ? value : EMPTY, perms, children });
  }
  return [{ path, exact: false, perms }];
}

function tryGetForWrite(tree: Tree, actor: Actor, path: string): Node | undefined {
  try {
    return getNode(tree, actor, path, PERM_WRITE);
  } catch (err) {
    if (err instanceof NoEntry) return undefined;
    throw err;
  }
}

export function write(tree: Tree, actor: Actor, path: string, value: Buffer): Change[] {
  const node = tryGetForWrite(tree, actor, path);
  if (!node) return create(tree, actor, path, value);
  checkSize(actor, path, value, node.perms, node.children);
  tree.put(path, { ...node, value });
  return [{ path, exact: false, perms: node.perms }];
}

/** Creates an empty node; an existing node is left alone. */
export function mkdir(tree: Tree, actor: Actor, path: string): Change[] {
  const node = tryGetForWrite(tree, actor, path);
  if (node) return [];
  return create(tree, actor, path, EMPTY);
}

/**
 * Removes a node and everything below it. Removing a missing node whose
 * parent exists succeeds (as Xen does); removing "/" is EINVAL.
 */
export function rm(tree: Tree, actor: Actor, path: string): Change[] {
  if (path === '/') throw new InvalidArgument('the root node cannot be removed');
  const node = tryGetForWrite(tree, actor, path);
  if (!node) {
    if (tree.get(parentOf(path) as string)) return [];
    throw new NoEntry(path);
  }
  const parentPath = parentOf(path) as string;
  const parent = tree.get(parentPath);
  // Only a transaction's view can lack the parent of a node it holds (each
  // node is copied at first touch, and the parent went away in between): it
  // cannot commit, so say so before changing anything.
  if (!parent) throw new TransactionAgain(`${parentPath} went away during the transaction`);
  const changes: Change[] = [];
  const removeBelow = (p: string, n: Node): void => {
    for (const name of n.children) {
      const cp = childPath(p, name);
      const child = tree.get(cp);
      if (!child) continue;
      removeBelow(cp, child);
      changes.push({ path: cp, exact: true, perms: child.perms });
      tree.del(cp);
    }
  };
  removeBelow(path, node);
  changes.push({ path, exact: false, perms: node.perms });
  tree.del(path);
  tree.put(parentPath, { ...parent, children: parent.children.without(baseName(path)) });
  return changes;
}

/** Replaces a node's perms: needs write and ownership; only dom0 may change the owner. */
export function setPerms(tree: Tree, actor: Actor, path: string, perms: readonly Perm[]): Change[] {
  if (perms.length === 0) throw new InvalidArgument('a permission list needs at least the owner entry');
  if (!actor.privileged && perms.length > actor.quota.permsPerNode) throw new QuotaReached(path);
  const node = getNode(tree, actor, path, PERM_WRITE | PERM_OWNER);
  if (!actor.privileged && perms[0].domid !== node.perms[0].domid) throw new NotPermitted(path);
  checkSize(actor, path, node.value, perms, node.children);
  tree.put(path, { ...node, perms });
  return [{ path, exact: false, perms, oldPerms: node.perms }];
}
