// Issue 11, finding 6 (control-plane side): switch-wide caps, so that two
// guests cannot lock the rest out. Before: 32 devices per guest by default,
// so two guests took all 64 slots, and no cap on pages mapped in total.
import test from 'ava';
import { DEFAULTS } from '../backend/options';
import { control } from './fixtures/backend-control';

const mac = (domid: number, dev: number) => `00:00:00:00:${domid.toString(16).padStart(2, '0')}:${dev.toString(16).padStart(2, '0')}`;

test('with the default caps, two guests publishing 32 devices each leave slots for the others', async (t) => {
  const s = control({ maxDevicesPerGuest: DEFAULTS.maxDevicesPerGuest, maxDevices: DEFAULTS.maxDevices });
  await s.disc.start();
  for (const domid of [1, 2, 3]) s.createDomain(domid);
  await s.disc.idle();
  for (const domid of [1, 2]) {
    for (let dev = 0; dev < 32; dev++) s.publish(domid, dev, mac(domid, dev), { poolPages: 1 });
  }
  await s.disc.idle();
  t.is(s.attached().filter((d) => d.startsWith('1/')).length, DEFAULTS.maxDevicesPerGuest);
  t.is(s.attached().filter((d) => d.startsWith('2/')).length, DEFAULTS.maxDevicesPerGuest);
  t.is(s.registry.refused.device_cap, 2 * (32 - DEFAULTS.maxDevicesPerGuest));
  t.true(s.warns().includes('refused domain 1 device 8: event_type_start_8 is over the limit of 8 devices per guest (raise --max-devices-per-guest)'));
  s.publish(3, 0, mac(3, 0));
  await s.disc.idle();
  t.true(s.attached().includes('3/0'), 'a third guest still gets a slot');
  t.false('no_slot' in s.registry.refused);
});

test('a switch-wide page cap: guests that would exceed it are refused as total_page_cap, the others attach', async (t) => {
  const s = control({ maxPagesPerGuest: 1000, maxPages: 1100 });
  await s.disc.start();
  for (const domid of [1, 2, 3, 4]) s.createDomain(domid);
  await s.disc.idle();
  s.publish(1, 0, mac(1, 0), { poolPages: 500 });
  s.publish(2, 0, mac(2, 0), { poolPages: 500 });
  await s.disc.idle();
  t.is(s.registry.pagesTotal(), 2 * 507);
  s.publish(3, 0, mac(3, 0), { poolPages: 500 });
  await s.disc.idle();
  t.deepEqual(s.registry.refused, { total_page_cap: 1 });
  t.true(s.warns().includes(
    'refused domain 3 device 0: 0_mempool_gref needs 500 more pages, over the switch-wide limit of 1100 mapped pages for all guests (raise --max-pages)',
  ));
  t.is(s.registry.pagesOf(3), 0);
  t.is(s.grants.livePages(), 2 * 507, 'nothing of the refused guest stays mapped');
  s.publish(4, 0, mac(4, 0), { poolPages: 4 });
  await s.disc.idle();
  t.deepEqual(s.attached(), ['1/0', '2/0', '4/0'], 'a small guest still fits');
  // Guest 1 goes: its pages are free for guest 3.
  s.destroyDomain(1);
  s.startEvent(3, 0, '1');
  await s.disc.idle();
  t.deepEqual(s.attached(), ['2/0', '3/0', '4/0']);
  t.is(s.registry.pagesTotal(), 2 * 507 + 11);
});
