// Hostile vhost-user front ends against xsw-backend, end to end: a
// hand-written peer (fixtures/vhost-hostile.py) breaks the protocol in one
// way per case on one socket, while dpdk-testpmd sends to a Xen guest through
// another. Each case: one log line naming the fault, the device detached,
// the back end alive; the testpmd device is never disturbed and the guest
// receives only intact frames. scripts/asan-e2e.sh runs this file again with
// the addon built under ASan/UBSan.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Child, run } from '../harness/child';
import { Rig, statsUntil } from './fixtures/backend-rig';
import { peerEnv, requireTestpmd, stopTestpmd, testpmd } from './fixtures/testpmd';

const HOSTILE = path.join(__dirname, '..', '..', 'test', 'fixtures', 'vhost-hostile.py');
const CHECKER = path.join(__dirname, 'fixtures', 'testpmd-frame-checker.js');
const X = '02:00:00:00:00:11';
const TP = '02:00:00:00:01:01';
const EVIL = '02:00:00:00:0e:01';

const CASES: [string, RegExp][] = [
  ['oversized', /refused a SET_OWNER message claiming 100000 payload bytes/],
  ['bad-size', /refused SET_VRING_NUM with a 4-byte payload/],
  ['out-of-order', /refused SET_MEM_TABLE before SET_FEATURES \(out of order\)/],
  ['unknown', /refused request 99 .*which xsw does not implement/],
  ['fd-not-wanted', /refused SET_OWNER carrying 1 file descriptors where none belong/],
  ['nine-fds', /refused a message carrying more than 8 file descriptors/],
  ['nine-regions', /refused SET_MEM_TABLE with 9 regions/],
  ['short-fd', /needs 1048576 bytes of its fd, which has only 4096/],
  ['ring-outside', /the ring of queue 1 .* is not inside the memory table/],
  ['desc-outside', /quarantined by the switch: addr_outside_region/],
  ['vanish', /the peer vanished in the middle of a message/],
  ['shrink', /quarantined: memory_truncated \(the peer shrank a memory file under its mapping/],
];

interface Dev { mac: string; state: string; kind: string; tx_total: number; rx_total: number; rx_dropped: number; drops: Record<string, number> }

test('each hostile vhost-user peer gets one log line and a detached device; testpmd and the guest beside it lose nothing', async (t) => {
  requireTestpmd();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xsw-vhost-hostile-'));
  const good = path.join(dir, 'good.sock');
  const evil = path.join(dir, 'evil.sock');
  const rig = await Rig.start();
  let tp: Child | undefined;
  try {
    await rig.createDomain(1);
    const be = rig.backend(['--vhost-user', good, '--vhost-user', `${evil},mac=${EVIL}`, '--stats', '1', '--json'], { nic: false });
    await be.waitLine('err', /evil\.sock: listening/);
    const checker = rig.guest(1, [X, TP, '64'], CHECKER);
    await checker.waitLine('out', /^ready$/);
    // virtio_user connects once, at start: the back end listens first.
    tp = testpmd({ sock: good, fwd: 'txonly', mac: TP, peer: X, txpkts: 64, prefix: `xswvhh${process.pid}` });
    const reg = await be.waitLine('err', /MAC_ADDRESS 02:00:00:00:01:01 and VLAN_TAG \d+ registered/, { timeoutMs: 30000 });
    // DPDK 22.11's --no-huge memory is a memfd created without MFD_ALLOW_SEALING: only the SIGBUS guard protects it.
    t.regex(be.err[reg], /memory not sealable, SIGBUS-guarded\)/);
    for (const [name, expect] of CASES) {
      const from = be.err.length;
      const r = await run('python3', [HOSTILE, evil, name], { timeoutMs: 15000, env: peerEnv() });
      t.is(r.code, 0, `${name}: ${r.err}; the back end said: ${be.err.slice(from).join('\n')}`);
      await be.waitFor(`the ${name} peer to be detached`, () => {
        const lines = be.err.slice(from).filter((l) => l.includes('evil.sock') && l.includes('device detached'));
        return lines.length > 0 ? lines : undefined;
      }, 5000);
      // Give a second line the chance to appear, then count.
      await new Promise((res) => setTimeout(res, 300));
      const lines = be.err.slice(from).filter((l) => l.includes('evil.sock') && l.includes('device detached'));
      t.is(lines.length, 1, `${name}: ${lines.join('\n')}`);
      t.regex(lines[0] ?? '', expect, name);
      t.true(be.running, `${name}: the back end died`);
    }
    // The testpmd device was never detached, and kept switching.
    t.false(be.err.some((l) => l.includes('good.sock') && l.includes('detached')));
    const s = await statsUntil<{ devices: Dev[] }>(be, (x) => (x.devices.find((d) => d.mac === X)?.rx_total ?? 0) > 5000, 20000);
    const tpDev = s.devices.find((d) => d.mac === TP)!;
    t.is(tpDev.state, 'active');
    t.deepEqual(tpDev.drops, {});
    await stopTestpmd(tp);
    checker.kill('SIGTERM');
    await checker.exited;
    const res = JSON.parse(checker.out.find((l) => l.startsWith('{')) ?? '{}') as { rx: number; bad: number; firstBad: string };
    t.true(res.rx > 5000);
    t.is(res.bad, 0, res.firstBad);
  } finally {
    tp?.kill('SIGKILL');
    await tp?.exited;
    await rig.close();
  }
});
