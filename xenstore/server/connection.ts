// One client connection as the server sees it: which domain it is, its open
// transactions, and how replies and watch events leave it. Events raised while
// this connection's own request is being answered are sent after the reply,
// so a new watch's reply comes before its initial event.
import { Message, Op, PAYLOAD_MAX, strings } from '../wire';
import { reply } from './call';
import type { Core } from './core';
import { Actor } from './store';
import { Transaction } from './transaction';
import { Watcher } from './watches';

export class Connection implements Watcher {
  readonly transactions = new Map<number, Transaction>();
  private nextTxId = 1;
  private holding = false;
  private held: Message[] = [];
  private closedFlag = false;
  /** Events that could not be sent because they would exceed the payload limit. */
  droppedEvents = 0;

  /**
   * @param send delivers one message to the client; it may close the
   * connection (a client that does not read its messages).
   */
  constructor(
    readonly core: Core,
    readonly domid: number,
    readonly privileged: boolean,
    private readonly send: (msg: Message) => void,
    /** Called once when the server closes this connection (a released domain). */
    private readonly onClose?: () => void,
  ) {
    core.connections.add(this);
  }

  get actor(): Actor {
    return { domid: this.domid, privileged: this.privileged, quota: this.core.quota };
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Answers one request. */
  handle(req: Message): void {
    if (this.closedFlag) return;
    this.holding = true;
    try {
      this.send(reply(this.core, this, req));
    } finally {
      this.holding = false;
      const held = this.held;
      this.held = [];
      for (const m of held) if (!this.closedFlag) this.send(m);
    }
  }

  sendEvent(path: string, token: string): void {
    if (this.closedFlag) return;
    const payload = strings(path, token);
    if (payload.length > PAYLOAD_MAX) {
      this.droppedEvents++;
      return;
    }
    const msg: Message = { type: Op.WATCH_EVENT, reqId: 0, txId: 0, payload };
    if (this.holding) this.held.push(msg);
    else this.send(msg);
  }

  openTransaction(): Transaction {
    let id = this.nextTxId;
    while (id === 0 || this.transactions.has(id)) id = (id + 1) >>> 0;
    this.nextTxId = (id + 1) >>> 0;
    const tx = new Transaction(id, this.core.live);
    this.transactions.set(id, tx);
    return tx;
  }

  /** Drops watches and aborts transactions; idempotent. */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.core.watches.removeAll(this);
    this.transactions.clear();
    this.core.connections.delete(this);
    this.held = [];
    this.onClose?.();
  }
}
