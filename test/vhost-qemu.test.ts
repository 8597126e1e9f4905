// The Linux kernel as a second, independent vhost-user client: a small VM
// under QEMU (TCG: no KVM needed) whose virtio-net-pci device is backed by
// `-netdev vhost-user` on xsw-backend's socket, and whose Linux virtio_net
// driver pings a Xen guest (simulated platform) running `xsw-front --fwd tap`
// in a network namespace, and is pinged back. The VM is Debian's 6.1 kernel
// with a busybox initramfs (test/vm/build-image.sh, cached in
// /var/tmp/xsw-vm); its init (test/vm/init) prints on the serial console.
// QEMU or the Debian archive missing is a failure with one sentence, never a skip.
import test, { ExecutionContext } from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Child, mustRun, run } from '../harness/child';
import { CLI } from '../harness/cli-paths';
import { Netns } from '../harness/netns';
import { Rig, statsUntil } from './fixtures/backend-rig';

const BUILD = path.join(__dirname, '..', '..', 'test', 'vm', 'build-image.sh');
const QEMU = '/usr/bin/qemu-system-x86_64';
const X = '02:00:00:00:00:11'; // the Xen guest's TAP
const VM = '52:54:00:00:77:02';
const GUEST_IP = '10.77.0.1';
const VM_IP = '10.77.0.2';

interface Dev { mac: string; kind?: string; path?: string; state: string; tx_total: number; rx_total: number; rx_dropped: number; drops: Record<string, number> }

/** The VM's kernel and initramfs directory, built on first use (a download from Debian's archive). */
async function vmImage(): Promise<string> {
  if (!fs.existsSync(QEMU)) throw new Error(`${QEMU} is missing: install Debian's qemu-system-x86 (.ci/run does) to run the QEMU vhost-user test`);
  const r = await run('bash', [BUILD], { timeoutMs: 300000 });
  if (r.code !== 0) throw new Error(`the VM image could not be built (test/vm/build-image.sh, status ${r.code}): ${r.err.trim().split('\n').pop() ?? ''}`);
  const dir = r.out.trim().split('\n').pop() ?? '';
  if (!fs.existsSync(path.join(dir, 'vmlinuz'))) throw new Error(`test/vm/build-image.sh printed no image directory: ${r.out}`);
  return dir;
}

/**
 * The QEMU command line docs/vhost-user.md shows: 256 MiB of shared memfd memory, one
 * virtio-net-pci on vhost-user. vectors=0 (legacy INTx interrupts, no MSI-X): Debian 12's QEMU
 * 7.2 under TCG segfaults in vhost_net_start (msix_set_vector_notifiers) when a Linux guest
 * enables MSI-X on a vhost-user device. romfile= skips the iPXE boot ROM (the kernel is given).
 */
function qemuArgs(img: string, sock: string, server: boolean): string[] {
  return [
    '-accel', 'tcg', '-m', '256', '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none', '-monitor', 'none',
    '-serial', 'stdio', '-no-reboot',
    '-kernel', path.join(img, 'vmlinuz'), '-initrd', path.join(img, 'initrd.gz'),
    '-append', `console=ttyS0 quiet panic=-1 xsw_ip=${VM_IP}/24 xsw_peer=${GUEST_IP}`,
    '-object', 'memory-backend-memfd,id=mem,size=256M,share=on', '-numa', 'node,memdev=mem',
    '-chardev', `socket,id=c0,path=${sock}${server ? ',server=on,wait=off' : ''}`,
    '-netdev', 'vhost-user,id=n0,chardev=c0',
    '-device', `virtio-net-pci,netdev=n0,mac=${VM},vectors=0,romfile=`,
  ];
}

/** Boots the VM on xsw's vhost-user port (xsw listens; with `qemuListens`, QEMU listens and xsw connects) and pings both ways. */
async function pingThroughXsw(t: ExecutionContext, qemuListens: boolean): Promise<void> {
  t.timeout(360000);  // room for the first run's download and build of the image (once per machine)
  const img = await vmImage();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xsw-vhost-qemu-'));
  const sock = path.join(dir, 'vm.sock');
  const rig = await Rig.start();
  const ns = await Netns.add(`xswvm${process.pid % 10000}`, { replace: true });
  let front: Child | undefined;
  let qemu: Child | undefined;
  try {
    await rig.createDomain(1);
    const be = rig.backend(['--vhost-user', qemuListens ? `${sock},client` : sock, '--stats', '1', '--json'], { nic: false });
    await be.waitLine('err', qemuListens ? /vm\.sock: waiting for the peer's socket/ : /vm\.sock: listening/);
    // The Xen guest: xsw-front bridging its device to a TAP in its own namespace, with an address.
    const [cmd, argv] = ns.wrap(process.execPath, [CLI.front, '--fwd', 'tap', '--tap', 'xswtap0', '--mac', X, '--nb-mbuf', '1024', '--log-level', 'warn']);
    front = new Child(cmd, argv, { name: 'xsw-front', env: rig.env(1) });
    await be.waitLine('err', /MAC_ADDRESS 02:00:00:00:00:11 and VLAN_TAG \d+ registered/, { timeoutMs: 20000 });
    // xsw-front opens its TAP before it publishes the device: it is there once the device is registered.
    await mustRun(...ns.wrap('ip', ['link', 'set', 'xswtap0', 'up']));
    await mustRun(...ns.wrap('ip', ['addr', 'add', `${GUEST_IP}/24`, 'dev', 'xswtap0']));

    qemu = new Child(QEMU, qemuArgs(img, sock, qemuListens), { name: 'qemu' });
    // The VM's driver sets the device up: one more device in the switch, sealed memfd memory.
    const reg = await be.waitLine('err', /MAC_ADDRESS 52:54:00:00:77:02 and VLAN_TAG \d+ registered \(vhost-user .*vm\.sock/, { timeoutMs: 90000 });
    t.regex(be.err[reg], /12-byte header, memory sealed\)/, 'QEMU\'s memory-backend-memfd is sealed against shrinking');
    // The VM pings the guest (retrying until the path is up), then three pings it reports.
    await qemu.waitLine('out', /xsw-vm: pinged/, { timeoutMs: 90000 });
    const serial = qemu.out.filter((l) => l.startsWith('xsw-vm: ')).join('\n');
    t.regex(serial, /xsw-vm: eth0 52:54:00:00:77:02 up with 10\.77\.0\.2\/24/);
    t.regex(serial, /3 packets transmitted, 3 packets received, 0% packet loss/, serial);
    // The guest's kernel pings the VM through the TAP, the Xen rings, the switch and the vhost-user rings.
    const ping = await run(...ns.wrap('ping', ['-c', '3', '-W', '2', VM_IP]), { timeoutMs: 30000 });
    t.is(ping.code, 0, ping.out + ping.err);
    t.regex(ping.out, /3 packets transmitted, 3 received/);
    // The back end's stats show the VM as a vhost-user device that sent and received.
    const s = await statsUntil<{ devices: Dev[] }>(be, (x) => (x.devices.find((d) => d.mac === VM)?.rx_total ?? 0) >= 6, 10000);
    const vm = s.devices.find((d) => d.mac === VM)!;
    t.is(vm.kind, 'vhost-user');
    t.is(vm.path, sock);
    t.is(vm.state, 'active');
    t.true(vm.tx_total >= 6, JSON.stringify(vm));
    t.deepEqual(Object.keys(vm.drops).filter((k) => k !== 'no_nic'), [], JSON.stringify(vm.drops));
    t.is(s.devices.find((d) => d.mac === X)?.state, 'active');
  } catch (err) {
    // What the VM printed says more than the back end's side of a failure.
    const vm = qemu ? [...qemu.out.slice(-30), ...qemu.err.slice(-10)].join('\n    ') : '(not started)';
    throw new Error(`${(err as Error).message}\nQEMU's console and stderr:\n    ${vm}`);
  } finally {
    qemu?.kill('SIGKILL');
    await qemu?.exited;
    front?.kill('SIGTERM');
    await front?.wait(10000);
    await rig.close();
    await ns.remove().catch(() => undefined);
  }
}

// One VM at a time: TCG takes a core.
test.serial('a QEMU VM with Linux virtio_net (vhost-user, xsw listens) and a Xen guest\'s TAP-mode front end ping each other through xsw', (t) => pingThroughXsw(t, false));
test.serial('the same with QEMU listening (chardev server=on) and xsw connecting (--vhost-user PATH,client)', (t) => pingThroughXsw(t, true));
