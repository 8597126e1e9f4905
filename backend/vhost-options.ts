// The --vhost-user option's value: PATH[,client][,mac=xx:xx:xx:xx:xx:xx].
// Pure: a bad value becomes an Error whose message is one sentence.

export interface VhostUserSpec {
  /** The unix socket. */
  path: string;
  /** true: the peer listens (virtio_user server=1) and xsw connects, retrying; false: xsw listens. */
  client: boolean;
  /** The port's MAC; absent: learned from the source of the peer's first frame. */
  mac?: string;
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

export function parseVhostUserSpec(v: string): VhostUserSpec {
  const [path, ...opts] = v.split(',');
  if (!path || !path.startsWith('/') || path.length > 107) {
    throw new Error(`--vhost-user takes an absolute socket path (at most 107 bytes) then ,client and/or ,mac=MAC, not "${v}".`);
  }
  const spec: VhostUserSpec = { path, client: false };
  for (const o of opts) {
    if (o === 'client') {
      spec.client = true;
    } else if (o.startsWith('mac=') && MAC_RE.test(o.slice(4))) {
      const mac = o.slice(4).toLowerCase();
      const first = parseInt(mac.slice(0, 2), 16);
      if ((first & 1) !== 0 || mac === '00:00:00:00:00:00') {
        throw new Error(`--vhost-user ${v}: mac= must be a unicast, non-zero address.`);
      }
      spec.mac = mac;
    } else {
      throw new Error(`--vhost-user ${v}: unknown option "${o}"; give ,client and/or ,mac=xx:xx:xx:xx:xx:xx.`);
    }
  }
  return spec;
}
