// Which MAC a device may use (docs/security.md, "Identity"). dom0 may assign a
// MAC (and a VLAN) per device under its own tree (schema/assignment.ts); the
// guest publishes the MAC it uses. The rules, in every policy:
//   - a published MAC that differs from the assigned one is refused;
//   - an assigned VLAN may not fall in the range the switch hands out itself
//     (1000 + slot), or the device would share a network with another one;
//   - a MAC the guest chose itself (no assignment) may not be one the switch
//     has seen as a source on the NIC side: that is a host on the LAN.
// With --mac-policy dom0, a device without an assigned MAC is refused too.
import { assignmentKeys } from '../schema/assignment';
import { PublishedDevice, Refusal } from './attach';
import { deviceKeys } from '../schema/dpdk';

export type MacPolicy = 'guest' | 'dom0';

/** DPDK's vlan_tags[]: VLAN 1000 + switch slot, for devices without an assigned VLAN. */
export const VLAN_BASE = 1000;
/** The most switch slots there can be (--max-devices): VLANs 1000..1063 are the switch's own. */
export const MAX_SLOTS = 64;

/** Throws a Refusal when `p` may not register the MAC it published. */
export function checkIdentity(p: PublishedDevice, policy: MacPolicy, nicMacSeen: (mac: string) => boolean): void {
  const key = deviceKeys(p.dev).mac;
  const a = assignmentKeys(p.domid, p.dev);
  const { mac: assignedMac, vlan: assignedVlan } = p.assigned;
  if (assignedMac !== undefined && p.mac !== assignedMac) {
    throw new Refusal('mac_mismatch', `${key} ${p.mac} is not the MAC dom0 assigned to this device (${assignedMac} in ${a.mac}); the guest must use the assigned MAC`);
  }
  if (assignedVlan !== undefined && assignedVlan >= VLAN_BASE && assignedVlan < VLAN_BASE + MAX_SLOTS) {
    throw new Refusal(
      'bad_assignment',
      `${a.vlan} ${assignedVlan} is in the range the switch gives devices itself (${VLAN_BASE}-${VLAN_BASE + MAX_SLOTS - 1}); dom0 must assign another VLAN`,
    );
  }
  if (assignedMac !== undefined) return;
  if (policy === 'dom0') {
    throw new Refusal('mac_unassigned', `${key} ${p.mac} was not assigned by dom0 and --mac-policy is dom0; assign it with xenstore-write ${a.mac} ${p.mac}`);
  }
  if (nicMacSeen(p.mac)) {
    throw new Refusal('mac_on_nic', `${key} ${p.mac} is the MAC of a host on the NIC side (seen as a frame's source there); a guest may not register it`);
  }
}
