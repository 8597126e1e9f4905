// MAC addresses as xsw-front reads and writes them: `xx:xx:xx:xx:xx:xx`,
// lower-case in XenStore (`V_ether_addr`), as DPDK printed them.
import { FrontError } from './errors';

const MAC_RE = /^([0-9a-fA-F]{2})(:[0-9a-fA-F]{2}){5}$/;

/** Parses `xx:xx:xx:xx:xx:xx` (either case) into 6 bytes; throws FrontError otherwise. */
export function parseMac(text: string, what = 'MAC address'): Buffer {
  if (!MAC_RE.test(text)) {
    throw new FrontError(`${what} '${text}' is not six hex byte pairs separated by colons: write it like 00:16:3e:00:00:01`);
  }
  const mac = Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
  if (mac[0] & 1) {
    throw new FrontError(`${what} '${text}' is a multicast address (lowest bit of the first byte set): pick a unicast one like 00:16:3e:00:00:01`);
  }
  return mac;
}

/** Lower-case `xx:xx:xx:xx:xx:xx`. */
export function formatMac(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':');
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
  if (!MAC_RE.test(text)) {
    throw new FrontError(`--eth-peer MAC '${text}' is not six hex byte pairs separated by colons: write it like 00:00:00:00:00:22`);
  }
  return Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
}
