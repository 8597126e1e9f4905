// Issue 11, finding 8: the control plane's queue. A guest rewriting its start
// key in a loop, a slow xenstored, a domid reused while work was queued, a
// device quarantined again and again, a flood of distinct refusals: each was
// an attack on the other guests or on dom0's log, and each is bounded now.
// Driven on the in-memory fakes (test/fixtures/backend-control.ts).
import test from 'ava';
import { WATCH_TOKEN } from '../backend/discovery';
import { DomainLogLimiter } from '../backend/log-limit';
import { Quarantines } from '../backend/quarantines';
import { control } from './fixtures/backend-control';

const G1 = '00:00:00:00:00:11';
const G2 = '00:00:00:00:00:22';
const G3 = '00:00:00:00:00:33';

test('start events merge per device: 1000 rewrites of event_type_start_0 cause at most one pending check', async (t) => {
  const s = control();
  await s.disc.start();
  s.createDomain(1);
  s.createDomain(2);
  await s.disc.idle();
  const release = s.store.hold(); // a slow xenstored: the first check is stuck in its reads
  s.publish(1, 0, G1);
  for (let i = 0; i < 1000; i++) s.startEvent(1, 0, '1');
  t.is(s.disc.pendingChecks(), 1, 'one check running, one pending: the 999 others merged');
  t.is(s.disc.counters.merged, 999);
  s.publish(2, 0, G2);
  t.is(s.disc.pendingChecks(), 2);
  release();
  await s.disc.idle();
  t.is(s.disc.counters.deviceChecks, 3, 'guest 1: the running check and one more; guest 2: one');
  t.deepEqual(s.attached(), ['1/0', '2/0']);
});

test('checks go round robin across domains: a guest with 8 devices queued delays a new guest by one step', async (t) => {
  const s = control();
  await s.disc.start();
  s.createDomain(1);
  s.createDomain(2);
  await s.disc.idle();
  const release = s.store.hold();
  for (let dev = 0; dev < 8; dev++) s.publish(1, dev, `00:00:00:00:01:0${dev}`);
  s.publish(2, 0, G2);
  const order: string[] = [];
  s.dp.addDevice = ((orig) => (spec) => {
    order.push(`${spec.domid}/${spec.dev}`);
    return orig.call(s.dp, spec);
  })(s.dp.addDevice);
  release();
  await s.disc.idle();
  t.deepEqual(order.slice(0, 3), ['1/0', '1/1', '2/0'], 'guest 2 goes right after the step that was running and one of guest 1');
  t.is(s.attached().length, 9);
});

test('@releaseDomain and a removed domain node are handled ahead of queued checks', async (t) => {
  const s = control();
  await s.disc.start();
  s.createDomain(1);
  s.createDomain(2);
  await s.disc.idle();
  s.publish(2, 0, G2);
  await s.disc.idle();
  const release = s.store.hold();
  for (let dev = 0; dev < 8; dev++) s.publish(1, dev, `00:00:00:00:01:0${dev}`);
  s.destroyDomain(2);
  let checksWhenReleased = -1;
  s.dp.onRemove = () => (checksWhenReleased = s.disc.counters.deviceChecks);
  release();
  await s.disc.idle();
  t.is(checksWhenReleased, 2, 'only the check that was already running came first (1 before the hold + 1)');
  t.true(s.msgs().some((m) => /^detached domain 2 device 0: (the domain was released|its XenStore directory was removed)$/.test(m)));
  t.deepEqual(s.attached().filter((d) => d.startsWith('2/')), []);
});

test('a domid reused while work was queued never keeps the dead domain\'s devices', async (t) => {
  const s = control();
  await s.disc.start();
  s.createDomain(3);
  await s.disc.idle();
  const old = s.publish(3, 0, G3);
  s.publish(3, 1, '00:00:00:00:00:34');
  await s.disc.idle();
  t.deepEqual(s.attached(), ['3/0', '3/1']);
  // The domain dies and a new one gets domid 3 before the back end catches up;
  // the new guest publishes only device 0, with new grants.
  const release = s.store.hold();
  s.destroyDomain(3, { release: false });
  s.createDomain(3);
  s.disc.onWatch('@releaseDomain', WATCH_TOKEN);
  const fresh = s.publish(3, 0, G3);
  release();
  await s.disc.idle();
  t.true(s.msgs().some((m) => /^detached domain 3 device 1: (its domid now names a new domain|its XenStore directory was removed)/.test(m)));
  t.deepEqual(s.attached(), ['3/0'], 'the dead domain\'s device 1 is gone');
  t.not(fresh.flagRef, old.flagRef);
  t.is(s.registry.find(3, 0)!.flagByte.buffer, s.grants.page(3, fresh.flagRef).buffer, 'device 0 is the new incarnation\'s');
  t.deepEqual(s.store.perms.get('/local/domain/3/control/dpdk'), ['n0', 'b3'], 'the new domain is provisioned');
});

test('an attach that read the old incarnation\'s keys maps nothing when the domain is replaced meanwhile', async (t) => {
  const s = control();
  await s.disc.start();
  s.createDomain(4);
  await s.disc.idle();
  // The domain is destroyed and its domid reused right after the check has
  // read the last of the dead domain's keys, before it maps anything.
  s.store.onRead = (path) => {
    if (path !== '/local/domain/0/backend/xsw/4/0/vlan') return;
    s.store.onRead = () => {};
    s.destroyDomain(4, { release: false });
    s.createDomain(4);
  };
  const mapsBefore = s.grants.mapCalls;
  s.publish(4, 0, G1);
  await s.disc.idle();
  t.deepEqual(s.attached(), []);
  t.is(s.grants.mapCalls, mapsBefore, 'nothing was mapped for the dead domain');
  t.true(s.msgs().some((m) => /^dropped a check of domain 4 device 0: the domain changed meanwhile/.test(m)));
});

test('quarantine is sticky: no re-attach until the guest unpublishes and republishes, after a growing back-off', async (t) => {
  const s = control({ backoff: { baseMs: 1000, maxMs: 4000 } });
  await s.disc.start();
  s.createDomain(1);
  s.createDomain(2);
  await s.disc.idle();
  s.publish(1, 0, G1);
  s.publish(2, 0, G2);
  await s.disc.idle();
  const quarantine = () => {
    const d = s.registry.find(1, 0)!;
    s.dp.pending.push({ slot: d.slot, domid: 1, dev: 0, kind: 'quarantine', reason: 'avail_idx_jump' });
    s.disc.poll();
  };
  quarantine();
  t.deepEqual(s.attached(), ['2/0']);
  t.true(s.warns().includes('quarantined domain 1 device 0: avail_idx_jump (strike 1: it may attach again once it unpublishes and republishes event_type_start_0, in 1 s at the earliest)'));
  // Re-announcing without unpublishing, in a loop: never attached, nothing mapped.
  const maps = s.grants.mapCalls;
  for (let i = 0; i < 50; i++) s.startEvent(1, 0, '1');
  await s.disc.idle();
  s.clock.now += 10_000;
  s.startEvent(1, 0, '1');
  await s.disc.idle();
  t.deepEqual(s.attached(), ['2/0']);
  t.is(s.grants.mapCalls, maps);
  // Unpublish, republish: attached again (the back-off has passed).
  s.startEvent(1, 0, undefined);
  await s.disc.idle();
  s.startEvent(1, 0, '1');
  await s.disc.idle();
  t.deepEqual(s.attached(), ['1/0', '2/0']);
  // A repeat offender: strike 2 waits 2 s; republishing within them waits for the timer.
  quarantine();
  t.true(s.warns().some((m) => m.startsWith('quarantined domain 1 device 0: avail_idx_jump (strike 2: ') && m.endsWith('in 2 s at the earliest)')));
  s.startEvent(1, 0, '0');
  await s.disc.idle();
  s.clock.now += 1500;
  s.startEvent(1, 0, '1');
  await s.disc.idle();
  t.deepEqual(s.attached(), ['2/0'], 'still in its back-off');
  s.clock.now += 600;
  await new Promise((r) => setTimeout(r, 600)); // the retry timer (500 ms left)
  await s.disc.idle();
  t.deepEqual(s.attached(), ['1/0', '2/0'], 'attached when its back-off ended');
  t.is(s.lines.filter((l) => l.level === 40 && /^quarantined/.test(l.msg)).length, 2, 'one line per quarantine, none per re-announcement');
});

test('the back-off doubles per strike up to its cap', (t) => {
  const q = new Quarantines({ baseMs: 1000, maxMs: 300_000 });
  t.deepEqual([1, 2, 3, 4, 9, 10, 50].map((n) => q.backoffMs(n)), [1000, 2000, 4000, 8000, 256_000, 300_000, 300_000]);
  t.deepEqual(q.strike(1, 0, 0), { strikes: 1, waitMs: 1000 });
  t.deepEqual(q.verdict(1, 0, 5000), { ok: false, why: 'unpublish' });
  q.unpublished(1, 0);
  t.deepEqual(q.verdict(1, 0, 500), { ok: false, why: 'backoff', waitMs: 500 });
  t.deepEqual(q.verdict(1, 0, 1000), { ok: true });
  t.deepEqual(q.verdict(1, 1, 0), { ok: true }, 'another device of the guest is not affected');
  q.forget(1);
  t.is(q.size, 0);
});

test('refusal lines are rate-limited per domain, distinct messages too; the rest are reported in one line', async (t) => {
  const s = control();
  await s.disc.start();
  s.createDomain(1);
  s.createDomain(2);
  await s.disc.idle();
  // 200 distinct refusals from guest 1 (device indexes over the cap), within a minute.
  for (let dev = 8; dev < 208; dev++) s.startEvent(1, dev, '1');
  await s.disc.idle();
  const about1 = () => s.lines.filter((l) => l.level === 40 && l.domid === 1);
  t.is(about1().length, 10);
  t.is(s.registry.refused.device_cap, 200, 'every refusal is still counted');
  // Guest 2 is not silenced by guest 1.
  s.publish(2, 0, 'zz:not-a-mac');
  await s.disc.idle();
  t.true(s.warns().some((m) => m.startsWith('refused domain 2 device 0: 0_ether_addr "zz:not-a-mac" is not six hex byte pairs')));
  // When the minute is over, one line says how many were suppressed.
  s.clock.now += 60_000;
  for (let i = 0; i < 20; i++) s.disc.poll();
  t.is(about1().length, 11);
  t.is(about1()[10].msg, 'domain 1: suppressed 190 more warning lines about it (at most 10 per domain per minute are logged)');
});

test('the limiter: N lines per window, then one report; windows are per domain', (t) => {
  const l = new DomainLogLimiter(2, 1000);
  t.deepEqual([l.admit(1, 0), l.admit(1, 1), l.admit(1, 2), l.admit(2, 3)].map((v) => v.log), [true, true, false, true]);
  t.deepEqual(l.admit(1, 1000), { log: true, suppressedBefore: 1 });
  l.admit(1, 1001);
  l.admit(1, 1002);
  t.deepEqual(l.expired(2500), [[1, 1]]);
  t.deepEqual(l.expired(2500), []);
  l.admit(3, 0);
  l.admit(3, 0);
  l.admit(3, 0);
  t.is(l.forget(3), 1);
});

test('a quarantined device\'s final counters and strikes go with its domain', async (t) => {
  const s = control({ backoff: { baseMs: 60_000, maxMs: 60_000 } });
  await s.disc.start();
  s.createDomain(1);
  await s.disc.idle();
  s.publish(1, 0, G1);
  await s.disc.idle();
  const d = s.registry.find(1, 0)!;
  s.dp.pending.push({ slot: d.slot, domid: 1, dev: 0, kind: 'quarantine', reason: 'chain_loop' });
  s.disc.poll();
  t.deepEqual(s.registry.snapshot().devices.map((x) => [x.domid, x.state]), [[1, 'quarantined']]);
  s.destroyDomain(1);
  await s.disc.idle();
  t.deepEqual(s.registry.snapshot().devices, [], 'pruned when the domain went');
  // A new domain with that domid starts clean: no strike, no back-off.
  s.createDomain(1);
  await s.disc.idle();
  s.publish(1, 0, G1);
  await s.disc.idle();
  t.deepEqual(s.attached(), ['1/0']);
});
