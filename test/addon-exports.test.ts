// The product addon, build/Release/xsw.node, exports the data planes' N-API
// surface grouped by concern (native/addon.ts) and nothing else: in
// particular no traffic generator or bench harness, which live in the bench's
// own addon (bench/native/, build/Release/xsw_bench.node).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { addon, addonPath } from '../native/binding';

// The groups and members native/addon.ts declares; a new export needs both.
const EXPORTS: Record<string, string[]> = {
  abi: ['layout', 'vringLayout'],
  front: ['FrontDevice', 'FrontPool'],
  lock: ['lockFileExclusive'],
  netif: ['NativeEventChannels', 'NativeVif'],
  grant: ['NativeGrants', 'defaultSimDir', 'detectPlatform', 'open', 'simDestroyDomain', 'simInit', 'xenUapi'],
  shm: ['VringDevice', 'VringDriver', 'decodeGrefList', 'encodeGrefList', 'grefListPages', 'mempoolLayout', 'regionTranslate', 'violationNames'],
  switch: ['NativeSwitch', 'NicPortProbe', 'dropNames'],
  testing: ['allocPages', 'bufferAddress', 'mapSharedFile', 'unmapPages'],
  vhost: ['VhostUserPort'],
};

const BENCH = /bench|blaster|switchloop|crossing|memcpy/i;

test('the addon exports exactly the declared groups and members', (t) => {
  const a = addon() as unknown as Record<string, Record<string, unknown>>;
  t.deepEqual(Object.keys(a).sort(), Object.keys(EXPORTS).sort());
  for (const [group, members] of Object.entries(EXPORTS)) t.deepEqual(Object.keys(a[group]).sort(), members, group);
  for (const [group, members] of Object.entries(a)) for (const m of Object.keys(members)) t.notRegex(`${group}.${m}`, BENCH);
});

// The whole symbol table, not only the dynamic one: the addon is built with hidden
// visibility, so its own functions are local symbols (nm's `t`).
test('no bench or traffic-generator code among the addon’s symbols', (t) => {
  const nm = spawnSync('nm', ['--defined-only', '-C', addonPath()], { encoding: 'utf8' });
  t.is(nm.status, 0, nm.stderr);
  const symbols = nm.stdout.split('\n');
  // The listing is real: the switch and the PMD are there.
  t.true(symbols.some((s) => s.includes('xsw::Switch::PollOnce')));
  t.true(symbols.some((s) => s.includes('xsw::FrontPort::TxBurst')));
  t.deepEqual(symbols.filter((s) => /xsw::bench|Blaster|SwitchLoop|MeasureCrossing|MeasureMemcpy/.test(s)), []);
});
