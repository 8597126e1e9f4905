#!/usr/bin/env node
// xsw-ctl: query and steer a running xsw-backend over its control socket
// (docs/operations.md). Human tables by default, --json for scripts; one
// sentence and a non-zero exit when the back end cannot be reached.
import fs from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { call, CtlError, defaultSocket, open } from './client';
import { CtlDevice, devicesTable, macsTable, quarantineTable, showText, statsTable, topTable } from './format';

const out = (s: string): void => void process.stdout.write(s);
const json = (v: unknown): void => out(`${JSON.stringify(v, null, 2)}\n`);

function whole(flag: string, min: number, max: number): (v: string) => number {
  return (v: string) => {
    if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) {
      throw new CtlError(`${flag} takes a whole number from ${min} to ${max}, not "${v}".`, 2);
    }
    return Number(v);
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function top(socket: string, intervalS: number, count: number): Promise<void> {
  const tty = process.stdout.isTTY === true;
  let prev = new Map<string, CtlDevice>();
  let last = Date.now();
  for (let i = 0; count === 0 || i < count; i++) {
    const devices = await call<CtlDevice[]>(socket, { cmd: 'devices' });
    const now = Date.now();
    const screen = topTable(prev, devices, i === 0 ? 1 : (now - last) / 1000);
    const stamp = `xsw-ctl top: ${new Date(now).toISOString()}, every ${intervalS} s\n`;
    // On a terminal the screen is redrawn in place; piped, each sample follows the last.
    out(tty ? `\x1b[H\x1b[2J${stamp}${screen}` : `${stamp}${screen}\n`);
    prev = new Map(devices.map((d) => [`${d.kind}/${d.id}`, d]));
    last = now;
    if (count === 0 || i + 1 < count) await sleep(intervalS * 1000);
  }
}

async function capture(socket: string, devs: string[], o: { write?: string; count: number; snaplen: number }): Promise<void> {
  if (!o.write && process.stdout.isTTY) {
    throw new CtlError('Refusing to write pcapng to a terminal: give -w FILE, or pipe it (xsw-ctl capture DEV | tshark -r -).', 2);
  }
  const { socket: conn, reply, rest } = await open(socket, { cmd: 'capture', dev: devs, count: o.count, snaplen: o.snaplen });
  if (!reply.ok) {
    conn.destroy();
    throw new CtlError(reply.error ?? 'xsw-backend refused the capture.');
  }
  const sink = o.write ? fs.createWriteStream(o.write) : process.stdout;
  await new Promise<void>((resolve, reject) => {
    sink.on('error', (err: NodeJS.ErrnoException) => {
      conn.destroy();
      // The reader went away (tshark -c N, head): that ends the capture, it is not a failure.
      if (err.code === 'EPIPE') resolve();
      else reject(new CtlError(`Cannot write the capture${o.write ? ` to ${o.write}` : ''}: ${err.message}.`));
    });
    const stop = (): void => {
      conn.destroy();
      if (sink === process.stdout) resolve();
      else sink.end(() => resolve());
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (rest.length > 0) sink.write(rest);
    conn.pipe(sink as NodeJS.WritableStream, { end: sink !== process.stdout });
    conn.on('end', () => {
      if (sink === process.stdout) process.stdout.write('', () => resolve());
      else sink.once('finish', () => resolve());
    });
    conn.resume();
  });
}

function build(run: (p: Promise<void>) => void): Command {
  const program = new Command('xsw-ctl')
    .description('Query and steer a running xsw-backend over its control socket.')
    .addOption(new Option('-s, --socket <path>', 'the back end\'s control socket').default(defaultSocket(), '$XSW_CTL_SOCKET, else $XSW_SIM_DIR/backend.sock, else /run/xsw/backend.sock'))
    .exitOverride()
    .configureOutput({ writeErr: () => {} });
  const sock = (): string => program.opts().socket as string;

  program.command('show').description('the back end at a glance').option('--json', 'print JSON').action((o: { json?: boolean }) =>
    run(call<Record<string, unknown>>(sock(), { cmd: 'show' }).then((s) => (o.json ? json(s) : out(showText(s))))));
  program.command('devices').description('every device: kind, id, MAC, VLAN, state, rings, pages, counters, last violation').option('--json', 'print JSON')
    .action((o: { json?: boolean }) => run(call<CtlDevice[]>(sock(), { cmd: 'devices' }).then((d) => (o.json ? json(d) : out(devicesTable(d))))));
  program.command('macs').description('the MAC table: which MAC and VLAN go to which device').option('--json', 'print JSON')
    .action((o: { json?: boolean }) => run(call<Parameters<typeof macsTable>[0]>(sock(), { cmd: 'macs' }).then((m) => (o.json ? json(m) : out(macsTable(m))))));
  program.command('stats').description('device and NIC counters (--json: the same object as xsw-backend --stats N --json)').option('--json', 'print JSON')
    .action((o: { json?: boolean }) => run(call<Parameters<typeof statsTable>[0]>(sock(), { cmd: 'stats' }).then((s) => (o.json ? out(`${JSON.stringify(s)}\n`) : out(statsTable(s))))));
  program.command('top').description('per-device frame rates, redrawn in place on a terminal (lines when piped)')
    .option('-i, --interval <seconds>', 'seconds between samples', whole('--interval', 1, 3600), 1)
    .option('-n, --count <n>', 'stop after N samples (0: until Ctrl-C)', whole('--count', 0, 1_000_000), 0)
    .action((o: { interval: number; count: number }) => run(top(sock(), o.interval, o.count)));
  program.command('quarantine').description('devices in quarantine; `quarantine release DEV` lets one attach again now')
    .argument('[action]', 'release').argument('[dev]', 'domid:device or MAC').option('--json', 'print JSON')
    .action((action: string | undefined, dev: string | undefined, o: { json?: boolean }) => {
      if (action === undefined) {
        return run(call<Parameters<typeof quarantineTable>[0]>(sock(), { cmd: 'quarantine' }).then((q) => (o.json ? json(q) : out(quarantineTable(q)))));
      }
      if (action !== 'release' || dev === undefined) throw new CtlError('Usage: xsw-ctl quarantine [release DEV], where DEV is domid:device or a MAC.', 2);
      return run(call<{ released: string }>(sock(), { cmd: 'quarantine-release', dev }).then((r) =>
        o.json ? json(r) : out(`released ${r.released}: it attaches again if its guest still publishes it (xsw-ctl devices shows it)\n`)));
    });
  program.command('vhost-user').description('vhost-user ports: list them; `vhost-user add PATH[,client][,mac=MAC]` or `vhost-user remove PATH` at run time')
    .argument('[action]', 'add | remove').argument('[spec]', 'add: PATH[,client][,mac=MAC] as --vhost-user takes it; remove: PATH').option('--json', 'print JSON')
    .action((action: string | undefined, spec: string | undefined, o: { json?: boolean }) => {
      if (action === undefined) {
        return run(call<{ path: string; client: boolean; mac: string | null }[]>(sock(), { cmd: 'vhost-user' }).then((ports) =>
          o.json ? json(ports) : out(ports.map((p) => `${p.path}  ${p.client ? 'client' : 'listening'}  ${p.mac ?? 'MAC learned'}\n`).join('') || 'no vhost-user ports\n')));
      }
      if (action === 'add' && spec !== undefined) {
        return run(call<{ added: string; client: boolean }>(sock(), { cmd: 'vhost-user-add', spec }).then((r) =>
          o.json ? json(r) : out(`added vhost-user port ${r.added} (${r.client ? 'connecting to the peer' : 'listening'}): xsw-ctl devices shows its device once the peer is up\n`)));
      }
      if (action === 'remove' && spec !== undefined) {
        return run(call<{ removed: string }>(sock(), { cmd: 'vhost-user-remove', path: spec }).then((r) =>
          o.json ? json(r) : out(`removed vhost-user port ${r.removed}: its device left the switch\n`)));
      }
      throw new CtlError('Usage: xsw-ctl vhost-user [add PATH[,client][,mac=MAC] | remove PATH].', 2);
    });
  program.command('capture').description('stream a device\'s frames (or the NIC\'s) as pcapng to a file or stdout')
    .argument('<dev...>', 'MAC, domid:device or nic (several: one pcapng interface each)')
    .option('-w, --write <file>', 'write to FILE instead of stdout')
    .option('-c, --count <n>', 'stop after N frames (0: until Ctrl-C)', whole('--count', 0, 2 ** 40), 0)
    .option('--snaplen <bytes>', 'keep at most this many bytes of each frame', whole('--snaplen', 14, 262144), 262144)
    .action((devs: string[], o: { write?: string; count: number; snaplen: number }) => run(capture(sock(), devs, o)));
  program.command('set').description('change the statistics interval or the log level of the running back end')
    .argument('<what>', 'stats | log-level').argument('<value>', 'seconds (0 = off) | trace, debug, info, warn, error, fatal, silent')
    .action((what: string, value: string) => {
      if (what === 'stats') return run(call(sock(), { cmd: 'set-stats', seconds: whole('stats', 0, 86400)(value) }).then(() => out(value === '0' ? 'statistics off\n' : `statistics every ${value} s\n`)));
      if (what === 'log-level') return run(call(sock(), { cmd: 'set-log-level', level: value }).then(() => out(`log level ${value}\n`)));
      throw new CtlError(`Unknown setting "${what}": give stats or log-level.`, 2);
    });
  program.command('config').description('the back end\'s options and data-plane configuration (JSON)')
    .action(() => run(call(sock(), { cmd: 'config' }).then(json)));
  return program;
}

async function main(): Promise<number> {
  let pending: Promise<void> | undefined;
  const program = build((p) => {
    pending = p;
  });
  try {
    program.parse(process.argv);
    if (!pending) {
      out(program.helpInformation());
      return 0;
    }
    await pending;
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0;
      const text = err.message.replace(/^error: /, '');
      process.stderr.write(`xsw-ctl: ${text.charAt(0).toUpperCase()}${text.slice(1)}; see xsw-ctl --help.\n`);
      return 2;
    }
    if (err instanceof CtlError) {
      process.stderr.write(`xsw-ctl: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`xsw-ctl: unexpected failure: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 70;
  },
);
