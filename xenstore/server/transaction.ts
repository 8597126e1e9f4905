// Transactions, as C xenstored does them: a transaction keeps its own copy of
// every node it touches (read or written), taken at first touch. Committing
// checks that none of those nodes changed in the live store since, and that
// none had changed since the transaction started when it was first touched;
// otherwise the commit fails with EAGAIN and the client redoes the whole
// transaction. Watches fire at commit, once per changed node (a node written
// 1,000 times in one transaction is one event, as in C xenstored).
//
// A domain's transaction may touch at most `transactionNodes` nodes (C's
// XSA-326 limit). The request that would touch one more fails with ENOSPC and
// leaves the transaction failed: it may be half done, so committing it gives
// ENOMEM, as C xenstored's trans->fail does.
import { QuotaReached, TransactionAgain, TransactionFailed } from './errors';
import { Actor, Change, LiveTree, Node, Tree } from './store';

interface Entry {
  /** The transaction's version of the node (undefined: absent). */
  node: Node | undefined;
  /** The live node's gen at first touch (-1: it did not exist). */
  baseGen: number;
  dirty: boolean;
}

export interface TransactionLimits {
  privileged: boolean;
  /** Nodes this transaction may touch (ignored when privileged). */
  maxNodes: number;
}

export class Transaction implements Tree {
  private entries = new Map<string, Entry>();
  private ownedDelta = new Map<number, number>();
  private startGen: number;
  private stale = false;
  private failed = false;
  /** Changes to announce at commit, one per node, in order of first change. */
  private readonly changed = new Map<string, Change>();

  constructor(
    readonly id: number,
    private readonly live: LiveTree,
    private readonly limits: TransactionLimits,
  ) {
    this.startGen = live.generation;
  }

  get(path: string): Node | undefined {
    return this.touch(path).node;
  }

  put(path: string, node: Omit<Node, 'gen'>): void {
    const entry = this.touch(path);
    if (entry.node) this.own(entry.node.perms[0].domid, -1);
    this.own(node.perms[0].domid, +1);
    entry.node = { ...node, gen: this.live.nextGen() };
    entry.dirty = true;
  }

  del(path: string): void {
    const entry = this.touch(path);
    if (!entry.node) return;
    this.own(entry.node.perms[0].domid, -1);
    entry.node = undefined;
    entry.dirty = true;
  }

  owned(domid: number): number {
    return this.live.owned(domid) + (this.ownedDelta.get(domid) ?? 0);
  }

  /** Number of nodes this transaction has touched. */
  get touched(): number {
    return this.entries.size;
  }

  /**
   * Records what a request changed. A node changed twice is announced once:
   * to every watch on or above it unless every change was an exact one (a
   * node removed below a removed root), with the perms it ends with and, for
   * watchers who could read it before, the perms it started with.
   */
  record(changes: readonly Change[]): void {
    for (const c of changes) {
      const prev = this.changed.get(c.path);
      if (!prev) {
        this.changed.set(c.path, { ...c });
        continue;
      }
      prev.exact = prev.exact && c.exact;
      prev.oldPerms = prev.oldPerms ?? c.oldPerms ?? prev.perms;
      prev.perms = c.perms;
    }
  }

  /** Marks the transaction as unable to commit (a request failed half-way). */
  fail(): void {
    this.failed = true;
  }

  /**
   * Applies the transaction to the live store, or throws TransactionAgain if
   * another change got in the way (nothing is applied then). Returns the
   * changes for watchers.
   */
  commit(actor: Actor): Change[] {
    if (this.failed) throw new TransactionFailed('a request in this transaction failed half-way');
    if (this.stale) throw new TransactionAgain('a node changed after the transaction started');
    for (const [path, entry] of this.entries) {
      const now = this.live.get(path)?.gen ?? -1;
      if (now !== entry.baseGen) throw new TransactionAgain(path);
    }
    if (!actor.privileged) {
      const delta = this.ownedDelta.get(actor.domid) ?? 0;
      if (delta > 0 && this.live.owned(actor.domid) + delta > actor.quota.nodes) throw new QuotaReached('commit');
    }
    for (const [path, entry] of this.entries) {
      if (!entry.dirty) continue;
      if (entry.node) this.live.put(path, entry.node);
      else this.live.del(path);
    }
    return [...this.changed.values()];
  }

  private touch(path: string): Entry {
    let entry = this.entries.get(path);
    if (!entry) {
      if (!this.limits.privileged && this.entries.size >= this.limits.maxNodes) {
        this.failed = true;
        throw new QuotaReached(`the transaction touched ${this.entries.size} nodes, the limit`);
      }
      const node = this.live.get(path);
      if (node && node.gen > this.startGen) this.stale = true;
      entry = { node, baseGen: node?.gen ?? -1, dirty: false };
      this.entries.set(path, entry);
    }
    return entry;
  }

  private own(domid: number, delta: number): void {
    this.ownedDelta.set(domid, (this.ownedDelta.get(domid) ?? 0) + delta);
  }
}
