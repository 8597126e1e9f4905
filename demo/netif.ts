// The demo's stock Xen guest: a domain created with a vif as libxl creates
// it (`xsw-sim create vm5 --vif mac=…`), whose network driver is Linux's
// xen-netfront played in this process (harness/netfront-fake.ts: its exact
// XenStore sequence and ring use). The back end serves the vif (netif,
// docs/netif.md); vm6, an xsw-front guest in macswap mode, sends every frame
// back. vm5 sends frames of one slot, of several slots (a frame whose data
// crosses pages, as netfront sends them) and UDP frames whose checksum it
// left blank (NETTXF_csum_blank: the back end completes it), and checks each
// frame that comes back.
import { ethFrame, FakeNetfront, NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED, udpChecksumValid, udpFrame } from '../harness/netfront-fake';
import { Verdict } from './scenarios';
import { DemoWorld, Guest } from './world';

export const VIF_MAC = '00:16:3e:00:00:55';
export const VM6_MAC = '00:00:00:00:00:66';
const BATCH = 16;

/** Frame i of the run: [frame, its slots' sizes, TX flags]. */
function frameOf(i: number): [Buffer, number[], number] {
  switch (i % 4) {
    case 0:
      return [ethFrame(VM6_MAC, VIF_MAC, 60, i), [60], 0];
    case 1:
      return [ethFrame(VM6_MAC, VIF_MAC, 1000, i), [400, 600], 0];
    case 2:
      return [ethFrame(VM6_MAC, VIF_MAC, 1514, i), [1000, 14, 500], 0];
    default:
      return [udpFrame(VM6_MAC, VIF_MAC, 200 + i), [100, 142 + i], NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED];
  }
}

/** Did `back` come from `sent` through a macswap guest (addresses swapped, rest intact or, for blank checksums, completed)? */
function cameBack(sent: Buffer, flags: number, back: Buffer): boolean {
  if (back.length !== sent.length) return false;
  if (!back.subarray(0, 6).equals(sent.subarray(6, 12)) || !back.subarray(6, 12).equals(sent.subarray(0, 6))) return false;
  if (flags & NETTXF_CSUM_BLANK) return udpChecksumValid(back) && back.subarray(12, 40).equals(sent.subarray(12, 40)) && back.subarray(42).equals(sent.subarray(42));
  return back.subarray(12).equals(sent.subarray(12));
}

export async function netifScenario(
  p: DemoWorld,
  n: number,
  say: (line: string) => void,
  startGuest: (name: string, mac: string, args: string[]) => Promise<Guest>,
  signal: AbortSignal,
): Promise<Verdict> {
  const name = 'stock guest (vm5 netfront → vm6 → vm5)';
  await startGuest('vm6', VM6_MAC, ['--fwd', 'macswap', '--stats', '1', '--json']);
  const domid = await p.createVifDomain('vm5', VIF_MAC);
  say(`vm5 created with a vif (xsw-sim create vm5 --vif mac=${VIF_MAC}); its netfront connects to the back end's netif…`);
  const nf = await FakeNetfront.open({ simDir: p.dir, socket: p.domainSocket(domid), domid });
  try {
    await nf.connect();
    say(`vm5's vif is Connected (state 4); it sends ${n} frames to vm6 (a quarter over 2 or 3 slots, a quarter UDP with a blank checksum), which sends each back…`);
    let good = 0;
    let slots = 0;
    let blank = 0;
    for (let first = 0; first < n && !signal.aborted; first += BATCH) {
      const count = Math.min(BATCH, n - first);
      const sent: [Buffer, number][] = [];
      nf.postRx(count);
      for (let i = first; i < first + count; i++) {
        const [f, pieces, flags] = frameOf(i);
        nf.queue(f, pieces, flags);
        sent.push([f, flags]);
        slots += pieces.length;
        if (flags & NETTXF_CSUM_BLANK) blank++;
      }
      nf.pushTx();
      const got = await nf.receive(count, 10000);
      nf.txResponses();
      got.forEach((back, k) => {
        if (k < sent.length && cameBack(sent[k][0], sent[k][1], back)) good++;
      });
      if (got.length < count) break;
    }
    const passed = good === n;
    const line = `${name}: sent ${n} frames in ${slots} netif slots (${blank} with a blank UDP checksum), ${good} came back intact${blank ? ' with their checksums completed' : ''}`;
    return { name, passed, line: `${line} — ${passed ? 'PASS' : 'FAIL'}` };
  } finally {
    nf.dispose();
  }
}
