// Reads back the back end's --stats table (backend/stats.ts formatTable) from
// its stdout lines, so the demo can check the switch's own counters.

export interface TableDevice {
  domid: number;
  mac: string;
  vlan: number;
  state: string;
  txTotal: number;
  txDropped: number;
  rxTotal: number;
  rxDropped: number;
}

export interface BackendTable {
  devices: TableDevice[];
  nic: { rx: number; tx: number; dropped: number };
}

const START = /^Device statistics =+$/;
const END = /^=+$/;
const DEVICE = /^Domain: (\d+) device \d+ {2}MAC: (\S+) {2}VLAN: (\d+) {2}State: (\S+)$/;
const COUNTER = /^(TX total|TX dropped|RX total|RX dropped): +(\d+)$/;
const NIC = /^NIC: rx (\d+) {2}tx (\d+) {2}dropped (\d+)$/;

/** The last complete table that starts at or after line `from`, or undefined. */
export function lastTable(lines: readonly string[], from = 0): BackendTable | undefined {
  let found: BackendTable | undefined;
  let cur: BackendTable | undefined;
  for (let i = Math.max(0, from); i < lines.length; i++) {
    const line = lines[i].trim();
    if (START.test(line)) {
      cur = { devices: [], nic: { rx: 0, tx: 0, dropped: 0 } };
      continue;
    }
    if (!cur) continue;
    let m = DEVICE.exec(line);
    if (m) {
      cur.devices.push({ domid: Number(m[1]), mac: m[2], vlan: Number(m[3]), state: m[4], txTotal: 0, txDropped: 0, rxTotal: 0, rxDropped: 0 });
      continue;
    }
    m = COUNTER.exec(line);
    const dev = cur.devices[cur.devices.length - 1];
    if (m && dev) {
      const v = Number(m[2]);
      if (m[1] === 'TX total') dev.txTotal = v;
      else if (m[1] === 'TX dropped') dev.txDropped = v;
      else if (m[1] === 'RX total') dev.rxTotal = v;
      else dev.rxDropped = v;
      continue;
    }
    m = NIC.exec(line);
    if (m) {
      cur.nic = { rx: Number(m[1]), tx: Number(m[2]), dropped: Number(m[3]) };
      continue;
    }
    if (END.test(line)) {
      found = cur;
      cur = undefined;
    }
  }
  return found;
}
