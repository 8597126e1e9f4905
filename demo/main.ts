#!/usr/bin/env node
// `npm start`: xsw on the simulated platform, with guests and traffic.
// Brings up a private sim (xsw-sim up), the back end (--vm2vm --stats 5), the
// guide's two guests (xsw-front in mac forwarding mode) and traffic: as root a
// veth wire in a network namespace with a VLAN-1000 generator (the loopback
// and inter-VM scenarios), otherwise a third guest in txonly mode. Shows the
// back end's stats table live, ends by itself after --duration seconds,
// tears everything down and exits non-zero if a scenario failed. With
// dpdk-testpmd installed, a container's DPDK app on a vhost-user port
// exchanges frames with a fourth guest (demo/container.ts). A stock Xen
// guest (Linux's netfront on a vif, played in-process) exchanges frames with
// a sixth through the back end's netif (demo/netif.ts).
// See docs/demo.md.
import { sleep } from '../harness/child';
import { addon } from '../native/binding';
import { DemoOptionError, DemoOptions, parseDemoOptions } from './options';
import { ExpectedTotals, guestsOnly, interVm, loopback, MAC, switchCounters, TXONLY_RATE, Verdict } from './scenarios';
import { DemoWorld, Guest, NIC } from './world';
import { CONTAINER_MAC, containerScenario, containerSocket, hasTestpmd } from './container';
import { netifScenario } from './netif';

const STATS_SECONDS = 5;
/** The scenarios must be over by then (setup included), whatever happens. */
const SCENARIO_BUDGET_MS = 70000;
const ROOT_WOULD_ADD =
  'run as root to add the NIC path: a veth wire in a network namespace with a VLAN-1000 generator ' +
  "(the guide's loopback and inter-VM scenarios)";

const say = (line: string): void => {
  process.stdout.write(`[demo] ${line}\n`);
};

/** The front end's arguments for a guest in the guide's mac forwarding mode, plus the stats the demo reads. */
function macForwarding(peer: string): string[] {
  return ['--fwd', 'mac', '--eth-peer', peer, '--stats', '1', '--json'];
}

async function startGuest(p: DemoWorld, name: string, mac: string, args: string[], signal: AbortSignal): Promise<Guest> {
  say(`starting ${name}: xsw-sim create ${name} && xsw-sim exec ${name} -- xsw-front --mac ${mac} ${args.join(' ')}`);
  const g = await p.startGuest(name, mac, args, signal);
  say(`${name} attached (domain ${g.domid}, pid ${g.proc.pid}): MAC_ADDRESS ${g.mac} and VLAN_TAG ${g.vlan} registered`);
  return g;
}

interface Run {
  verdicts: Verdict[];
  scenariosDone: boolean;
}

async function scenarios(p: DemoWorld, o: DemoOptions, run: Run, signal: AbortSignal): Promise<void> {
  const n = o.frames;
  say(`private simulated platform in ${p.dir}`);
  say('starting xenstored and the grant table (xsw-sim up)…');
  const xsPid = await p.up();
  say(`xenstored up (pid ${xsPid ?? '?'})`);

  let wire = false;
  const root = process.getuid?.() === 0;
  if (!root) {
    say(`not root: ${ROOT_WOULD_ADD}`);
  } else if (!o.wire) {
    say(`--no-wire: the guests-only path (without it, root gets the NIC path: a veth wire with a VLAN-1000 generator)`);
  } else {
    say('building the wire: a network namespace with a veth pair…');
    const why = await p.buildWire();
    if (why === undefined) {
      wire = true;
      say(`wire ready: ${NIC} (the back end's NIC) <-> gen0 (the generator) in network namespace ${p.netns?.name}`);
    } else {
      say(`cannot build the wire (${why}): running the guests-only path instead`);
    }
  }

  // dpdk-testpmd needs root for its runtime directory and memory (a user's demo skips it, saying so).
  const container = hasTestpmd() && root;
  const backendArgs = [
    '--vm2vm', '--stats', String(STATS_SECONDS), '--platform', 'sim', ...(wire ? ['-p', NIC] : []),
    ...(container ? ['--vhost-user', `${containerSocket(p)},mac=${CONTAINER_MAC}`] : []),
  ];
  say(`starting the back end: ${wire ? `ip netns exec ${p.netns?.name} ` : ''}xsw-backend ${backendArgs.join(' ')}`);
  const onTable = (line: string): void => {
    if (!o.quiet) process.stdout.write(`    ${line}\n`);
  };
  const backend = await p.startBackend(backendArgs, onTable, signal);
  say(`backend up (pid ${backend.pid}): vm2vm on, ${wire ? `NIC ${NIC}` : 'no NIC'}, stats table every ${STATS_SECONDS} s`);

  const vm1 = await startGuest(p, 'vm1', MAC.vm1, macForwarding(MAC.vm2), signal);
  let expected: ExpectedTotals;
  if (wire) {
    say(`loopback: gen0 sends ${n} frames to ${MAC.vm1} on VLAN ${vm1.vlan}; vm1 forwards them to ${MAC.vm2}, which is not running, so they must leave through the NIC…`);
    run.verdicts.push(await loopback(p, n, vm1, signal));
    say(run.verdicts[run.verdicts.length - 1].line);
    const vm2 = await startGuest(p, 'vm2', MAC.vm2, macForwarding(MAC.vm3), signal);
    say(`inter-VM: gen0 sends ${n} frames to ${MAC.vm1} on VLAN ${vm1.vlan}; they must cross vm1 and vm2 and leave through the NIC for ${MAC.vm3} on VLAN ${vm2.vlan}…`);
    run.verdicts.push(await interVm(p, n, vm1, vm2, signal));
    say(run.verdicts[run.verdicts.length - 1].line);
    expected = {
      devices: [{ name: 'vm1', mac: MAC.vm1, tx: 2 * n, rx: 2 * n }, { name: 'vm2', mac: MAC.vm2, tx: n, rx: n }],
      nic: { rx: 2 * n, tx: 2 * n },
    };
  } else {
    const vm2 = await startGuest(p, 'vm2', MAC.vm2, macForwarding(MAC.vm3), signal);
    const txonly = ['--fwd', 'txonly', '--eth-peer', MAC.vm1, '--count', String(n), '--rate', String(TXONLY_RATE), '--verify', '--stats', '1', '--json'];
    say(`inter-VM without a NIC: vm3 sends ${n} test frames to vm1 (${TXONLY_RATE} per second); vm1 forwards them to vm2, vm2 back to vm3, which verifies each…`);
    const vm3 = await startGuest(p, 'vm3', MAC.vm3, txonly, signal);
    run.verdicts.push(await guestsOnly(p, n, vm1, vm2, vm3, signal));
    say(run.verdicts[run.verdicts.length - 1].line);
    expected = {
      devices: [
        { name: 'vm1', mac: MAC.vm1, tx: n, rx: n },
        { name: 'vm2', mac: MAC.vm2, tx: n, rx: n },
        { name: 'vm3', mac: MAC.vm3, tx: n, rx: n },
      ],
      nic: { rx: 0, tx: 0 },
    };
  }
  say(`checking the back end's own counters in its next stats table…`);
  run.verdicts.push(await switchCounters(p, expected, backend.out.length, STATS_SECONDS, signal));
  say(run.verdicts[run.verdicts.length - 1].line);
  if (container) {
    run.verdicts.push(await containerScenario(p, n, say, (name, mac, args) => startGuest(p, name, mac, args, signal), signal));
    say(run.verdicts[run.verdicts.length - 1].line);
  } else {
    say(hasTestpmd()
      ? 'not root: skipping the container part (dpdk-testpmd on a vhost-user port needs root)'
      : "dpdk-testpmd is not installed: skipping the container part (install Debian's dpdk-dev to add a testpmd container on a vhost-user port)");
  }
  run.verdicts.push(await netifScenario(p, n, say, (name, mac, args) => startGuest(p, name, mac, args, signal), signal));
  say(run.verdicts[run.verdicts.length - 1].line);
  say('what an operator sees of the running back end: xsw-ctl devices (more in docs/operations.md)');
  for (const line of (await p.ctl(['devices'])).trimEnd().split('\n')) process.stdout.write(`    ${line}\n`);
  run.scenariosDone = true;
}

async function main(): Promise<number> {
  let o: DemoOptions;
  try {
    o = parseDemoOptions(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof DemoOptionError)) throw err;
    (err.exitCode === 0 ? process.stdout : process.stderr).write(err.exitCode === 0 ? err.message : `npm start: ${err.message}\n`);
    return err.exitCode;
  }
  try {
    addon();
  } catch (err) {
    process.stderr.write(`[demo] ${(err as Error).message}\n`);
    return 1;
  }

  const startedAt = Date.now();
  const abort = new AbortController();
  let interrupted: NodeJS.Signals | undefined;
  let failure: string | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) {
      say(`${sig} again: still tearing down (every step has a time limit)…`);
      return;
    }
    interrupted = sig;
    say(`${sig}: stopping early…`);
    abort.abort();
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  process.on('uncaughtException', (err) => {
    failure ??= `unexpected error: ${err.stack ?? err.message}`;
    abort.abort();
  });

  const run: Run = { verdicts: [], scenariosDone: false };
  const p = DemoWorld.create(say);
  const watchdog = setTimeout(() => {
    failure ??= `the scenarios did not finish within ${SCENARIO_BUDGET_MS / 1000} s: the machine may be overloaded; try again, or --frames 200`;
    abort.abort();
  }, SCENARIO_BUDGET_MS);
  try {
    await scenarios(p, o, run, abort.signal);
    clearTimeout(watchdog);
    const failed = run.verdicts.filter((v) => !v.passed);
    say(failed.length === 0
      ? `all ${run.verdicts.length} checks passed`
      : `${failed.length} of ${run.verdicts.length} checks FAILED: ${failed.map((v) => v.name).join(', ')}`);
    const left = startedAt + o.duration * 1000 - Date.now();
    if (left > 0 && !abort.signal.aborted) {
      say(`the switch keeps running, table every ${STATS_SECONDS} s, until ${o.duration} s have passed (Ctrl-C ends it now)`);
      await sleep(left, abort.signal);
    }
  } catch (err) {
    if (!interrupted) failure ??= (err as Error).message;
  } finally {
    clearTimeout(watchdog);
    say('tearing down…');
    const done = await p.teardown();
    say(`teardown done: ${done.join(', ')}`);
  }
  if (failure) {
    process.stderr.write(`[demo] failed: ${failure}\n`);
    return 1;
  }
  if (interrupted && !run.scenariosDone) return 130;
  return run.verdicts.length > 0 && run.verdicts.every((v) => v.passed) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`[demo] unexpected failure: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(70);
  },
);
