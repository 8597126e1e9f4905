#!/usr/bin/env node
// xsw-sim: the simulated platform's toolstack (the role of xl on real Xen).
import { Command, InvalidArgumentError } from 'commander';
import { parseEtherAddr } from '../../schema/dpdk';
import { parseAssignedVlan } from '../../schema/assignment';
import * as toolstack from './toolstack';
import { parseVifSpec, VifSpec } from './vif';

/**
 * Default per-domain grant limit: the whole sim grant table (Xen's default
 * max_grant_frames, 64 frames of 512 v1 entries), so large mempools fit.
 */
const DEFAULT_GNTALLOC_LIMIT = 32768;

function positiveInt(text: string): number {
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || n < 1) throw new InvalidArgumentError('expected a positive whole number.');
  return n;
}

function collectMac(text: string, prev: string[] = []): string[] {
  const r = parseEtherAddr(text);
  if (!r.ok) throw new InvalidArgumentError(`expected a unicast MAC like 00:16:3e:00:00:01: ${r.reason}.`);
  return [...prev, r.value];
}

function collectVif(text: string, prev: VifSpec[] = []): VifSpec[] {
  try {
    return [...prev, parseVifSpec(text)];
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message}.`);
  }
}

function collectVlan(text: string, prev: number[] = []): number[] {
  const r = parseAssignedVlan(text);
  if (!r.ok) throw new InvalidArgumentError(`expected a VLAN id: ${r.reason}.`);
  return [...prev, r.value];
}

function out(text: string): void {
  process.stdout.write(text);
}

async function main(argv: string[]): Promise<number> {
  const dir = toolstack.simDir();
  let code = 0;
  const program = new Command()
    .name('xsw-sim')
    .description('The simulated Xen platform: an embedded xenstored, a shared-memory grant table, and domains (like xl).')
    .showHelpAfterError('(run `xsw-sim --help` for usage)')
    .exitOverride();

  program
    .command('up')
    .description('start xenstored and the grant layer in the background and print the environment to use (eval "$(xsw-sim up)")')
    .option('--gntalloc-limit <pages>', 'pages each domain may grant, like `modprobe xen-gntalloc limit=N` (raise it for large mempools; at most the sim grant table\'s 32768 entries)', positiveInt, DEFAULT_GNTALLOC_LIMIT)
    .action(async (opts: { gntallocLimit: number }) => {
      const started = await toolstack.up(dir, { gntallocLimit: opts.gntallocLimit });
      if (!started) process.stderr.write(`xsw-sim: already up in ${dir}\n`);
      out(toolstack.environmentLines(dir));
    });

  program
    .command('down')
    .description('destroy all domains and stop xenstored')
    .action(async () => {
      if (!(await toolstack.down(dir))) process.stderr.write(`xsw-sim: nothing was running in ${dir}\n`);
    });

  program
    .command('create')
    .description('create (introduce) a domain; prints its domid')
    .argument('<name>', 'domain name')
    .option('--mac <mac>', 'assign this MAC to the next switch device (0, then 1, …), like mac= in an xl vif line; repeat for more devices', collectMac)
    .option('--vlan <id>', 'assign this network (VLAN id 1-4094) to the next switch device (0, then 1, …): it switches only within it; repeat for more devices', collectVlan)
    .option('--vif <spec>', 'add a network device (vif 0, then 1, …) as libxl does, e.g. mac=00:16:3e:00:00:11[,script=…]; repeat for more', collectVif)
    .action(async (name: string, opts: { mac?: string[]; vlan?: number[]; vif?: VifSpec[] }) => {
      out(`${await toolstack.create(dir, name, { macs: opts.mac, vlans: opts.vlan, vifs: opts.vif })}\n`);
    });

  program
    .command('network-detach')
    .description('remove a vif as `xl network-detach` does: online=0, state 5, wait for the back end\'s 6, remove its keys')
    .argument('<name>', 'domain name')
    .argument('<devid>', 'the vif\'s device id (0, 1, …)')
    .action(async (name: string, devid: string) => {
      if (!/^[0-9]{1,9}$/.test(devid)) throw new Error(`expected a vif device id like 0, not ${JSON.stringify(devid)}`);
      if (!(await toolstack.networkDetach(dir, name, Number(devid)))) {
        process.stderr.write(`xsw-sim: the back end did not close vif ${devid} of ${name} within 10 s; its keys were removed anyway\n`);
        code = 1;
      }
    });

  program
    .command('list')
    .description('list the domains')
    .action(async () => {
      const rows = await toolstack.list(dir);
      out(`${'Name'.padEnd(32)} ${'ID'.padStart(5)}\n`);
      for (const d of rows) out(`${d.name.padEnd(32)} ${String(d.domid).padStart(5)}\n`);
    });

  program
    .command('exec')
    .description('run a command as a domain (XENSTORED_PATH, XSW_SIM_DOMID set); exits with its exit code')
    .argument('<name>', 'domain name')
    .argument('<cmd...>', 'the command and its arguments (after --)')
    .action(async (name: string, cmd: string[]) => {
      code = await toolstack.exec(dir, name, cmd[0], cmd.slice(1));
    });

  program
    .command('destroy')
    .description('destroy a domain: kill its processes, tear down its grants, remove its nodes, release it')
    .argument('<name>', 'domain name')
    .action(async (name: string) => {
      await toolstack.destroy(dir, name);
    });

  await program.parseAsync(argv);
  return code;
}

main(process.argv).then(
  (code) => process.exit(code),
  (err: Error & { code?: string; exitCode?: number }) => {
    if (err.code?.startsWith('commander.')) {
      // commander already printed its message (or help/version).
      process.exit(err.exitCode ?? 1);
    }
    process.stderr.write(`xsw-sim: ${err.message}\n`);
    process.exit(1);
  },
);
