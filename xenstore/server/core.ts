// The state one xenstored serves: the live tree, the watches, the introduced
// domains and the open connections. Transport-free: the socket listener and
// the table tests both drive it through Connection.
import { Perm } from '../wire';
import { ChildList } from './children';
import { SPECIAL_PATHS, SpecialPath } from './path';
import { Quota, XEN_DEFAULT_QUOTA } from './quota';
import { LiveTree, Node } from './store';
import { Watches } from './watches';
import type { Budget, Connection } from './connection';

export interface CoreHooks {
  /** A domain was introduced (XS_INTRODUCE): the listener opens its socket. */
  introduced?(domid: number): void;
  /** A domain was released (XS_RELEASE): its connections are gone; the listener closes its socket. */
  released?(domid: number): void;
}

export interface CoreOptions {
  quota?: Partial<Quota>;
  hooks?: CoreHooks;
}

export class Core {
  readonly live = new LiveTree();
  readonly watches = new Watches();
  readonly quota: Quota;
  readonly connections = new Set<Connection>();
  readonly specialPerms = new Map<SpecialPath, Perm[]>();
  private readonly domains = new Set<number>();
  private readonly hooks: CoreHooks;
  /** The event budget each domain's connections share, while it has any. */
  private readonly budgets = new Map<number, { budget: Budget; users: number }>();

  constructor(opts: CoreOptions = {}) {
    this.quota = { ...XEN_DEFAULT_QUOTA, ...opts.quota };
    this.hooks = opts.hooks ?? {};
    for (const name of SPECIAL_PATHS) this.specialPerms.set(name, [{ access: 'n', domid: 0 }]);
    // What C xenstored creates at start.
    this.live.put('/', { ...(this.live.get('/') as Node), children: ChildList.of(['tool']) });
    this.live.put('/tool', { value: Buffer.alloc(0), perms: [{ access: 'n', domid: 0 }], children: ChildList.of(['xenstored']) });
    this.live.put('/tool/xenstored', { value: Buffer.alloc(0), perms: [{ access: 'n', domid: 0 }], children: ChildList.EMPTY });
  }

  /** The event budget of a new connection: its domain's, or its own for dom0. */
  budgetFor(conn: Connection): Budget {
    if (conn.privileged) return { used: 0, limit: this.quota.memory };
    let b = this.budgets.get(conn.domid);
    if (!b) this.budgets.set(conn.domid, (b = { budget: { used: 0, limit: this.quota.memory }, users: 0 }));
    b.users++;
    return b.budget;
  }

  /** A connection closed: its domain's budget goes with its last connection. */
  budgetReleased(conn: Connection): void {
    if (conn.privileged) return;
    const b = this.budgets.get(conn.domid);
    if (b && --b.users === 0) this.budgets.delete(conn.domid);
  }

  /** dom0 is always introduced. */
  isIntroduced(domid: number): boolean {
    return domid === 0 || this.domains.has(domid);
  }

  /** Introduces a domain and fires @introduceDomain; introducing again is a no-op. */
  introduce(domid: number): void {
    if (this.isIntroduced(domid)) return;
    this.domains.add(domid);
    this.hooks.introduced?.(domid);
    this.watches.fireSpecial('@introduceDomain', this.specialPerms.get('@introduceDomain') as Perm[]);
  }

  /**
   * Releases a domain: closes its connections, hands the nodes it owns to
   * dom0 and drops its permission entries elsewhere (so a later domain with
   * the same id inherits nothing), then fires @releaseDomain. False if it was
   * not introduced.
   */
  release(domid: number): boolean {
    if (domid === 0 || !this.domains.delete(domid)) return false;
    for (const conn of [...this.connections]) if (conn.domid === domid && !conn.privileged) conn.close();
    this.revoke(domid);
    this.hooks.released?.(domid);
    this.watches.fireSpecial('@releaseDomain', this.specialPerms.get('@releaseDomain') as Perm[]);
    return true;
  }

  /** Open transactions of a domain over all its unprivileged connections. */
  transactionsOf(domid: number): number {
    let n = 0;
    for (const c of this.connections) if (c.domid === domid && !c.privileged) n += c.transactions.size;
    return n;
  }

  /** The introduced domains other than dom0. */
  introducedDomains(): number[] {
    return [...this.domains].sort((a, b) => a - b);
  }

  private revoke(domid: number): void {
    for (const path of [...this.live.paths()]) {
      const node = this.live.get(path) as Node;
      if (!node.perms.some((p) => p.domid === domid)) continue;
      const [owner, ...rest] = node.perms;
      const perms = [owner.domid === domid ? { access: owner.access, domid: 0 } : owner, ...rest.filter((p) => p.domid !== domid)];
      this.live.put(path, { ...node, perms });
    }
  }
}
