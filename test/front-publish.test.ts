// xsw-front as a process in a simulated domain, checked from dom0: the keys
// of the XenStore schema (docs/architecture.md) with their exact formats and order, what they point
// to (gref lists, mempool, rings with 256 posted RX buffers, the 0xA5 flag),
// several devices, stale keys, clean exits and crashes.
import test from 'ava';
import { mustRun } from '../harness/child';
import { Dom0Device } from './fixtures/front-dom0';
import { FrontSim } from './fixtures/front-sim';

// Tests run serially: each runs a sim and a guest with a 32 MiB mempool on a shared 2-core machine.
const GREFS = /^\d+(,\d+)*$/;
const HEXVA = /^0x[0-9a-f]+$/;

async function withSim(fn: (sim: FrontSim) => Promise<void>, opts?: { gntallocLimit?: number }): Promise<void> {
  const sim = await FrontSim.start(opts);
  try {
    await fn(sim);
  } finally {
    await sim.stop();
  }
}

test.serial('one device: dom0 reads every key in the guide order and maps what they describe', async (t) => {
  await withSim(async (sim) => {
    await sim.createDomain(1);
    const order: string[] = [];
    sim.dom0.on('watch', (path: string, token: string) => {
      if (token === 'order' && path.startsWith('/local/domain/1/control/dpdk/')) order.push(path.split('/').pop() as string);
    });
    await sim.dom0.watch('/local/domain/1/control/dpdk', 'order');
    const front = sim.spawnFront(1, ['--mac', '00:00:00:00:00:11']);
    try {
      const keys = await sim.waitPublished(1);
      t.deepEqual(Object.keys(keys).sort(), [
        '0_ether_addr', '0_event_channel', '0_mempool_gref', '0_mempool_va', '0_rx_vring_gref', '0_tx_vring_gref', '0_vring_flag', 'event_type_start_0',
      ]);
      t.regex(keys['0_event_channel'], /^[1-9]\d*$/, 'the sim has event channels: the guest offers one');
      t.regex(keys['0_mempool_gref'], GREFS);
      t.is(keys['0_mempool_gref'].split(',').length, 16, '8192 pages need 16 gref-list pages');
      t.regex(keys['0_mempool_va'], HEXVA);
      t.regex(keys['0_rx_vring_gref'], /^\d+$/);
      t.regex(keys['0_tx_vring_gref'], /^\d+$/);
      t.not(keys['0_rx_vring_gref'], keys['0_tx_vring_gref']);
      t.is(keys['0_ether_addr'], '00:00:00:00:00:11');
      t.regex(keys['0_vring_flag'], /^\d+$/);
      t.is(keys.event_type_start_0, '1');
      t.deepEqual(order, [
        '0_mempool_gref', '0_mempool_va', '0_rx_vring_gref', '0_tx_vring_gref', '0_ether_addr', '0_vring_flag', '0_event_channel', 'event_type_start_0',
      ]);

      const dev = await Dom0Device.attach(sim.grants, sim.dom0, 1);
      try {
        t.is(dev.pool.length, 8192 * 4096);
        t.is(dev.flag(), 0xa5);
        const posted = dev.rx.peekAll();
        t.is(posted.length, 4096, 'the default ring: the largest up to 4096 that 8192 mbufs fill');
        const pages = new Set<bigint>();
        for (const c of posted) {
          t.is(c.descs.length, 1);
          const d = c.descs[0];
          t.is(d.flags, 2, 'device-writable');
          t.is(d.len, 10 + 2048);
          t.notThrows(() => dev.at(d.addr, d.len), 'the buffer lies inside the mempool');
          t.is(Number((d.addr - dev.poolVa) % 4096n), 128 - 10, 'header right before the data room, one mbuf per page');
          pages.add((d.addr - dev.poolVa) / 4096n);
        }
        t.is(pages.size, 4096, 'each descriptor has its own buffer');
        t.is(dev.tx.pending(), 0);
      } finally {
        dev.detach();
      }

      // xenstore-ls (Debian's xenstore-utils) shows the guide's layout.
      // Asynchronously: xenstored runs in this process.
      const { out: ls } = await mustRun('xenstore-ls', ['/local/domain/1/control/dpdk'], {
        env: { ...process.env, XENSTORED_PATH: sim.xenstored.socketPath },
      });
      const lines = ls.trim().split('\n').map((l) => l.trim());
      t.is(lines.length, 8);
      t.true(lines.includes(`0_mempool_va = "${keys['0_mempool_va']}"`));
      t.true(lines.includes('0_ether_addr = "00:00:00:00:00:11"'));
      t.true(lines.includes('event_type_start_0 = "1"'));
      // xenstore-ls cuts long values at 80 columns, as it did in the guide's example.
      t.true(lines[0].startsWith(`0_mempool_gref = "${keys['0_mempool_gref'].slice(0, 40)}`));
      t.deepEqual(lines.map((l) => l.split(' = ')[0]), [
        '0_mempool_gref', '0_mempool_va', '0_rx_vring_gref', '0_tx_vring_gref', '0_ether_addr', '0_vring_flag', '0_event_channel', 'event_type_start_0',
      ]);
    } finally {
      front.kill('SIGTERM');
      await front.wait();
    }
  });
});

test.serial('two devices in one process get indexes 0 and 1, distinct rings, and share mempool 0', async (t) => {
  await withSim(async (sim) => {
    await sim.createDomain(3);
    const front = sim.spawnFront(3, ['--mac', '00:00:00:00:00:11', '--mac', '00:00:00:00:00:12', '--nb-mbuf', '2048']);
    try {
      const keys = await sim.waitPublished(3, 2);
      t.is(keys['0_ether_addr'], '00:00:00:00:00:11');
      t.is(keys['1_ether_addr'], '00:00:00:00:00:12');
      t.truthy(keys['0_mempool_gref']);
      t.false('1_mempool_gref' in keys, 'mempool indexes count independently of devices');
      const grefs = ['0_rx_vring_gref', '0_tx_vring_gref', '1_rx_vring_gref', '1_tx_vring_gref', '0_vring_flag', '1_vring_flag'].map((k) => keys[k]);
      t.is(new Set(grefs).size, 6);
      const d0 = await Dom0Device.attach(sim.grants, sim.dom0, 3, 0);
      const d1 = await Dom0Device.attach(sim.grants, sim.dom0, 3, 1);
      try {
        t.is(d0.flag(), 0xa5);
        t.is(d1.flag(), 0xa5);
        const bufs0 = d0.rx.peekAll().map((c) => c.descs[0].addr);
        const bufs1 = d1.rx.peekAll().map((c) => c.descs[0].addr);
        t.is(bufs0.length, 512, '1024 mbufs each: the default ring is 512');
        t.is(bufs1.length, 512);
        for (const a of [...bufs0, ...bufs1]) t.notThrows(() => d0.at(a, 2058));
        t.is(new Set([...bufs0, ...bufs1]).size, 1024, 'the devices post different buffers');
      } finally {
        d0.detach();
        d1.detach();
      }
    } finally {
      front.kill('SIGTERM');
      await front.wait();
    }
  });
});

test.serial('--devices derives the MACs it was not given from the domain id', async (t) => {
  await withSim(async (sim) => {
    await sim.createDomain(5);
    const front = sim.spawnFront(5, ['--devices', '3', '--mac', '00:00:00:00:00:11', '--nb-mbuf', '2048', '--ring-size', '256']);
    try {
      const keys = await sim.waitPublished(5, 3);
      t.is(keys['0_ether_addr'], '00:00:00:00:00:11');
      t.is(keys['1_ether_addr'], '00:16:3e:00:05:01');
      t.is(keys['2_ether_addr'], '00:16:3e:00:05:02');
    } finally {
      front.kill('SIGTERM');
      await front.wait();
    }
  });
});

test.serial("stale keys are removed at start, but control/dpdk itself stays", async (t) => {
  await withSim(async (sim) => {
    await sim.createDomain(2);
    await sim.dom0.write('/local/domain/2/control/dpdk/7_ether_addr', '00:00:00:00:00:77');
    await sim.dom0.write('/local/domain/2/control/dpdk/event_type_start_7', '1');
    const front = sim.spawnFront(2, ['--mac', '00:00:00:00:00:11']);
    try {
      const keys = await sim.waitPublished(2);
      t.false('7_ether_addr' in keys);
      t.false('event_type_start_7' in keys);
      t.deepEqual(await sim.dom0.getPerms('/local/domain/2/control/dpdk'), [
        { access: 'n', domid: 0 },
        { access: 'b', domid: 2 },
      ], 'the node dom0 provisioned is the same node');
    } finally {
      front.kill('SIGTERM');
      await front.wait();
    }
  });
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test.serial(`${signal}: the flag byte drops to 0, the keys go, control/dpdk stays, exit 0`, async (t) => {
    await withSim(async (sim) => {
      await sim.createDomain(4);
      const front = sim.spawnFront(4, ['--mac', '00:00:00:00:00:11', '--nb-mbuf', '1024']);
      await sim.waitPublished(4);
      const dev = await Dom0Device.attach(sim.grants, sim.dom0, 4);
      try {
        t.is(dev.flag(), 0xa5);
        front.kill(signal);
        const exit = await front.wait();
        t.deepEqual(exit, { code: 0, signal: null }, front.stderr);
        t.is(dev.flag(), 0);
        t.deepEqual(await sim.keys(4), {});
        t.deepEqual(await sim.dom0.directory('/local/domain/4/control'), ['dpdk']);
        t.regex(front.stdout, /^dev 0 00:00:00:00:00:11  RX pkts 0 bytes 0 drops 0  TX pkts 0 bytes 0 drops 0$/m, 'final stats');
      } finally {
        dev.detach();
      }
    });
  });
}

test.serial('SIGKILL: the platform drops the flag byte to 0 within a second', async (t) => {
  await withSim(async (sim) => {
    await sim.createDomain(6);
    const front = sim.spawnFront(6, ['--mac', '00:00:00:00:00:11', '--nb-mbuf', '1024']);
    await sim.waitPublished(6);
    const dev = await Dom0Device.attach(sim.grants, sim.dom0, 6);
    try {
      t.is(dev.flag(), 0xa5);
      front.kill('SIGKILL');
      await front.wait();
      const killedAt = Date.now();
      while (dev.flag() !== 0 && Date.now() - killedAt < 1000) await new Promise((r) => setTimeout(r, 20));
      t.is(dev.flag(), 0);
      t.true(Date.now() - killedAt <= 1000);
    } finally {
      dev.detach();
    }
  });
});

test.serial('--duration stops by itself like a signal does', async (t) => {
  await withSim(async (sim) => {
    await sim.createDomain(7);
    const front = sim.spawnFront(7, ['--mac', '00:00:00:00:00:11', '--nb-mbuf', '1024', '--duration', '0.5']);
    await sim.waitPublished(7);
    const exit = await front.wait();
    t.deepEqual(exit, { code: 0, signal: null });
    t.deepEqual(await sim.keys(7), {});
  });
});
