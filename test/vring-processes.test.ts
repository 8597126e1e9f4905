// Two real processes share one ring through a /dev/shm file: the producer is
// the guest's driver, the consumer dom0's device, each with its own mapping
// address (the device translates the guest's gvas through a region).
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { run as runCommand } from '../harness/child';
import { shmPath } from './fixtures/vring-ring';

const peer = path.join(__dirname, 'fixtures', 'vring-peer.js');

async function run(role: string, file: string, num: number, total: number): Promise<{ code: number | null; out: Record<string, unknown> | null; stderr: string }> {
  const r = await runCommand(process.execPath, [peer, role, file, String(num), String(total)]);
  let out: Record<string, unknown> | null = null;
  try {
    out = JSON.parse(r.out.trim().split('\n').pop() ?? '') as Record<string, unknown>;
  } catch {
    out = null;
  }
  return { code: r.exit.code, out, stderr: r.err };
}

for (const [num, total] of [
  [256, 1_000_000],
  [8, 100_000],
] as const) {
  test(`a producer and a consumer process move ${total} descriptors through a ${num}-entry ring with no loss or duplication`, async (t) => {
    const file = shmPath('2proc');
    try {
      const [prod, cons] = await Promise.all([run('producer', file, num, total), run('consumer', file, num, total)]);
      t.is(cons.code, 0, `consumer: ${JSON.stringify(cons.out)} ${cons.stderr}`);
      t.is(prod.code, 0, `producer: ${JSON.stringify(prod.out)} ${prod.stderr}`);
      t.deepEqual(cons.out, { role: 'consumer', received: total, errors: 0, violation: null, lastAvail: total % 65536 });
      t.deepEqual(prod.out, { role: 'producer', sent: total, harvested: total, cookieErrors: 0, badUsed: 0 });
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
}
