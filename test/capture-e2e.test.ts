// Live capture end to end, read back by Debian's tshark: `xsw-ctl capture`
// of a device (piped into `tshark -r -`) and of the NIC (written with -w)
// while a known flow crosses the switch, and a capture with a reader that
// never reads while two guests switch at full rate: no switched frame is
// lost, and every frame is either captured or counted as a capture drop.
// Real processes on the simulated platform (root: netns, veth, AF_PACKET).
import net from 'node:net';
import path from 'node:path';
import test from 'ava';
import { Child, run } from '../harness/child';
import { CLI } from '../harness/cli-paths';
import { Rig, statsUntil } from './fixtures/backend-rig';

const G1 = '00:00:00:00:00:11';
const G2 = '00:00:00:00:00:22';
const G3 = '00:00:00:00:00:33';
const G4 = '00:00:00:00:00:44';
const GEN = '00:00:00:00:00:01';
const FRONT = ['--nb-mbuf', '512', '--log-level', 'warn'];
const FIELDS = ['frame.interface_name', 'frame.packet_flags_direction', 'eth.src', 'eth.dst', 'vlan.id', 'frame.len', 'frame.cap_len', 'data.data'];

interface Row {
  iface: string;
  dir: 'in' | 'out';
  src: string;
  dst: string;
  vlan: number | null;
  len: number;
  caplen: number;
  seq: number;
}

/** tshark's -T fields lines as rows (the payload's sequence number: backend-wire.py's MAGIC, tag, seq). */
function rows(text: string): Row[] {
  return text
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [iface, flags, src, dst, vlan, len, caplen, data] = l.split('\t');
      return {
        iface,
        dir: (Number(flags) & 3) === 1 ? 'in' : 'out',
        src,
        dst,
        vlan: vlan === '' ? null : Number(vlan),
        len: Number(len),
        caplen: Number(caplen),
        seq: parseInt((data ?? '').slice(24, 32), 16),
      };
    });
}

function tsharkArgs(): string[] {
  return ['-T', 'fields', ...FIELDS.flatMap((f) => ['-e', f])];
}

async function captures(rig: Rig): Promise<{ active: number; captured: number; dropped: number }> {
  const r = await run(process.execPath, [CLI.ctl, 'show', '--json'], { env: rig.env(0) });
  return (JSON.parse(r.out) as { capture: { active: number; captured: number; dropped: number } }).capture;
}

async function untilCapturing(rig: Rig, n: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await captures(rig)).active === n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${n} capture sessions never started`);
}

test.serial('a capture of a known flow, read by tshark, shows exactly its frames with their addresses, VLAN and lengths', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(1);
    const be = rig.backend(['--vm2vm']);
    await be.waitLine('err', /control socket/);
    rig.guest(1, ['--mac', G1, '--fwd', 'mac', '--eth-peer', G2, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
    const N = 50;
    const file = path.join(rig.dir, 'nic.pcapng');
    // The device by its MAC into a pipe to tshark; the NIC into a file.
    const piped = new Child('sh', ['-c', `"${process.execPath}" "${CLI.ctl}" capture ${G1} --count ${2 * N} | tshark -r - ${tsharkArgs().join(' ')}`], { name: 'capture|tshark', env: rig.env(0) });
    const toFile = new Child(process.execPath, [CLI.ctl, 'capture', 'nic', '-w', file, '--count', String(2 * N)], { name: 'capture -w', env: rig.env(0) });
    await untilCapturing(rig, 2);
    const r = await rig.wire(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', String(N), '--size', '300', '--gap-ms', '1']);
    t.is(r.frames.length, N);
    t.is((await toFile.exited).code, 0, toFile.stderr);
    t.is((await piped.exited).code, 0, piped.stderr);
    const seqs = Array.from({ length: N }, (_, i) => i);

    // The guest's port: what the switch delivered to it (out: untagged, 296 bytes) and what it sent back (in).
    const dev = rows(piped.stdout);
    t.is(dev.length, 2 * N);
    const devOut = dev.filter((f) => f.dir === 'out');
    const devIn = dev.filter((f) => f.dir === 'in');
    t.deepEqual(devOut.map((f) => f.seq), seqs);
    t.deepEqual(devIn.map((f) => f.seq), seqs);
    t.true(dev.every((f) => f.iface === '1:0' && f.vlan === null && f.len === 296 && f.caplen === 296));
    t.true(devOut.every((f) => f.src === GEN && f.dst === G1));
    t.true(devIn.every((f) => f.src === G1 && f.dst === G2));

    // The NIC: the generator's frames in (tagged 1000, 300 bytes), the guest's out (tagged by the switch).
    const tshark = await run('tshark', ['-r', file, ...tsharkArgs()]);
    t.is(tshark.code, 0, tshark.err);
    const nic = rows(tshark.out);
    t.is(nic.length, 2 * N);
    t.deepEqual(nic.filter((f) => f.dir === 'in').map((f) => f.seq), seqs);
    t.deepEqual(nic.filter((f) => f.dir === 'out').map((f) => f.seq), seqs);
    t.true(nic.every((f) => f.iface === 'nic' && f.vlan === 1000 && f.len === 300));
    t.true(nic.filter((f) => f.dir === 'in').every((f) => f.src === GEN && f.dst === G1));
    t.true(nic.filter((f) => f.dir === 'out').every((f) => f.src === G1 && f.dst === G2));

    // --snaplen cuts each frame, keeping its length on the wire.
    const snap = new Child('sh', ['-c', `"${process.execPath}" "${CLI.ctl}" capture 1:0 --snaplen 64 --count 4 | tshark -r - ${tsharkArgs().join(' ')}`], { name: 'snaplen', env: rig.env(0) });
    await untilCapturing(rig, 1);
    await rig.wire(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', '2', '--size', '300', '--gap-ms', '1']);
    t.is((await snap.exited).code, 0, snap.stderr);
    t.deepEqual(rows(snap.stdout).map((f) => [f.len, f.caplen]), [[296, 64], [296, 64], [296, 64], [296, 64]]);
    const c = await captures(rig);
    t.is(c.active, 0);
    t.is(c.dropped, 0);
  } finally {
    await rig.close();
  }
});

interface S { devices: { domid: number; tx_total: number; tx_dropped: number; rx_total: number; rx_dropped: number; drops: Record<string, number> }[] }

test.serial('capturing while guests switch loses no switched frame: a reader that never reads costs only capture drops', async (t) => {
  const rig = await Rig.start();
  try {
    await rig.createDomain(2);
    await rig.createDomain(3);
    await rig.createDomain(4);
    const be = rig.backend(['--vm2vm', '--stats', '1', '--json'], { nic: false });
    await be.waitLine('err', /control socket/);
    rig.guest(2, ['--mac', G2, '--fwd', 'rxonly', '--nb-mbuf', '4096', '--log-level', 'warn']);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:22/);
    // A capture client that asks for the receiver's port and never reads a byte.
    const stalled = net.createConnection(path.join(rig.dir, 'backend.sock'));
    stalled.on('error', () => undefined);
    stalled.pause();
    stalled.write(`${JSON.stringify({ cmd: 'capture', dev: '2:0' })}\n`);
    await untilCapturing(rig, 1);

    // A paced flow while the capture ring overflows. The capture never costs a
    // frame: the only loss allowed is the receiver's own (rx_no_buffer, when
    // a loaded machine keeps its poller off the CPU), and every frame
    // delivered is captured or counted as a capture drop.
    const K = 40_000;
    rig.guest(4, ['--mac', G4, '--fwd', 'txonly', '--eth-peer', G2, '--count', String(K), '--rate', '20000', '--log-level', 'warn']);
    const s1 = await statsUntil<S>(be, (x) => x.devices.find((d) => d.domid === 4)?.tx_total === K && x.devices.find((d) => d.domid === 2)?.rx_total === K, 60000);
    const rx1 = s1.devices.find((d) => d.domid === 2)!;
    t.deepEqual(Object.keys(rx1.drops).filter((k) => k !== 'rx_no_buffer'), [], 'no drop reason but the receiver having no buffer');
    t.is(rx1.rx_dropped, rx1.drops.rx_no_buffer ?? 0);
    t.is(s1.devices.find((d) => d.domid === 4)!.tx_dropped, rx1.rx_dropped, "the sender's losses are exactly the receiver's rx_no_buffer");
    const c1 = await captures(rig);
    t.true(c1.dropped > 0, 'the ring filled: capture drops were counted');
    t.is(c1.captured + c1.dropped, K - rx1.rx_dropped, 'every frame delivered was captured or counted as a capture drop');

    // Full rate: the receiver is the bottleneck (rx_no_buffer, its own counter), never the capture.
    const M = 300_000;
    rig.guest(3, ['--mac', G3, '--fwd', 'txonly', '--eth-peer', G2, '--count', String(M), '--nb-mbuf', '4096', '--log-level', 'warn']);
    const s2 = await statsUntil<S>(be, (x) => x.devices.find((d) => d.domid === 3)?.tx_total === M && x.devices.find((d) => d.domid === 2)?.rx_total === K + M, 60000);
    const rx = s2.devices.find((d) => d.domid === 2)!;
    const tx = s2.devices.find((d) => d.domid === 3)!;
    t.deepEqual(Object.keys(rx.drops).filter((k) => k !== 'rx_no_buffer'), [], 'no drop reason but the receiver having no buffer');
    t.is(rx.rx_dropped, rx.drops.rx_no_buffer ?? 0);
    const tx4 = s2.devices.find((d) => d.domid === 4)!;
    t.is(tx.tx_dropped + tx4.tx_dropped, rx.rx_dropped, "the senders' losses are exactly the receiver's rx_no_buffer");
    const c2 = await captures(rig);
    t.is(c2.captured + c2.dropped, K + M - rx.rx_dropped, 'every frame delivered was captured or counted as a capture drop');
    stalled.destroy();
  } finally {
    await rig.close();
  }
});
