// xsw-ctl's side of the control socket (backend/control.ts): connect, send
// one JSON request line, read one JSON reply line. Every way of failing
// becomes a CtlError with one sentence for the person at the terminal.
import net from 'node:net';
import path from 'node:path';

/** The back end's default socket: as xsw-backend picks it (docs/operations.md). */
export function defaultSocket(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XSW_CTL_SOCKET) return env.XSW_CTL_SOCKET;
  if (env.XSW_SIM_DIR) return path.join(path.resolve(env.XSW_SIM_DIR), 'backend.sock');
  return '/run/xsw/backend.sock';
}

export class CtlError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'CtlError';
  }
}

function connectError(err: NodeJS.ErrnoException, file: string): CtlError {
  switch (err.code) {
    case 'ENOENT':
      return new CtlError(`xsw-backend is not running: there is no control socket at ${file} (start xsw-backend, or give its --control-socket with --socket).`);
    case 'ECONNREFUSED':
      return new CtlError(`xsw-backend is not running: nothing listens on ${file}, which an earlier back end left behind (start xsw-backend).`);
    case 'EACCES':
    case 'EPERM':
      return new CtlError(`Cannot open the control socket ${file}: permission denied (run xsw-ctl as root).`);
    case 'ENOTSOCK':
      return new CtlError(`${file} is not a control socket: give xsw-backend's --control-socket with --socket.`);
    default:
      return new CtlError(`Cannot connect to the control socket ${file}: ${err.message}.`);
  }
}

/** A connection with the reply line read; `rest` holds whatever followed it (a capture's pcapng). */
export interface Opened {
  socket: net.Socket;
  reply: { ok: boolean; result?: unknown; error?: string; code?: string };
  rest: Buffer;
}

/** Sends `req` and waits for the reply line; the socket stays open for a stream after it. */
export function open(file: string, req: object, timeoutMs = 10_000): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(file);
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    const fail = (e: CtlError): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(e);
    };
    socket.setTimeout(timeoutMs, () => fail(new CtlError(`xsw-backend did not answer on ${file} within ${timeoutMs / 1000} s: check that it is not stuck (its log), then try again.`)));
    socket.once('error', (err: NodeJS.ErrnoException) => fail(connectError(err, file)));
    socket.once('connect', () => socket.write(`${JSON.stringify(req)}\n`));
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) return;
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.setTimeout(0);
      settled = true;
      let reply: Opened['reply'];
      try {
        reply = JSON.parse(buf.subarray(0, nl).toString('utf8')) as Opened['reply'];
      } catch {
        socket.destroy();
        reject(new CtlError(`${file} answered something that is not JSON: is it xsw-backend's control socket?`));
        return;
      }
      socket.pause();
      resolve({ socket, reply, rest: buf.subarray(nl + 1) });
    };
    const onEnd = (): void => fail(new CtlError(`xsw-backend closed the control connection on ${file} without answering: check its log.`));
    socket.on('data', onData);
    socket.once('end', onEnd);
  });
}

/** One request, one reply: the result, or a CtlError with the back end's sentence. */
export async function call<T = unknown>(file: string, req: object): Promise<T> {
  const { socket, reply } = await open(file, req);
  socket.destroy();
  if (!reply.ok) throw new CtlError(reply.error ?? `xsw-backend refused the request (${reply.code ?? 'no reason given'}).`);
  return reply.result as T;
}
