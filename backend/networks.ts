// Networks (docs/security.md#networks): which network a device belongs to,
// the tag its frames carry on the uplink, and the per-network counters.
//
// A network is an 802.1Q VLAN id (1..4094). dom0 assigns it per device in
// /local/domain/0/backend/xsw/<domid>/<dev>/vlan (schema/assignment.ts); a
// device without one joins --default-network when the back end was given
// one, else it keeps the guide's model: no network, VLAN 1000 + slot, which
// only marks its pool on the NIC. Devices switch frames only with devices of
// their own network (devices without one count as one network). On the
// uplink (a trunk) each network travels tagged with its id, except the one
// given as --native-vlan, which travels untagged.
import type { Assignment } from './attach';
import { VLAN_BASE } from './identity';

export interface NetworkConfig {
  /** The network of devices dom0 assigned none (--default-network). */
  defaultNetwork?: number;
  /** The network the uplink carries untagged (--native-vlan). */
  nativeVlan?: number;
}

export interface Placement {
  /** The device's network, or undefined: the guide's model. */
  network?: number;
  /** The VLAN the registration line and the stats show: the network, or 1000 + slot. */
  vlan: number;
  /** The tag on the uplink: the VLAN, or 0 (untagged) for the native VLAN. */
  nicTag: number;
  /** Where the network came from. */
  source: 'dom0' | '--default-network' | 'slot';
}

/** Where a device goes: dom0's assignment, else the back end's default, else 1000 + slot. */
export function place(assigned: Assignment, slot: number, cfg: NetworkConfig): Placement {
  const network = assigned.vlan ?? cfg.defaultNetwork;
  if (network === undefined) {
    const vlan = VLAN_BASE + slot;
    return { vlan, nicTag: vlan, source: 'slot' };
  }
  return {
    network,
    vlan: network,
    nicTag: network === cfg.nativeVlan ? 0 : network,
    source: assigned.vlan !== undefined ? 'dom0' : '--default-network',
  };
}

/** The end of the registration line: where the VLAN came from, and how the uplink carries it. */
export function describePlacement(p: Placement): string {
  if (p.network === undefined) return '';
  const how = p.nicTag === 0 ? ', untagged on the uplink (its native VLAN)' : '';
  return ` (network ${p.network} from ${p.source === 'dom0' ? 'dom0' : '--default-network'}${how})`;
}

export interface NetworkCounters {
  network: number;
  /** Devices of the network in the stats (live or quarantined). */
  devices: number;
  tx_total: number;
  tx_dropped: number;
  rx_total: number;
  rx_dropped: number;
  /** Frames the uplink received and sent on this network's tag. */
  nic_rx: number;
  nic_tx: number;
}

/** Sums the devices' counters per network and adds the uplink's frames on each network's tag. */
export function networkCounters(
  devices: { network?: number | null; tx_total: number; tx_dropped: number; rx_total: number; rx_dropped: number }[],
  nicVlans: { vlan: number; rx: number; tx: number }[],
  nativeVlan?: number,
): NetworkCounters[] {
  const byNetwork = new Map<number, NetworkCounters>();
  for (const d of devices) {
    if (d.network === undefined || d.network === null) continue;
    const n = byNetwork.get(d.network) ?? { network: d.network, devices: 0, tx_total: 0, tx_dropped: 0, rx_total: 0, rx_dropped: 0, nic_rx: 0, nic_tx: 0 };
    n.devices++;
    n.tx_total += d.tx_total;
    n.tx_dropped += d.tx_dropped;
    n.rx_total += d.rx_total;
    n.rx_dropped += d.rx_dropped;
    byNetwork.set(d.network, n);
  }
  for (const n of byNetwork.values()) {
    const tag = n.network === nativeVlan ? 0 : n.network;
    const v = nicVlans.find((x) => x.vlan === tag);
    if (v) {
      n.nic_rx = v.rx;
      n.nic_tx = v.tx;
    }
  }
  return [...byNetwork.values()].sort((a, b) => a.network - b.network);
}
