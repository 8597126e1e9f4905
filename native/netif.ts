// Typed access to addon.netif (native/netif/ and native/grant/evtchn.h).
import { addon } from './binding';
import type { NativeEventChannels, NativeVif, NativeVifOptions, NetifPlatformOptions } from './addon';

export type { NativeVif, NativeEventChannels } from './addon';

/** Maps a guest's netif rings, binds its event channel(s) and builds the engine (not started). */
export function openVif(opts: NativeVifOptions): NativeVif {
  return new (addon().netif.NativeVif)(opts);
}

/** Event channels of this process (for a guest: offer ports; for dom0: bind them). */
export function openEventChannels(opts: NetifPlatformOptions = {}): NativeEventChannels {
  return new (addon().netif.NativeEventChannels)(opts);
}
