// The demo's container: DPDK's own test application (dpdk-testpmd) with a
// virtio_user port on the back end's vhost-user socket, as in DPDK's
// "virtio_user for container networking" guide, exchanging frames with a Xen
// guest through the same switch. vm4 (xsw-front txonly --verify) sends test
// frames to the container; testpmd's mac forwarding sends each back to vm4
// (destination rewritten to vm4, source to its own MAC), and vm4 verifies
// every frame it gets. Skipped, with one line, when dpdk-testpmd is missing.
import fs from 'node:fs';
import path from 'node:path';
import { Child } from '../harness/child';
import { TXONLY_RATE, Verdict } from './scenarios';
import { DemoWorld, Guest } from './world';

export const TESTPMD = '/usr/bin/dpdk-testpmd';
export const CONTAINER_MAC = '02:00:00:00:01:01';
export const VM4_MAC = '00:00:00:00:00:44';

export function hasTestpmd(): boolean {
  return fs.existsSync(TESTPMD);
}

/** The back end's vhost-user socket for the container (xsw listens; virtio_user connects). */
export function containerSocket(p: DemoWorld): string {
  return path.join(p.dir, 'container.sock');
}

/** The testpmd command line the demo runs (docs/vhost-user.md has the same). */
export function testpmdArgs(sock: string): string[] {
  return [
    '-l', '0,1', '--no-huge', '-m', '1024', '--no-pci', '--file-prefix', `xsw-demo-${process.pid}`,
    '--vdev', `virtio_user0,path=${sock},mac=${CONTAINER_MAC},queue_size=256`,
    '--', '--total-num-mbufs=8192', '--forward-mode=mac', `--eth-peer=0,${VM4_MAC}`, '-a', '--stats-period', '1',
  ];
}

export async function containerScenario(
  p: DemoWorld,
  n: number,
  say: (line: string) => void,
  startGuest: (name: string, mac: string, args: string[]) => Promise<Guest>,
  signal: AbortSignal,
): Promise<Verdict> {
  const name = 'container (vm4 → testpmd → vm4)';
  const sock = containerSocket(p);
  const backend = p.backend!;
  say(`starting the container's DPDK app: dpdk-testpmd ${testpmdArgs(sock).join(' ')}`);
  // With --stats-period testpmd forwards until a signal.
  const tp = new Child(TESTPMD, testpmdArgs(sock), { name: 'dpdk-testpmd', group: true });
  try {
    await backend.waitFor('the back end to register the container', () => backend.err.find((l) => l.includes(`MAC_ADDRESS ${CONTAINER_MAC} and VLAN_TAG`)), 30000, signal);
    // Its receive ring is filled once it forwards (after its memory pool, which takes a few
    // seconds); with --stats-period its output is flushed every second.
    await tp.waitLine('out', /mac packet forwarding - ports=1/, { timeoutMs: 30000, signal });
    say(`container attached and forwarding: MAC_ADDRESS ${CONTAINER_MAC} registered (vhost-user ${sock})`);
    const txonly = ['--fwd', 'txonly', '--eth-peer', CONTAINER_MAC, '--count', String(n), '--rate', String(TXONLY_RATE), '--verify', '--stats', '1', '--json'];
    say(`vm4 sends ${n} test frames to the container, whose testpmd (mac forwarding) sends each back to vm4, which verifies them…`);
    const vm4 = await startGuest('vm4', VM4_MAC, txonly);
    const timeoutMs = Math.ceil((n / TXONLY_RATE) * 1000) + 15000;
    const c = await p.counters(vm4, 0, (x) => x.tx_done === 1 && x.rx_packets >= n, timeoutMs, signal);
    // The back end's next stats table, while the container is still attached, shows its port.
    const fromLine = backend.out.length;
    await backend.waitFor('the back end\'s next stats table', () => backend.out.slice(fromLine).find((l) => l.includes(`vhost-user: ${sock}`)), 15000, signal).catch((err: Error) => {
      if (signal.aborted) throw err;
    });
    const ok = c !== undefined && c.tx_packets === n && c.rx_packets === n && c.rx_bad === 0 && c.rx_out_of_order === 0;
    const text = c === undefined
      ? 'vm4 printed no counters'
      : `${c.tx_packets} sent by vm4, ${c.rx_packets} back through the container, ${c.rx_bad} bad, ${c.rx_out_of_order} out of order${ok ? "" : ` (vm4: ${JSON.stringify(c)})`}`;
    return { name, passed: ok, line: `${name}: ${text} — ${ok ? 'PASS' : 'FAIL'}` };
  } finally {
    tp.kill('SIGINT');
    const t = setTimeout(() => tp.killGroup('SIGKILL'), 5000);
    await tp.exited;
    clearTimeout(t);
  }
}
