// Byte transports for the XenStore client: a unix socket (dom0's xenstored),
// the xenbus character device (a guest's /dev/xen/xenbus), and an in-memory
// pair for tests. The client only sees this interface.
import fs from 'node:fs';
import net from 'node:net';

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
      const stream = fs.createReadStream('', { fd, autoClose: false, highWaterMark: 4096 + 16 });
      const closeListeners: ((err?: Error) => void)[] = [];
      let closed = false;
      const finish = (e?: Error): void => {
        if (closed) return;
        closed = true;
        stream.destroy();
        fs.close(fd, () => undefined);
        for (const l of closeListeners) l(e);
      };
      stream.on('error', finish);
      stream.on('end', () => finish());
      resolve({
        send: (data) => {
          try {
            fs.writeSync(fd, data);
          } catch (e) {
            finish(e as Error);
          }
        },
        onData: (listener) => {
          stream.on('data', (chunk) => listener(chunk as Buffer));
        },
        onClose: (listener) => {
          closeListeners.push(listener);
        },
        close: () => finish(),
      });
    });
  });
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
