// One client connection as the server sees it: which domain it is, its open
// transactions, and its queue of replies and watch events.
//
// Events raised while this connection's own request is being answered are
// sent after the reply, so a new watch's reply comes before its initial event.
//
// Watch events are the one output a client does not ask for, so they are
// bounded here, before anything is allocated for them. An event is queued as
// (watch, changed path) and costs its wire size plus a fixed overhead against
// a byte budget: the domain's (shared by its connections) or, for dom0, this
// connection's. The payload is built only when the transport takes it.
//   - An event equal to one still queued is dropped (C xenstored does this).
//   - An event that does not fit the budget is not queued: instead its watch
//     gets one collapsed event, for the watch's own path, queued once until
//     it is sent; the watch's further events are dropped meanwhile. A client
//     that hears about its watch's own path re-reads what it watches (as it
//     does after the initial event), so nothing is lost, and memory stays
//     within budget plus one event per watch. C xenstored drops such events
//     for a domain and has no bound for dom0; nobody is disconnected for
//     being slow, dom0 least of all.
import { HEADER_SIZE, Message, Op, PAYLOAD_MAX, strings } from '../wire';
import { reply } from './call';
import type { Core } from './core';
import { Actor } from './store';
import { Transaction } from './transaction';
import { Watch, Watcher } from './watches';

/** What a queued entry costs beyond its wire bytes (the entry object, the dedup set). */
const ENTRY_OVERHEAD = 64;

/** A byte budget; a domain's connections share one. */
export interface Budget {
  used: number;
  readonly limit: number;
}

/** Where a connection's messages go. */
export interface Output {
  /** Hands one message to the transport. */
  send(msg: Message): void;
  /** False while the transport holds enough unsent output (messages wait in the queue). */
  writable(): boolean;
}

type Entry =
  | { kind: 'reply'; msg: Message; cost: number }
  | { kind: 'event'; watch: Watch; path: string; cost: number }
  | { kind: 'collapsed'; watch: Watch; cost: number };

/** What happened to this connection's events (for tests and logs). */
export interface EventCounts {
  sent: number;
  /** Equal to an event still queued. */
  duplicates: number;
  /** Folded into their watch's collapsed event. */
  collapsed: number;
  /** Longer than a message may be (C xenstored drops these too). */
  oversize: number;
}

export class Connection implements Watcher {
  readonly transactions = new Map<number, Transaction>();
  readonly events: EventCounts = { sent: 0, duplicates: 0, collapsed: 0, oversize: 0 };
  readonly budget: Budget;
  private nextTxId = 1;
  private holding = false;
  private held: Entry[] = [];
  private queue: Entry[] = [];
  private head = 0;
  /** Absolute paths with an event queued, per watch (duplicates are dropped). */
  private readonly pending = new Map<Watch, Set<string>>();
  /** Watches with a collapsed event queued. */
  private readonly overflowed = new Set<Watch>();
  private closedFlag = false;
  private readonly out: Output;

  /**
   * @param out the transport, or a function taking every message at once
   * (in-memory use: tests, the fuzzer).
   */
  constructor(
    readonly core: Core,
    readonly domid: number,
    readonly privileged: boolean,
    out: Output | ((msg: Message) => void),
    /** Called once when the server closes this connection (a released domain). */
    private readonly onClose?: () => void,
  ) {
    this.out = typeof out === 'function' ? { send: out, writable: () => true } : out;
    this.budget = core.budgetFor(this);
    core.connections.add(this);
  }

  get actor(): Actor {
    return { domid: this.domid, privileged: this.privileged, quota: this.core.quota };
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Entries waiting for the transport. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /**
   * Whether the server may answer this connection's next request now: only
   * when nothing waits in its queue and its transport takes output, and for
   * a domain while fewer than its `outstanding` quota of messages are still
   * unflushed by the transport. Otherwise the server stops reading it.
   */
  ready(unflushed = 0): boolean {
    if (this.closedFlag || this.queued > 0 || !this.out.writable()) return false;
    return this.privileged || unflushed < this.core.quota.outstanding;
  }

  /** Answers one request. */
  handle(req: Message): void {
    if (this.closedFlag) return;
    this.holding = true;
    let answer: Message;
    try {
      answer = reply(this.core, this, req);
    } finally {
      this.holding = false;
    }
    if (this.closedFlag) return;
    this.queue.push({ kind: 'reply', msg: answer, cost: 0 });
    for (const e of this.held) this.queue.push(e);
    this.held = [];
    this.flush();
  }

  queueEvent(watch: Watch, path: string): void {
    if (this.closedFlag) return;
    if (this.overflowed.has(watch)) {
      this.events.collapsed++;
      return;
    }
    const size = HEADER_SIZE + eventPathLength(watch, path) + 1 + watch.token.length + 1;
    if (size - HEADER_SIZE > PAYLOAD_MAX) {
      this.events.oversize++;
      return;
    }
    const special = path.startsWith('@');
    let paths = this.pending.get(watch);
    if (!special && paths?.has(path)) {
      this.events.duplicates++;
      return;
    }
    const cost = size + ENTRY_OVERHEAD;
    let entry: Entry;
    if (this.budget.used + cost > this.budget.limit) {
      // The watch's own path is never longer than a path below it.
      this.overflowed.add(watch);
      this.events.collapsed++;
      const own = HEADER_SIZE + eventPathLength(watch, watch.path) + 1 + watch.token.length + 1 + ENTRY_OVERHEAD;
      entry = { kind: 'collapsed', watch, cost: own };
    } else {
      entry = { kind: 'event', watch, path, cost };
      if (!special) {
        if (!paths) this.pending.set(watch, (paths = new Set()));
        paths.add(path);
      }
    }
    this.budget.used += entry.cost;
    if (this.holding) this.held.push(entry);
    else {
      this.queue.push(entry);
      this.flush();
    }
  }

  /** Sends queued messages while the transport takes them. */
  flush(): void {
    while (!this.closedFlag && this.head < this.queue.length && this.out.writable()) {
      const e = this.queue[this.head];
      this.queue[this.head++] = undefined as unknown as Entry;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.out.send(this.take(e));
    }
  }

  openTransaction(): Transaction {
    let id = this.nextTxId;
    while (id === 0 || this.transactions.has(id)) id = (id + 1) >>> 0;
    this.nextTxId = (id + 1) >>> 0;
    const tx = new Transaction(id, this.core.live, { privileged: this.privileged, maxNodes: this.core.quota.transactionNodes });
    this.transactions.set(id, tx);
    return tx;
  }

  /** Drops watches, transactions and queued output; idempotent. */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.core.watches.removeAll(this);
    this.transactions.clear();
    this.core.connections.delete(this);
    for (let i = this.head; i < this.queue.length; i++) this.budget.used -= this.queue[i].cost;
    for (const e of this.held) this.budget.used -= e.cost;
    this.queue = [];
    this.held = [];
    this.head = 0;
    this.pending.clear();
    this.overflowed.clear();
    this.core.budgetReleased(this);
    this.onClose?.();
  }

  /** Builds the message for an entry leaving the queue and releases its cost. */
  private take(e: Entry): Message {
    this.budget.used -= e.cost;
    if (e.kind === 'reply') return e.msg;
    this.events.sent++;
    let path: string;
    if (e.kind === 'collapsed') {
      this.overflowed.delete(e.watch);
      path = e.watch.path;
    } else {
      path = e.path;
      const paths = this.pending.get(e.watch);
      paths?.delete(path);
      if (paths?.size === 0) this.pending.delete(e.watch);
    }
    const shown = this.core.watches.eventPath(e.watch, path);
    return { type: Op.WATCH_EVENT, reqId: 0, txId: 0, payload: strings(shown, Buffer.from(e.watch.token, 'latin1')) };
  }
}

/** Length of the path an event for `path` shows to `watch` (paths are ASCII), without building it. */
function eventPathLength(watch: Watch, path: string): number {
  if (watch.relativeTo && path.startsWith(watch.relativeTo)) return path.length - watch.relativeTo.length;
  return path.length;
}
