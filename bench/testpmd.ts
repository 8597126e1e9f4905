// The DPDK peers (docs/PERFORMANCE.md): interactive dpdk-testpmd processes
// fed commands on stdin, each with one forwarding lcore on a fixed CPU and
// its main lcore floating, hugepages reserved for the run and given back
// afterwards.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Child, mustRun, run, sleep } from '../harness/child';
import { onCleanup, start } from './cleanup';

export const TESTPMD = 'dpdk-testpmd';
export const NOT_INSTALLED = 'not measured: apt-get install dpdk-dev';

export function testpmdPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin').split(':')) {
    const p = path.join(dir, TESTPMD);
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

/** Hugepages and a hugetlbfs mount for the run; both undone at cleanup. */
export class Hugepages {
  private constructor(readonly dir: string) {}

  static async reserve(pages: number): Promise<Hugepages> {
    const file = '/proc/sys/vm/nr_hugepages';
    const before = Number(fs.readFileSync(file, 'utf8'));
    if (before < pages) {
      onCleanup(`restore ${file} to ${before}`, () => fs.writeFileSync(file, `${before}\n`));
      fs.writeFileSync(file, `${pages}\n`);
      const now = Number(fs.readFileSync(file, 'utf8'));
      if (now < pages / 2) throw new Error(`only ${now} of ${pages} hugepages could be reserved: free memory or reboot, then run again`);
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xsw-bench-huge-'));
    onCleanup(`remove ${dir}`, () => fs.rmSync(dir, { recursive: true, force: true }));
    await mustRun('mount', ['-t', 'hugetlbfs', 'nodev', dir]);
    onCleanup(`unmount ${dir}`, async () => {
      await run('umount', [dir]);
    });
    return new Hugepages(dir);
  }
}

let prefixes = 0;

/** One interactive testpmd. `lcore` pins its forwarding lcore; its main lcore floats over both CPUs. */
export class Testpmd {
  private constructor(readonly proc: Child) {}

  static start(name: string, huge: Hugepages, fwdCpu: number, vdevs: string[], appArgs: string[], sockDir: string, autoStart = true): Testpmd {
    const prefix = `xswb${process.pid}-${prefixes++}`;
    onCleanup(`remove DPDK runtime dir of ${prefix}`, () => fs.rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true }));
    const eal = [
      '--lcores', `0@(0-1),1@${fwdCpu}`, '--no-pci', '--huge-dir', huge.dir, '--file-prefix', prefix, '-m', '512',
      '--single-file-segments', '--log-level', 'lib.eal:error', ...vdevs.flatMap((v) => ['--vdev', v]),
    ];
    // stdbuf: testpmd's stdout is a pipe here; line buffering lets each answer arrive at once.
    // --record-burst-stats: one counter per burst, so `show fwd stats` says how many RX polls were empty;
    // --record-core-cycles: the TSC read around each burst that found frames, so it says how busy the lcore was.
    const proc = start(name, 'stdbuf', ['-oL', TESTPMD, ...eal, '--', '-i', '--nb-cores=1', '--record-burst-stats', '--record-core-cycles', ...(autoStart ? ['--auto-start'] : []), ...appArgs], { stdin: true, cwd: sockDir });
    return new Testpmd(proc);
  }

  /** Waits until the interactive prompt answers a command. */
  async ready(timeoutMs = 20000): Promise<void> {
    const from = this.proc.out.length;
    this.proc.write('show port info all\n');
    await this.proc.waitLine('out', /Infos for port|No port/, { from, timeoutMs });
  }

  /** RX-packets of a port (testpmd's own NIC counter), and when the answer arrived. */
  async rxPackets(port: number, timeoutMs = 5000): Promise<{ t: number; rx: number }> {
    const from = this.proc.out.length;
    this.proc.write(`show port stats ${port}\n`);
    const head = await this.proc.waitLine('out', new RegExp(`NIC statistics for port ${port}`), { from, timeoutMs });
    const line = await this.proc.waitLine('out', /RX-packets:\s*\d+/, { from: head, timeoutMs });
    const t = performance.now();
    return { t, rx: Number(/RX-packets:\s*(\d+)/.exec(this.proc.out[line])![1]) };
  }

  /** RX-packets of every port, summed (one `show port stats all`). */
  async rxPacketsAll(ports: number, timeoutMs = 5000): Promise<{ t: number; rx: number }> {
    const from = this.proc.out.length;
    this.proc.write('show port stats all\n');
    const last = await this.proc.waitLine('out', new RegExp(`NIC statistics for port ${ports - 1}`), { from, timeoutMs });
    await this.proc.waitLine('out', /RX-packets:\s*\d+/, { from: last, timeoutMs });
    const t = performance.now();
    let rx = 0;
    for (const l of this.proc.out.slice(from)) {
      const m = /RX-packets:\s*(\d+)/.exec(l);
      if (m) rx += Number(m[1]);
    }
    return { t, rx };
  }

  /** RX polls (bursts), the empty ones and the frames they brought, over every port since the last `clear fwd stats all`. */
  async burstStats(timeoutMs = 5000): Promise<BurstStats> {
    const from = this.proc.out.length;
    this.proc.write('show fwd stats all\n');
    const acc = await this.proc.waitLine('out', /Accumulated forward statistics/, { from, timeoutMs });
    await this.proc.waitLine('out', /TX-packets:/, { from: acc, timeoutMs });
    const stats = parseBurstStats(this.proc.out.slice(from, acc));
    // The cycles line follows at once; testpmd leaves it out when nothing was forwarded.
    const cyc = await this.proc.waitLine('out', /CPU cycles\/packet/, { from: acc, timeoutMs: 1000 }).catch(() => undefined);
    return cyc === undefined ? stats : { ...stats, ...parseCoreCycles(this.proc.out[cyc]) };
  }

  command(text: string): void {
    this.proc.write(`${text}\n`);
  }

  async stop(): Promise<void> {
    if (!this.proc.running) return;
    this.proc.write('quit\n');
    await Promise.race([this.proc.exited, sleep(5000)]);
    await this.proc.stop(1000);
  }
}

export interface BurstStats {
  rxBursts: number;
  /** Empty RX polls (from testpmd's whole-percent share of 0-packet bursts, so ± 1 % of rxBursts per port). */
  rxEmpty: number;
  rxPackets: number;
  /** --record-core-cycles: TSC cycles spent in bursts that found frames, and the TSC's rate (MHz). */
  busyCycles?: number;
  tscMhz?: number;
}

/** testpmd's "CPU cycles/packet=… (total cycles=N / total <mode> packets=P) at M MHz Clock". */
export function parseCoreCycles(line: string): { busyCycles: number; tscMhz: number } | undefined {
  const m = /total cycles=(\d+) .* at (\d+) MHz/.exec(line);
  return m ? { busyCycles: Number(m[1]), tscMhz: Number(m[2]) } : undefined;
}

/**
 * The per-port blocks of testpmd's `show fwd stats all` with
 * --record-burst-stats ("RX-packets: N …" and "RX-bursts : T [a% of 0 pkts +
 * b% of 32 pkts]"), summed over the ports. testpmd always lists the 0-packet
 * share first.
 */
export function parseBurstStats(lines: string[]): BurstStats {
  const out: BurstStats = { rxBursts: 0, rxEmpty: 0, rxPackets: 0 };
  for (const l of lines) {
    const p = /RX-packets:\s*(\d+)/.exec(l);
    if (p) out.rxPackets += Number(p[1]);
    const b = /RX-bursts\s*:\s*(\d+)\s*\[([^\]]*)\]/.exec(l);
    if (!b) continue;
    const total = Number(b[1]);
    out.rxBursts += total;
    const zero = /(\d+)% of 0 pkts/.exec(b[2]);
    if (zero) out.rxEmpty += (total * Number(zero[1])) / 100;
  }
  return out;
}

/** A directory for the vhost-user sockets, removed at cleanup. */
export function socketDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xsw-bench-vhost-'));
  onCleanup(`remove ${dir}`, () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
