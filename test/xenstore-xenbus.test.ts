// What real Xen taught about reaching XenStore (docs/xen.md), pinned here
// without Xen:
// - /dev/xen/xenbus blocks in read() until xenstored speaks, and Node runs
//   file reads on its thread pool, which it joins at exit: the transport must
//   end its pending read itself when closed, or the guest's xsw-front never
//   exits. A FIFO blocks the same way, so it stands in for the device.
// - dom0 has both xenstored's socket and /dev/xen/xenbus; like libxenstore,
//   the back end and the client take the socket.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Child } from '../harness/child';
import { defaultXenStorePath as xenstorePath } from '../xenstore/client';

const transportModule = path.join(__dirname, '..', 'xenstore', 'transport.js');

function fifo(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xsw-xenbus-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'xenbus');
  execFileSync('mkfifo', [file]);
  return file;
}

/** Runs a node script; resolves with its exit code and stdout, or 'hung' after ms. */
async function runNode(script: string, ms: number): Promise<{ code: number | null | 'hung'; out: string }> {
  const child = new Child(process.execPath, ['-e', script]);
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)));
  const exit = await Promise.race([child.exited, hung]);
  clearTimeout(timer);
  if (exit === 'hung') {
    child.kill('SIGKILL');
    return { code: 'hung', out: child.stdout };
  }
  return { code: exit.code, out: child.stdout };
}

test('a closed xenbus transport ends its blocked read, so the process exits by itself', async (t) => {
  const file = fifo(t);
  // No process.exit: the process must end because nothing is left pending.
  const script = `
    const { xenbusTransport } = require(${JSON.stringify(transportModule)});
    xenbusTransport(${JSON.stringify(file)}).then((tr) => {
      tr.onClose((err) => console.log('closed', err ? err.message : 'cleanly'));
      setTimeout(() => tr.close(), 300); // by then the read is blocked in the thread pool
    });`;
  const r = await runNode(script, 15000);
  t.is(r.code, 0, `the process did not exit by itself (${r.code})`);
  t.is(r.out.trim(), 'closed cleanly');
});

test('what the device returns after close() is not delivered to the client', async (t) => {
  const file = fifo(t);
  // On a FIFO opened read-write the closing request itself comes back on the pending read.
  const script = `
    const { xenbusTransport } = require(${JSON.stringify(transportModule)});
    xenbusTransport(${JSON.stringify(file)}).then((tr) => {
      const seen = [];
      tr.onData((c) => seen.push(c));
      tr.onClose(() => console.log(JSON.stringify({ delivered: seen.length })));
      setTimeout(() => tr.close(), 300);
    });`;
  const r = await runNode(script, 15000);
  t.is(r.code, 0);
  t.deepEqual(JSON.parse(r.out), { delivered: 0 });
});

test('data written to the device before close reaches the client in order', async (t) => {
  const file = fifo(t);
  // On a FIFO opened read-write, what the transport sends comes back on its reads.
  const script = `
    const { xenbusTransport } = require(${JSON.stringify(transportModule)});
    xenbusTransport(${JSON.stringify(file)}).then((tr) => {
      let got = '';
      tr.onData((c) => {
        got += c.toString();
        if (got === 'onetwo') { console.log(got); tr.close(); }
      });
      tr.send(Buffer.from('one'));
      tr.send(Buffer.from('two'));
    });`;
  const r = await runNode(script, 15000);
  t.is(r.code, 0);
  t.is(r.out.trim(), 'onetwo');
});

test("the back end prefers xenstored's socket over dom0's xenbus device, as libxenstore does", (t) => {
  const saved = process.env.XENSTORED_PATH;
  delete process.env.XENSTORED_PATH;
  try {
    const both = (f: string): boolean => f === '/var/run/xenstored/socket' || f === '/dev/xen/xenbus';
    t.is(xenstorePath(both), '/var/run/xenstored/socket');
    t.is(xenstorePath((f) => f === '/dev/xen/xenbus'), '/dev/xen/xenbus');
    t.is(xenstorePath(() => false), '/var/run/xenstored/socket');
    process.env.XENSTORED_PATH = '/tmp/elsewhere';
    t.is(xenstorePath(both), '/tmp/elsewhere');
  } finally {
    if (saved === undefined) delete process.env.XENSTORED_PATH;
    else process.env.XENSTORED_PATH = saved;
  }
});
