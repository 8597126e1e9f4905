// tap mode: the guest kernel's own stack uses the device. In a network
// namespace the test creates, xsw-front bridges its device to a TAP
// interface; the kernel pings 10.99.0.2 through it while the test, playing
// the far side on the shared rings, answers the ARP request and the ICMP echo.
// Needs root and iproute2 (and ping from iputils-ping).
import test from 'ava';
import { mustRun, run, sleep } from '../harness/child';
import { Netns } from '../harness/netns';
import { Dom0Device } from './fixtures/front-dom0';
import { FrontSim } from './fixtures/front-sim';

const GUEST_MAC = Buffer.from([0x02, 0, 0, 0, 0, 0x11]);
const FAR_MAC = Buffer.from([0x02, 0, 0, 0, 0, 0x22]);
const GUEST_IP = Buffer.from([10, 99, 0, 1]);
const FAR_IP = Buffer.from([10, 99, 0, 2]);

function inetChecksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The far side's answer to an ARP request or ICMP echo request for FAR_IP, if the frame is one. */
function answer(f: Buffer, seen: Set<string>): Buffer | undefined {
  const type = f.readUInt16BE(12);
  if (type === 0x0806 && f.length >= 42 && f.readUInt16BE(20) === 1 && f.subarray(38, 42).equals(FAR_IP)) {
    seen.add('arp');
    const r = Buffer.alloc(42);
    f.copy(r, 0, 6, 12);  // to the asker
    FAR_MAC.copy(r, 6);
    r.writeUInt16BE(0x0806, 12);
    f.copy(r, 14, 14, 20);  // htype, ptype, hlen, plen
    r.writeUInt16BE(2, 20);  // reply
    FAR_MAC.copy(r, 22);
    FAR_IP.copy(r, 28);
    f.copy(r, 32, 22, 32);  // the asker's MAC and IP
    return r;
  }
  if (type === 0x0800 && f.length >= 34 && f[23] === 1 && f.subarray(30, 34).equals(FAR_IP)) {
    const ihl = (f[14] & 0x0f) * 4;
    if (f[14 + ihl] !== 8) return undefined;  // not an echo request
    seen.add('icmp');
    if (f.subarray(26, 30).equals(GUEST_IP)) seen.add('icmp-from-guest');
    const r = Buffer.from(f);
    f.copy(r, 0, 6, 12);
    FAR_MAC.copy(r, 6);
    f.copy(r, 26, 30, 34);  // src = the far side
    f.copy(r, 30, 26, 30);  // dst = the guest
    r[22] = 64;
    r.writeUInt16BE(0, 24);
    r.writeUInt16BE(inetChecksum(r.subarray(14, 14 + ihl)), 24);
    const icmp = r.subarray(14 + ihl, 14 + r.readUInt16BE(16));
    icmp[0] = 0;  // echo reply
    icmp.writeUInt16BE(0, 2);
    icmp.writeUInt16BE(inetChecksum(icmp), 2);
    return r;
  }
  return undefined;
}

test('tap: a ping from the guest kernel goes out as ARP and ICMP frames and the replies reach it', async (t) => {
  const ns = await Netns.add(`xswfe${process.pid}`);
  const inNs = ns.prefix;
  const sim = await FrontSim.start();
  try {
    await sim.createDomain(9);
    const front = sim.spawnFront(9, ['--fwd', 'tap', '--tap', 'xswtap0', '--mac', '02:00:00:00:00:11', '--nb-mbuf', '1024'], undefined, inNs);
    try {
      await sim.waitPublished(9);
      const dev = await Dom0Device.attach(sim.grants, sim.dom0, 9);
      try {
        const { out: link } = await mustRun(...ns.wrap('ip', ['-o', 'link', 'show', 'xswtap0']));
        t.regex(link, /link\/ether 02:00:00:00:00:11/, 'the TAP has the device MAC');
        await mustRun(...ns.wrap('ip', ['link', 'set', 'xswtap0', 'up']));
        await mustRun(...ns.wrap('ip', ['addr', 'add', '10.99.0.1/24', 'dev', 'xswtap0']));

        let done = false;
        const ping = run(...ns.wrap('ping', ['-c', '1', '-W', '2', '10.99.0.2'])).then(
          (r) => ({ ok: r.code === 0, out: r.code === 0 ? r.out : `ping failed (status ${r.code}): ${r.err} ${r.out}` }),
        ).finally(() => (done = true));
        const seen = new Set<string>();
        let fromGuest = 0;
        while (!done) {
          for (const f of dev.takeTx()) {
            if (f.subarray(6, 12).equals(GUEST_MAC)) fromGuest++;
            const reply = answer(f, seen);
            if (reply && !dev.deliver(reply)) t.fail('the guest posted no RX buffer');
          }
          await sleep(2);
        }
        const result = await ping;
        t.true(result.ok, result.out);
        t.regex(result.out, /1 received/);
        t.true(seen.has('arp'), 'the kernel asked for 10.99.0.2 with ARP through the rings');
        t.true(seen.has('icmp'), 'the echo request came through the rings');
        t.true(fromGuest >= 2);
        t.true(seen.has('icmp-from-guest'), 'the echo request carries the TAP address');
      } finally {
        dev.detach();
      }
    } finally {
      front.kill('SIGTERM');
      const exit = await front.wait();
      t.is(exit.code, 0, front.stderr);
    }
  } finally {
    await sim.stop();
    await ns.remove().catch(() => undefined);
  }
});
