// The NIC path against the real kernel: a child process in a network
// namespace of its own (`unshare -n`, root) builds a veth pair and a TAP,
// and reports what crossed them (test/fixtures/switch-nic.ts).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

test('frames cross a veth pair and a TAP with VLAN insert on the way out and strip on the way in', (t) => {
  const child = path.join(__dirname, 'fixtures', 'switch-nic.js');
  const out = execFileSync('unshare', ['-n', process.execPath, child], { encoding: 'utf8', timeout: 60_000 });
  const results = JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
  t.is(results.error, undefined);
  t.like(results, {
    vethOutTagged: true, // guest VLAN 1000 inserted on the way to the NIC
    vethOutTagInAux: true, // the receiving kernel moved it to AF_PACKET aux data
    vethBroadcastTagged: true,
    vethInStripped: true, // tag from the NIC stripped before the guest sees the frame
    vethUnknownDst: 2, // wrong VLAN for the MAC, and an unknown MAC
    vethGuestRx: 1,
    tapOutTagged: true,
    tapInStripped: true, // a TAP hands the tag over in-frame
  });
  t.true((results.vethNicTx as number) >= 2);
});

test('opening the NIC without CAP_NET_RAW says so in one sentence', (t) => {
  const child = path.join(__dirname, 'fixtures', 'switch-open-port.js');
  // Without net_raw in the bounding set, even root's exec'd node lacks it.
  const out = execFileSync('setpriv', ['--bounding-set', '-net_raw', process.execPath, child, 'lo'], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.deepEqual(JSON.parse(out), { code: 'EPERM', message: 'cannot open AF_PACKET socket on lo: needs CAP_NET_RAW: run as root' });
});
