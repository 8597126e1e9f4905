// Network namespaces and veth pairs, built with iproute2 as a person would:
// the "wire" the demo, the bench and the tests put between the back end's NIC
// port and a frame generator. IPv6 is off inside, so the kernel stays quiet on
// the wire (no router solicitations counted as traffic).
import { run } from './child';

async function ip(args: string[]): Promise<void> {
  const r = await run('ip', args, { timeoutMs: 10000 });
  if (r.exit.error) throw new Error('the ip command is missing: install iproute2');
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.err.trim() || `status ${r.code}`}`);
}

export class Netns {
  /** The argv prefix that runs a command inside the namespace. */
  readonly prefix: string[];

  private constructor(readonly name: string) {
    this.prefix = ['ip', 'netns', 'exec', name];
  }

  /**
   * Adds namespace `name` with IPv6 off. With `replace`, a leftover of the
   * same name (a previous run of the same pid) is deleted first.
   */
  static async add(name: string, o: { replace?: boolean } = {}): Promise<Netns> {
    if (o.replace) await run('ip', ['netns', 'del', name], { timeoutMs: 10000 });
    await ip(['netns', 'add', name]);
    // A kernel without IPv6 has nothing to silence.
    await run('ip', ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], { timeoutMs: 10000 });
    return new Netns(name);
  }

  /** The argv that runs `cmd` inside the namespace. */
  wrap(cmd: string, args: string[]): [string, string[]] {
    return [this.prefix[0], [...this.prefix.slice(1), cmd, ...args]];
  }

  /** A veth pair: `a` in this namespace, `b` in `peer` (default: this one too), both up, with an MTU and addresses if given. */
  async addVeth(a: string, b: string, o: { peer?: Netns; mtu?: number; addrs?: [string, string] } = {}): Promise<void> {
    const nsB = o.peer ?? this;
    await ip(['-n', this.name, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b, ...(o.peer ? ['netns', o.peer.name] : [])]);
    for (const [ns, dev, addr] of [[this, a, o.addrs?.[0]], [nsB, b, o.addrs?.[1]]] as const) {
      if (o.mtu !== undefined) await ip(['-n', ns.name, 'link', 'set', dev, 'mtu', String(o.mtu)]);
      await ip(['-n', ns.name, 'link', 'set', dev, 'up']);
      if (addr !== undefined) await ip(['-n', ns.name, 'addr', 'add', addr, 'dev', dev]);
    }
  }

  /** Deletes the namespace (and the veth ends in it); throws one sentence when it cannot. */
  async remove(): Promise<void> {
    await ip(['netns', 'del', this.name]);
  }
}
