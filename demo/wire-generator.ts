#!/usr/bin/env node
// The demo's traffic generator and capture on the far end of the veth wire
// (run inside the demo's network namespace): sends --count tagged test frames
// in paced bursts through an AF_PACKET socket (the switch's own NIC port code,
// NicPortProbe), checks every frame that comes back (wire-frames.ts), and
// prints one JSON WireResult on stdout.
import { Command, InvalidArgumentError } from 'commander';
import { sleep } from '../harness/child';
import { parseMac } from '../schema/mac';
import { NicPortProbe } from '../native/switch';
import { WireSpec, WireTally, wireFrame } from './wire-frames';

function whole(min: number, max: number) {
  return (text: string): number => {
    if (!/^[0-9]+$/.test(text) || Number(text) < min || Number(text) > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}.`);
    }
    return Number(text);
  };
}

function mac(text: string): Buffer {
  const r = parseMac(text, 'destination');
  if (!r.ok) throw new InvalidArgumentError(`MAC '${text}' ${r.reason}.`);
  return r.value;
}

interface WireOptions extends WireSpec {
  iface: string;
  burst: number;
  intervalMs: number;
  waitMs: number;
}

function parse(argv: string[]): WireOptions {
  const program = new Command('wire-generator')
    .requiredOption('--iface <name>', 'interface to send on and capture from')
    .requiredOption('--dst <mac>', 'destination MAC of the frames sent', mac)
    .requiredOption('--src <mac>', 'source MAC of the frames sent', mac)
    .requiredOption('--vlan <id>', 'VLAN tag of the frames sent', whole(1, 4094))
    .requiredOption('--expect-dst <mac>', 'destination MAC the returning frames must have', mac)
    .requiredOption('--expect-src <mac>', 'source MAC the returning frames must have', mac)
    .requiredOption('--expect-vlan <id>', 'VLAN the returning frames must have', whole(1, 4094))
    .option('--count <n>', 'frames to send', whole(1, 1_000_000), 1000)
    .option('--size <bytes>', 'untagged frame size', whole(34, 1514), 128)
    .option('--burst <n>', 'frames per burst', whole(1, 32), 16)
    .option('--interval-ms <ms>', 'pause between bursts', whole(1, 1000), 10)
    .option('--wait-ms <ms>', 'how long to wait for stragglers after the last frame was sent', whole(100, 60_000), 3000)
    .exitOverride();
  program.parse(argv);
  return program.opts<WireOptions>();
}

async function main(): Promise<void> {
  const o = parse(process.argv);
  const probe = new NicPortProbe(o.iface, 1500);
  try {
    while (probe.recv().length > 0) {
      // drop whatever the kernel queued before we start (link-up noise)
    }
    const tally = new WireTally(o);
    let sent = 0;
    let allSentAt = 0;
    let allBackAt = 0;
    // A bound on the whole run, should the transmit queue never drain.
    const giveUpAt = Date.now() + Math.ceil(o.count / o.burst) * o.intervalMs * 4 + o.waitMs + 5000;
    for (;;) {
      for (let k = 0; k < o.burst && sent < o.count; k++) {
        if (!probe.send(wireFrame(o, sent))) break;  // transmit queue full: retry next burst
        sent++;
      }
      if (sent === o.count && allSentAt === 0) allSentAt = Date.now();
      for (let got = probe.recv(); got.length > 0; got = probe.recv()) {
        for (const f of got) tally.add(f.data, f.vlan);
      }
      if (tally.ours >= o.count && allBackAt === 0) allBackAt = Date.now();
      // Once everything is back, linger briefly so that extra frames would be seen too.
      if (allBackAt !== 0 && Date.now() - allBackAt > 300) break;
      if (allSentAt !== 0 && Date.now() - allSentAt > o.waitMs) break;
      if (Date.now() > giveUpAt) break;
      await sleep(o.intervalMs);
    }
    process.stdout.write(`${JSON.stringify(tally.result(sent))}\n`);
  } finally {
    probe.close();
  }
}

main().catch((err: Error & { code?: string }) => {
  if (err.code?.startsWith('commander.')) process.exit(2);
  process.stderr.write(`wire-generator: ${err.message}\n`);
  process.exit(1);
});
