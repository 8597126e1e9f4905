import test from 'ava';
import { DEFAULTS, helpText, OptionError, parseOptions } from '../backend/options';

test('no arguments gives the defaults: vm2vm on, stats off, no NIC', (t) => {
  t.deepEqual(parseOptions([]), { ...DEFAULTS, port: undefined, controlSocket: undefined, metrics: undefined });
});

test('the switch-wide caps leave room for other guests: 8 devices per guest of 64 slots, 8 full guests of pages', (t) => {
  const o = parseOptions([]);
  t.is(o.maxDevicesPerGuest, 8);
  t.is(o.maxDevices / o.maxDevicesPerGuest, 8);
  t.is(o.maxPages, 8 * o.maxPagesPerGuest);
  t.is(o.macPolicy, 'guest');
});

test('the guide command line parses', (t) => {
  const o = parseOptions(['--vm2vm', '--stats', '5']);
  t.true(o.vm2vm);
  t.is(o.stats, 5);
});

test('--vm2vm takes 0|1 as DPDK did, and --no-vm2vm turns it off', (t) => {
  t.false(parseOptions(['--vm2vm', '0']).vm2vm);
  t.true(parseOptions(['--vm2vm', '1']).vm2vm);
  t.false(parseOptions(['--no-vm2vm']).vm2vm);
  t.true(parseOptions(['--vm2vm']).vm2vm);
});

test('all options parse into their fields', (t) => {
  const o = parseOptions([
    '-p', 'tap:xsw0', '--platform', 'sim', '--poll', 'busy', '--mtu', '9000', '--log-level', 'debug', '--json',
    '--max-devices-per-guest', '4', '--max-pages-per-guest', '1000', '--max-devices', '8', '--max-pages', '5000',
    '--mac-policy', 'dom0', '--xenstore-retry', '5', '--no-netif',
  ]);
  t.deepEqual(o, {
    vm2vm: true, stats: 0, json: true, port: 'tap:xsw0', platform: 'sim', poll: 'busy', mtu: 9000,
    logLevel: 'debug', maxDevicesPerGuest: 4, maxPagesPerGuest: 1000, maxDevices: 8, maxPages: 5000, macPolicy: 'dom0', xenstoreRetry: 5,
    controlSocket: undefined, controlMode: 0o600, metrics: undefined, netif: false, vhostUser: [],
  });
  t.is(parseOptions(['--port', 'veth-a.1']).port, 'veth-a.1');
});

test('--vhost-user is repeatable: PATH (xsw listens), PATH,client (xsw connects), mac=', (t) => {
  const o = parseOptions(['--vhost-user', '/run/a.sock', '--vhost-user', '/run/b.sock,client,mac=02:00:00:00:01:0B']);
  t.deepEqual(o.vhostUser, [
    { path: '/run/a.sock', client: false },
    { path: '/run/b.sock', client: true, mac: '02:00:00:00:01:0b' },
  ]);
});

const bad: [string[], RegExp][] = [
  [['--stats', 'x'], /--stats takes a whole number from 0 to 86400, not "x"/],
  [['--stats', '-1'], /--stats/],
  [['--vm2vm', '2'], /--vm2vm takes 0 or 1/],
  [['--mtu', '10000'], /--mtu takes a whole number from 68 to 9000/],
  [['--xenstore-retry', 'soon'], /--xenstore-retry takes a whole number from 0 to 86400/],
  [['--platform', 'kvm'], /platform.*kvm/i],
  [['--poll', 'lazy'], /poll/],
  [['-p', 'eth0/x'], /-p\/--port takes an interface name/],
  [['-p', 'averyveryverylongname'], /-p\/--port/],
  [['--frobnicate'], /Unknown option '--frobnicate'; see xsw-backend --help\./],
  [['extra'], /too many arguments|excess/i],
  [['--max-devices-per-guest', '33'], /from 1 to 32/],
  [['--max-devices', '65'], /from 1 to 64/],
  [['--max-pages', '0'], /--max-pages takes a whole number from 1 to 67108864/],
  [['--mac-policy', 'anyone'], /mac-policy.*anyone/i],
  [['--vhost-user', 'a.sock'], /--vhost-user takes an absolute socket path/],
  [['--vhost-user', '/a.sock,server'], /unknown option "server"; give ,client and\/or ,mac=/],
  [['--vhost-user', '/a.sock,mac=01:00:00:00:00:01'], /mac= must be a unicast, non-zero address/],
  [['--vhost-user', '/a.sock', '--vhost-user', '/a.sock,client'], /--vhost-user \/a\.sock is given twice/],
];
for (const [args, why] of bad) {
  test(`refuses ${args.join(' ')} with one sentence`, (t) => {
    const err = t.throws(() => parseOptions(args), { instanceOf: OptionError });
    t.regex(err!.message, why);
    t.is(err!.exitCode, 2);
    t.false(err!.message.includes('\n'));
  });
}

test('--help is an OptionError with exit code 0 and the usage text', (t) => {
  const err = t.throws(() => parseOptions(['--help']), { instanceOf: OptionError });
  t.is(err!.exitCode, 0);
  t.regex(err!.output, /--max-pages-per-guest/);
  t.regex(helpText(), /--vm2vm/);
});

test('--control-socket, --control-mode and --metrics parse; bad values get one sentence', (t) => {
  const o = parseOptions(['--control-socket', '/tmp/x.sock', '--control-mode', '0660', '--metrics', '9469']);
  t.is(o.controlSocket, '/tmp/x.sock');
  t.is(o.controlMode, 0o660);
  t.deepEqual(o.metrics, { host: '127.0.0.1', port: 9469 });
  t.deepEqual(parseOptions(['--metrics', '0.0.0.0:9100']).metrics, { host: '0.0.0.0', port: 9100 });
  t.deepEqual(parseOptions(['--metrics', '[::1]:9100']).metrics, { host: '::1', port: 9100 });
  t.throws(() => parseOptions(['--metrics', 'host:99999']), { message: '--metrics takes [ADDR:]PORT (such as 9469 or 0.0.0.0:9469), not "host:99999".' });
  t.throws(() => parseOptions(['--control-mode', '0666']), { message: /^--control-mode takes an octal file mode/ });
  t.throws(() => parseOptions(['--control-mode', '0400']), { message: /^--control-mode takes an octal file mode/ });
});

test('--cores takes CPU ids and ranges; a bad list gets one sentence; absent means one thread', (t) => {
  t.is(parseOptions([]).cores, undefined);
  t.deepEqual(parseOptions(['--cores', '0,1']).cores, [0, 1]);
  t.deepEqual(parseOptions(['--cores', '1-3']).cores, [1, 2, 3]);
  t.deepEqual(parseOptions(['--cores', '0,2-3']).cores, [0, 2, 3]);
  for (const bad of ['', 'a', '1,', '3-1', '-1', '1--2', '0, 1']) {
    const err = t.throws(() => parseOptions(['--cores', bad]), { instanceOf: OptionError });
    t.is(err?.message, `--cores takes CPU ids and ranges like 0,1 or 1-3, not "${bad}".`);
    t.is(err?.exitCode, 2);
  }
  t.throws(() => parseOptions(['--cores', '0,1,0']), { message: '--cores lists CPU 0 twice; give each CPU once.' });
  t.throws(() => parseOptions(['--cores', '0-16']), { message: '--cores "0-16" lists more than 16 CPUs; give at most 16.' });
});
