// MAC addresses as xsw-front takes them: a device's own (--mac, the API's
// `mac`) under schema/mac.ts's rule, a peer to send to (--eth-peer) as any
// address, and the addresses it derives for devices --mac did not name.
import { formatMac, parseMac } from '../schema/mac';
import { FrontError } from './errors';

export { formatMac };

/** A device's own MAC (either case) as 6 bytes; throws FrontError naming `what` otherwise. */
export function parseDeviceMac(text: string, what = 'MAC address'): Buffer {
  const r = parseMac(text);
  if (!r.ok) throw new FrontError(`${what} '${text}' ${r.reason}`);
  return r.value;
}

/**
 * The MAC of device `index` when --devices asks for more devices than --mac
 * gave: Xen's OUI 00:16:3e, then the domain id (2 bytes), then the index, so
 * guests on one host never collide.
 */
export function deriveMac(domid: number, index: number): Buffer {
  return Buffer.from([0x00, 0x16, 0x3e, (domid >> 8) & 0x7f, domid & 0xff, index & 0xff]);
}

export interface EthPeer {
  /** The device it applies to; undefined: every device without its own. */
  device?: number;
  mac: Buffer;
}

/** `--eth-peer MAC` or testpmd's `--eth-peer N,MAC`. */
export function parseEthPeer(text: string): EthPeer {
  const comma = text.indexOf(',');
  if (comma < 0) return { mac: parseEthPeerMac(text) };
  const dev = text.slice(0, comma);
  if (!/^\d{1,3}$/.test(dev)) {
    throw new FrontError(`--eth-peer '${text}' does not start with a device number: write N,MAC like 0,00:00:00:00:00:22`);
  }
  return { device: Number(dev), mac: parseEthPeerMac(text.slice(comma + 1)) };
}

// A peer may be any address (broadcast included), unlike a device's own MAC.
function parseEthPeerMac(text: string): Buffer {
  const r = parseMac(text, 'destination');
  if (!r.ok) throw new FrontError(`--eth-peer MAC '${text}' ${r.reason}`);
  return r.value;
}
