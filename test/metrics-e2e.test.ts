// `xsw-backend --metrics`: a plain HTTP GET of /metrics while guests switch,
// parsed with a Prometheus text-format parser (parse-prometheus-text-format);
// its counters must be those `--stats --json` and `xsw-ctl stats --json`
// print. Real processes on the simulated platform (root: netns, veth).
import fs from 'node:fs';
import test from 'ava';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { Child, run } from '../harness/child';
import { CLI } from '../harness/cli-paths';
import { Rig, statsUntil } from './fixtures/backend-rig';

const G1 = '00:00:00:00:00:11';
const G2 = '00:00:00:00:00:22';
const G3 = '00:00:00:00:00:33';
const GEN = '00:00:00:00:00:01';
const FRONT = ['--nb-mbuf', '512', '--log-level', 'warn'];
const PORT = 9469;

interface JsonStats {
  devices: { domid: number; dev: number; mac: string; tx_total: number; tx_dropped: number; rx_total: number; rx_dropped: number; drops: Record<string, number> }[];
  nic: { rx: number; tx: number; dropped: number };
}

/** GET http://127.0.0.1:PORT/PATH inside the rig's namespace: [status, body]. */
async function get(rig: Rig, urlPath: string): Promise<[number, string]> {
  const script = `require('http').get('http://127.0.0.1:${PORT}${urlPath}', (r) => { let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => process.stdout.write(JSON.stringify([r.statusCode, b]))); })`;
  const [cmd, argv] = rig.ns.wrap(process.execPath, ['-e', script]);
  const r = await run(cmd, argv, { timeoutMs: 10000 });
  if (r.code !== 0) throw new Error(`GET ${urlPath} failed: ${r.err}`);
  return JSON.parse(r.out) as [number, string];
}

test.serial('a scrape parses as Prometheus text and its counters match --stats --json and xsw-ctl stats --json', async (t) => {
  const rig = await Rig.start();
  try {
    await run('ip', ['-n', rig.ns.name, 'link', 'set', 'lo', 'up']);
    await rig.createDomain(1);
    await rig.createDomain(2);
    const be = rig.backend(['--vm2vm', '--stats', '1', '--json', '--metrics', String(PORT)]);
    await be.waitLine('err', /Prometheus metrics on http:\/\/127\.0\.0\.1:9469\/metrics/);
    rig.guest(1, ['--mac', G1, '--fwd', 'mac', '--eth-peer', G2, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG 1000 registered/);
    rig.guest(2, ['--mac', G2, '--fwd', 'mac', '--eth-peer', G3, ...FRONT]);
    await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:22 and VLAN_TAG 1001 registered/);
    const N = 100;
    await rig.wire(['--dst', G1, '--src', GEN, '--vlan', '1000', '--count', String(N), '--size', '200', '--gap-ms', '0.5']);
    // Frames for an unknown MAC: a NIC drop reason with a count.
    await rig.wire(['--dst', '00:00:00:00:00:99', '--src', GEN, '--vlan', '1000', '--count', '7', '--size', '100', '--gap-ms', '0.5', '--wait-ms', '200']);
    const s = await statsUntil<JsonStats>(be, (x) => x.devices.find((d) => d.domid === 2)?.tx_total === N && x.nic.rx === N + 7);

    const [status, text] = await get(rig, '/metrics');
    t.is(status, 200);
    const families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
    const value = (name: string, labels: Record<string, string> = {}): number => {
      const f = families.get(name);
      if (!f) throw new Error(`no metric ${name}`);
      const m = f.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
      if (!m) throw new Error(`no sample of ${name} with ${JSON.stringify(labels)}`);
      return Number(m.value);
    };
    const ctl = await run(process.execPath, [CLI.ctl, 'stats', '--json'], { env: rig.env(0) });
    const viaCtl = JSON.parse(ctl.out) as JsonStats;
    for (const source of [s, viaCtl]) {
      for (const d of source.devices) {
        const l = { kind: 'pmd', domid: String(d.domid), device: String(d.dev), mac: d.mac };
        t.is(value('xsw_device_tx_frames_total', l), d.tx_total);
        t.is(value('xsw_device_tx_dropped_total', l), d.tx_dropped);
        t.is(value('xsw_device_rx_frames_total', l), d.rx_total);
        t.is(value('xsw_device_rx_dropped_total', l), d.rx_dropped);
        t.is(value('xsw_device_state', { ...l, state: 'active' }), 1);
      }
      t.is(value('xsw_nic_rx_frames_total'), source.nic.rx);
      t.is(value('xsw_nic_tx_frames_total'), source.nic.tx);
      t.is(value('xsw_nic_dropped_total'), source.nic.dropped);
    }
    t.is(value('xsw_device_tx_frames_total', { domid: '1' }), N);
    t.is(value('xsw_nic_drops_total', { reason: 'unknown_dst' }), 7);
    t.is(families.get('xsw_device_tx_frames_total')!.type, 'COUNTER');
    t.is(families.get('xsw_device_tx_frames_total')!.metrics.length, 2);
    t.is(value('xsw_device_attaches_total'), 2);
    t.is(value('xsw_device_quarantines_total'), 0);
    t.is(value('xsw_nic_present'), 1);
    t.true(value('xsw_switch_loops_total') > 0);
    t.true(value('xsw_switch_cycles_total', { kind: 'processing' }) > 0, 'the frames were switched in loops that found work');
    t.true(value('xsw_switch_cycles_total', { kind: 'idle' }) > value('xsw_switch_cycles_total', { kind: 'processing' }), 'a back end that switched a few frames idled most of the time');
    t.true(value('xsw_backend_process_cpu_user_seconds_total') > 0, "prom-client's default process metrics");
    t.true(families.has('xsw_backend_nodejs_heap_size_used_bytes'));
    const [missing] = await get(rig, '/other');
    t.is(missing, 404);
  } finally {
    await rig.close();
  }
});

test.serial('--metrics on a port already taken: one sentence, exit 1, nothing left behind', async (t) => {
  const rig = await Rig.start();
  try {
    await run('ip', ['-n', rig.ns.name, 'link', 'set', 'lo', 'up']);
    const [cmd, argv] = rig.ns.wrap(process.execPath, ['-e', `require('net').createServer().listen(${PORT}, '127.0.0.1', () => console.log('up'))`]);
    const squatter = new Child(cmd, argv, { name: 'squatter' });
    rig.procs.push(squatter);
    await squatter.waitLine('out', /^up$/);
    const be = rig.backend(['--metrics', String(PORT)], { nic: false });
    t.is((await be.exited).code, 1);
    t.is(be.err.at(-1), 'xsw-backend: Cannot serve metrics on 127.0.0.1:9469: listen EADDRINUSE: address already in use 127.0.0.1:9469; give another --metrics address or port.');
    t.false(fs.existsSync(`${rig.dir}/backend.sock`), 'the control socket is removed');
  } finally {
    await rig.close();
  }
});
