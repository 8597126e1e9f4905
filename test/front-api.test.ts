// The JS API (frontend/api.ts) in an application process: devices are
// published like the CLI's, with independent mempool and device indexes, and
// rxBurst/txBurst move batches both ways.
import test from 'ava';
import path from 'node:path';
import { sleep } from '../harness/child';
import { Dom0Device } from './fixtures/front-dom0';
import { FrontSim } from './fixtures/front-sim';

const APP = path.join(__dirname, 'fixtures', 'front-api-app.js');

test('FrontDevice: open two devices, echo batches through rxBurst/txBurst, close', async (t) => {
  const sim = await FrontSim.start();
  try {
    await sim.createDomain(8);
    const app = sim.spawnFront(8, [], APP);
    try {
      const keys = await sim.waitPublished(8, 2);
      t.deepEqual(JSON.parse(app.stdout.split('\n')[0]), { a: { index: 0, pool: 0 }, b: { index: 1, pool: 1 }, domid: 8 });
      t.is(keys['0_ether_addr'], '00:00:00:00:00:31');
      t.is(keys['1_ether_addr'], '00:00:00:00:00:32');
      t.truthy(keys['1_mempool_gref']);
      t.truthy(keys['1_mempool_va']);
      const dev = await Dom0Device.attach(sim.grants, sim.dom0, 8, 0, 0, 128);
      const dev1 = await Dom0Device.attach(sim.grants, sim.dom0, 8, 1, 1, 128);
      try {
        t.is(dev.rx.pending(), 128);
        t.is(dev1.rx.pending(), 128);
        const own = Buffer.from([0, 0, 0, 0, 0, 0x31]);
        const other = Buffer.from([0x02, 0, 0, 0, 0, 0x77]);
        const sent = Array.from({ length: 200 }, (_, i) => {
          const f = Buffer.alloc(64 + i, i & 0xff);
          own.copy(f, 0);
          other.copy(f, 6);
          return f;
        });
        const got: Buffer[] = [];
        const deadline = Date.now() + 10000;
        let next = 0;
        while (got.length < sent.length && Date.now() < deadline) {
          while (next < sent.length && dev.deliver(sent[next])) next++;
          got.push(...dev.takeTx());
          await sleep(2);
        }
        t.is(got.length, sent.length);
        got.forEach((f, i) => {
          t.true(f.subarray(0, 6).equals(other) && f.subarray(6, 12).equals(own), `frame ${i} swapped`);
          t.true(f.subarray(12).equals(sent[i].subarray(12)), `frame ${i} payload`);
        });
        app.kill('SIGTERM');
        t.is((await app.wait()).code, 0, app.stderr);
        const last = JSON.parse(app.stdout.trim().split('\n').pop() ?? '{}');
        t.is(last.stats.rx_packets, 200);
        t.is(last.stats.tx_packets, 200);
        t.regex(last.closedError, /this FrontDevice is closed/);
        t.is(dev.flag(), 0);
        t.is(dev1.flag(), 0);
        t.deepEqual(await sim.keys(8), {});
      } finally {
        dev.detach();
        dev1.detach();
      }
    } finally {
      app.kill('SIGKILL');
      await app.wait();
    }
  } finally {
    await sim.stop();
  }
});
