// MAC addresses as XenStore and the command lines spell them
// (`xx:xx:xx:xx:xx:xx`, either case on input, lower case on output) and the
// one rule for a device's own address: a switch learns and delivers by it, so
// it must be a unicast, non-zero station address. Guests' published values and
// xsw-front's --mac go through the same parser.

/** Parsed `xx:xx:xx:xx:xx:xx`, or the reason it is not acceptable (a phrase to follow the value). */
export type MacParse = { ok: true; value: Buffer } | { ok: false; reason: string };

const SPELLING = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const EXAMPLE = '00:16:3e:00:00:01';

/**
 * Parses a MAC address. `device` (the default) applies the rule for a
 * device's own address; `destination` accepts any address (broadcast and
 * multicast included), as a peer to send to may be.
 */
export function parseMac(text: string, use: 'device' | 'destination' = 'device'): MacParse {
  if (text.length !== 17 || !SPELLING.test(text)) {
    return { ok: false, reason: `is not six hex byte pairs separated by colons, so not a MAC address: write it like ${EXAMPLE}` };
  }
  const mac = Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
  if (use === 'device' && mac.every((b) => b === 0)) {
    return { ok: false, reason: `is the zero MAC address, which no device may have: pick a unicast one like ${EXAMPLE}` };
  }
  if (use === 'device' && (mac[0] & 1) !== 0) {
    return {
      ok: false,
      reason: `is a multicast MAC address, which no device may have (a multicast address has the lowest bit of its first byte set): pick a unicast one like ${EXAMPLE}`,
    };
  }
  return { ok: true, value: mac };
}

/** Lower-case `xx:xx:xx:xx:xx:xx` of the first six bytes. */
export function formatMac(mac: Uint8Array): string {
  return Array.from(mac.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}
