// The pcapng blocks the control plane writes around the data plane's packet
// blocks (native/switch/capture.cc writes the Enhanced Packet Blocks): the
// Section Header Block, one Interface Description Block per captured port
// (Ethernet, nanosecond timestamps, the port's name). Little-endian, like the data plane's
// blocks (host order; the capture refuses to start on a big-endian host).
// Format: IETF draft-ietf-opsawg-pcapng (sections 4.1, 4.2; 4.3 for the packet blocks).

const LINKTYPE_ETHERNET = 1;

function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Options: code, then value (string or bytes), padded, ending with opt_endofopt. */
function options(opts: [number, Buffer][]): Buffer {
  const parts: Buffer[] = [];
  for (const [code, value] of opts) {
    const h = Buffer.alloc(4);
    h.writeUInt16LE(code, 0);
    h.writeUInt16LE(value.length, 2);
    parts.push(h, value, Buffer.alloc(pad4(value.length) - value.length));
  }
  parts.push(Buffer.alloc(4));
  return Buffer.concat(parts);
}

function block(type: number, body: Buffer): Buffer {
  const total = 12 + body.length;
  const b = Buffer.alloc(total);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(total, 4);
  body.copy(b, 8);
  b.writeUInt32LE(total, total - 4);
  return b;
}

/** Section Header Block: byte-order magic, version 1.0, unknown section length, the writer's name. */
export function sectionHeader(app = 'xsw-backend'): Buffer {
  const fixed = Buffer.alloc(16);
  fixed.writeUInt32LE(0x1a2b3c4d, 0);
  fixed.writeUInt16LE(1, 4);
  fixed.writeUInt16LE(0, 6);
  fixed.writeBigInt64LE(-1n, 8);
  return block(0x0a0d0d0a, Buffer.concat([fixed, options([[4, Buffer.from(app)]])]));
}

/** Interface Description Block: Ethernet, `snaplen`, if_name, if_description, if_tsresol = 9 (ns). */
export function interfaceDescription(name: string, description: string, snaplen: number): Buffer {
  const fixed = Buffer.alloc(8);
  fixed.writeUInt16LE(LINKTYPE_ETHERNET, 0);
  fixed.writeUInt32LE(snaplen, 4);
  return block(1, Buffer.concat([fixed, options([[2, Buffer.from(name)], [3, Buffer.from(description)], [9, Buffer.from([9])]])]));
}
