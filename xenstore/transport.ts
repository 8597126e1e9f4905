// Byte transports for the XenStore client: a unix socket (dom0's xenstored),
// the xenbus character device (a guest's /dev/xen/xenbus), and an in-memory
// pair for tests. The client only sees this interface.
import fs from 'node:fs';
import net from 'node:net';
import { encode, Op, strings } from './wire';

export interface Transport {
  /** Sends bytes (a whole message at a time). */
  send(data: Buffer): void;
  onData(listener: (chunk: Buffer) => void): void;
  /** Called once when the transport closes, with the error if it failed. */
  onClose(listener: (err?: Error) => void): void;
  close(): void;
}

/** Connects to xenstored's unix socket. Rejects with a sentence naming the path and the fix. */
export function unixSocketTransport(file: string): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(file);
    const fail = (err: NodeJS.ErrnoException): void => {
      reject(new Error(`cannot connect to xenstored at ${file} (${err.code ?? err.message}): start it (for the simulated platform: eval "$(xsw-sim up)") or set XENSTORED_PATH to its socket`));
    };
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.off('error', fail);
      resolve(socketTransport(socket));
    });
  });
}

function socketTransport(socket: net.Socket): Transport {
  const closeListeners: ((err?: Error) => void)[] = [];
  let failure: Error | undefined;
  socket.on('error', (err) => {
    failure = err;
  });
  socket.on('close', () => {
    for (const l of closeListeners) l(failure);
  });
  return {
    send: (data) => {
      socket.write(data);
    },
    onData: (listener) => {
      socket.on('data', listener);
    },
    onClose: (listener) => {
      closeListeners.push(listener);
    },
    close: () => {
      socket.end();
      socket.destroy();
    },
  };
}

/**
 * Opens the xenbus character device (a guest's link to xenstored). The Linux
 * driver accepts whole `xsd_sockmsg` messages on write and returns replies
 * and watch events on read.
 */
export function xenbusTransport(file = '/dev/xen/xenbus'): Promise<Transport> {
  return new Promise((resolve, reject) => {
    fs.open(file, 'r+', (err, fd) => {
      if (err) {
        reject(new Error(`cannot open the xenbus device ${file} (${err.code}): is this a Xen guest with the xenfs/xenbus driver loaded?`));
        return;
      }
      resolve(new XenbusDevice(fd));
    });
  });
}

/**
 * The xenbus device blocks in read() until xenstored has something to say,
 * and Node runs file reads on its thread pool, which it joins at exit: a read
 * left pending keeps the process alive forever (even process.exit() hangs).
 * So exactly one read is in flight at a time, and close() first sends one
 * harmless request (XS_READ of the relative `domid`) whose reply, a value or
 * an error, ends that read; only then is the descriptor closed.
 */
class XenbusDevice implements Transport {
  private readonly buffer = Buffer.alloc(65536);
  private readonly dataListeners: ((chunk: Buffer) => void)[] = [];
  private readonly closeListeners: ((err?: Error) => void)[] = [];
  private reading = false;
  private closing = false;
  private closed = false;

  constructor(private readonly fd: number) {
    setImmediate(() => this.readNext());
  }

  send(data: Buffer): void {
    if (this.closing) return;
    try {
      fs.writeSync(this.fd, data);
    } catch (e) {
      this.finish(e as Error);
    }
  }

  onData(listener: (chunk: Buffer) => void): void {
    this.dataListeners.push(listener);
  }

  onClose(listener: (err?: Error) => void): void {
    this.closeListeners.push(listener);
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (!this.reading) {
      this.finish();
      return;
    }
    try {
      fs.writeSync(this.fd, encode({ type: Op.READ, reqId: 0, txId: 0, payload: strings('domid') }));
    } catch {
      // The device is gone: the pending read fails by itself.
    }
  }

  private readNext(): void {
    if (this.closing) {
      this.finish();
      return;
    }
    this.reading = true;
    fs.read(this.fd, this.buffer, 0, this.buffer.length, null, (err, n) => {
      this.reading = false;
      if (err && err.code === 'EINTR') {
        this.readNext();
        return;
      }
      if (err || n === 0) {
        this.finish(err ?? undefined);
        return;
      }
      if (!this.closing) {
        const chunk = Buffer.from(this.buffer.subarray(0, n));
        for (const l of this.dataListeners) l(chunk);
      }
      this.readNext();
    });
  }

  private finish(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.closing = true;
    fs.close(this.fd, () => undefined);
    for (const l of this.closeListeners) l(err);
  }
}

/** Two connected in-memory ends: what one sends, the other receives (asynchronously, in order). */
export function memoryPair(): [Transport, Transport] {
  const a = new MemoryEnd();
  const b = new MemoryEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

class MemoryEnd implements Transport {
  peer: MemoryEnd | undefined;
  closed = false;
  private dataListeners: ((chunk: Buffer) => void)[] = [];
  private closeListeners: ((err?: Error) => void)[] = [];

  send(data: Buffer): void {
    if (this.closed) return;
    const copy = Buffer.from(data);
    const peer = this.peer;
    setImmediate(() => {
      if (peer && !peer.closed) for (const l of peer.dataListeners) l(copy);
    });
  }

  onData(listener: (chunk: Buffer) => void): void {
    this.dataListeners.push(listener);
  }

  onClose(listener: (err?: Error) => void): void {
    this.closeListeners.push(listener);
  }

  close(): void {
    for (const end of [this, this.peer]) {
      if (!end || end.closed) continue;
      end.closed = true;
      const listeners = end.closeListeners;
      setImmediate(() => listeners.forEach((l) => l()));
    }
  }
}
