// -p vhost-net:NAME: the option, and what the back end says on a host without
// /dev/vhost-net (one sentence naming the device and the fix, exit 1, no TAP
// left behind). The ring logic is tested against a fake kernel in
// native/test/vhostnet_port_test.cc; the real kernel in test:xen's dom0
// (docs/xen.md). Needs root (the rig's network namespace).
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import test from 'ava';
import { OptionError, parseOptions } from '../backend/options';
import { NicPortProbe } from '../native/switch';
import { Rig } from './fixtures/backend-rig';

const HAS_VHOST_NET = fs.existsSync('/dev/vhost-net');

test('-p takes vhost-net:NAME like tap:NAME, and refuses a bad name in one sentence', (t) => {
  t.is(parseOptions(['-p', 'vhost-net:xsw0']).port, 'vhost-net:xsw0');
  for (const bad of ['vhost-net:', 'vhost-net:bad/name', 'vhost-net:a23456789012345x']) {
    const e = t.throws(() => parseOptions(['-p', bad]), { instanceOf: OptionError });
    t.is(e?.message, `-p/--port takes an interface name (up to 15 letters, digits, '.', '-', '_'), tap:NAME or vhost-net:NAME, not "${bad}".`);
  }
});

const missing = (name: string): string =>
  `-p vhost-net:${name} needs /dev/vhost-net, which this host lacks: load the vhost_net module (modprobe vhost_net) or use -p tap:${name}`;

test.serial(`the port on this host (${HAS_VHOST_NET ? 'with' : 'without'} /dev/vhost-net)`, async (t) => {
  if (HAS_VHOST_NET) {
    // Opens for real: the TAP exists while the probe holds it.
    const probe = new NicPortProbe('vhost-net:xswvnprobe0', 1500);
    try {
      t.regex(execFileSync('ip', ['link', 'show', 'xswvnprobe0']).toString(), /xswvnprobe0/);
    } finally {
      probe.close();
    }
    return;
  }
  const e = t.throws(() => new NicPortProbe('vhost-net:xswvnprobe0', 1500));
  t.true(e?.message.startsWith(missing('xswvnprobe0')));
  t.throws(() => execFileSync('ip', ['link', 'show', 'xswvnprobe0'], { stdio: 'ignore' }), undefined, 'no TAP was created');
});

test.serial('xsw-backend -p vhost-net:NAME without /dev/vhost-net exits 1 with one sentence', async (t) => {
  const rig = await Rig.start();
  try {
    const be = rig.backend(['-p', 'vhost-net:xswvn0'], { nic: false });
    if (HAS_VHOST_NET) {
      await be.waitLine('err', /NIC port vhost-net:xswvn0/);
      be.kill('SIGTERM');
      t.is((await be.exited).code, 0);
      return;
    }
    t.is((await be.exited).code, 1);
    t.deepEqual(be.err.slice(-1), [`xsw-backend: Cannot open the port vhost-net:xswvn0: ${missing('xswvn0')}.`]);
  } finally {
    await rig.close();
  }
});
