// The control for the hostile vhost-user peers: a correct peer
// (fixtures/vhost-hostile.py, case refill) refills its ring from Python while
// the switch polls it (no kick fd), its indexes starting near 65535 so they
// wrap, then hangs up. It must never be quarantined. Alone on the back end,
// so that the switch's data thread and the peer run in parallel and the switch
// loads avail->idx while the peer stores it: with the peer's 16-bit stores
// made by struct.pack_into (zero, then byte by byte), this test failed 3 times
// in 3 (`avail_idx_jump`); beside testpmd (vhost-hostile.test.ts) the two
// rarely run at the same moment and it would pass by luck.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../harness/child';
import { Rig } from './fixtures/backend-rig';

const PEER = path.join(__dirname, '..', '..', 'test', 'fixtures', 'vhost-hostile.py');
const EVIL = '02:00:00:00:0e:01';
const RUNS = 3;

test('a vhost-user peer refilling its polled ring across the 16-bit index wrap is never quarantined', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xsw-vhost-refill-'));
  const sock = path.join(dir, 'peer.sock');
  const rig = await Rig.start();
  try {
    const be = rig.backend(['--vhost-user', `${sock},mac=${EVIL}`], { nic: false });
    await be.waitLine('err', /peer\.sock: listening/);
    for (let i = 0; i < RUNS; i++) {
      const from = be.err.length;
      const r = await run('python3', [PEER, sock, 'refill'], { timeoutMs: 15000 });
      const lines = await be.waitFor('the refill peer to be detached', () => {
        const l = be.err.slice(from).filter((x) => x.includes('peer.sock') && x.includes('device detached'));
        return l.length > 0 ? l : undefined;
      }, 5000);
      t.is(r.code, 0, `run ${i}: ${r.err}; the back end said: ${be.err.slice(from).join('\n')}`);
      t.is(lines.length, 1, lines.join('\n'));
      t.regex(lines[0] ?? '', /the peer closed the connection; device detached/, `run ${i}`);
    }
    t.true(be.running);
  } finally {
    await rig.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
