// The hostile-netfront matrix end to end (also under ASan: scripts/asan-e2e.sh):
// one test per class of attack a guest's netfront can mount on the back end's
// rings or keys. Each must quarantine (or refuse) only the offender, with one
// log line, while a second netfront guest and a PMD guest lose nothing.
import test from 'ava';
import { Child } from '../harness/child';
import { ethFrame, FakeNetfront, NETTXF_EXTRA_INFO } from '../harness/netfront-fake';
import { NetifRig } from './fixtures/netif-rig';

const PMD = '00:00:00:00:00:11';
const GOOD = '00:16:3e:00:00:21';
const BAD = '00:16:3e:00:00:66';
const FRONT = ['--nb-mbuf', '512', '--log-level', 'warn'];
const BCAST = 'ff:ff:ff:ff:ff:ff';

async function rigWithVictims(): Promise<{ rig: NetifRig; be: Child; good: FakeNetfront; bad: FakeNetfront }> {
  const rig = await NetifRig.start();
  await rig.createDomain(1);
  await rig.vifDomain(2, GOOD);
  await rig.vifDomain(3, BAD);
  const be = rig.backend(['--log-level', 'info']);
  await be.waitLine('err', /watching \/local\/domain/);
  rig.guest(1, ['--mac', PMD, '--fwd', 'macswap', ...FRONT]);
  await be.waitLine('err', /MAC_ADDRESS 00:00:00:00:00:11 and VLAN_TAG \d+ registered/);
  const good = await rig.netfront(2);
  await good.connect();
  good.postRx(128);
  const bad = await rig.netfront(3);
  return { rig, be, good, bad };
}

/** The good guest's 50 frames go round the PMD guest and all come back intact. */
async function noLoss(t: import('ava').ExecutionContext, good: FakeNetfront): Promise<void> {
  good.received();
  for (let i = 0; i < 50; i++) good.queue(ethFrame(PMD, GOOD, 64 + i, i));
  good.pushTx();
  const got = await good.receive(50);
  t.is(got.length, 50);
  t.true(got.every((f, i) => f.subarray(12).equals(ethFrame(PMD, GOOD, 64 + i, i).subarray(12))));
}

const ringAttacks: [string, string, (bad: FakeNetfront) => void][] = [
  ['TX req_prod a ring ahead (XSA-39 class)', 'tx_req_overflow', (b) => {
    b.queue(ethFrame(PMD, BAD, 60));
    b.txReqProd += 256;
    b.pushTx();
  }],
  ['RX req_prod a ring ahead', 'rx_req_overflow', (b) => {
    b.rxReqProd += 300;
    b.pushRx();
  }],
  ['19 slots for one frame (XSA-423/448 class)', 'tx_too_many_slots', (b) => {
    b.queue(ethFrame(PMD, BAD, 1000), [1000 - 18 * 50, ...Array<number>(18).fill(50)]);
    b.pushTx();
  }],
  ['a slot past its page (XSA-155/270 class)', 'tx_slot_past_page', (b) => {
    b.queue(ethFrame(PMD, BAD, 300), [300], 0, 4000);
    b.pushTx();
  }],
  ['a zero-length slot', 'tx_zero_slot', (b) => {
    b.queue(ethFrame(PMD, BAD, 200), [100, 100, 0]);
    b.pushTx();
  }],
  ['a first slot smaller than the slots after it', 'tx_slot_sizes', (b) => {
    b.queue(ethFrame(PMD, BAD, 200), [100, 100]);
    b.poke(b.txReqProd - 2, 'size', 50);
    b.pushTx();
  }],
  ['an extra-info slot never offered', 'tx_extra_info', (b) => {
    b.queue(ethFrame(PMD, BAD, 200), [200], NETTXF_EXTRA_INFO);
    b.pushTx();
  }],
  ['a TX ref never granted', 'tx_bad_grant', (b) => {
    b.queue(ethFrame(PMD, BAD, 200));
    b.poke(b.txReqProd - 1, 'gref', 30000);
    b.pushTx();
  }],
  ['an RX ref granted read-only', 'rx_bad_grant', (b) => {
    b.postRx(1);
    b.pokeRx(b.rxReqProd - 1, b.txPages.grefs[0]);
  }],
];

for (const [name, reason, mount] of ringAttacks) {
  test.serial(`hostile netfront: ${name} → quarantined (${reason}); the others lose nothing`, async (t) => {
    const { rig, be, good, bad } = await rigWithVictims();
    try {
      await bad.connect();
      await be.waitLine('err', /vif 3\/0 \(netif\) connected/);
      mount(bad);
      // A broadcast from the good guest reaches the attacker's RX ring too.
      good.queue(ethFrame(BCAST, GOOD, 80));
      good.pushTx();
      await be.waitLine('err', new RegExp(`quarantined vif 3/0 \\(netif\\): ${reason}`));
      await noLoss(t, good);
      t.is(be.err.filter((l) => /quarantined vif/.test(l)).length, 1);
      t.true(be.running);
    } finally {
      await rig.close();
    }
  });
}

const keyAttacks: [string, Record<string, string>, RegExp][] = [
  ['request-rx-copy=0 (flip mode)', { 'request-rx-copy': '0' }, /request-rx-copy is \W+0\W/],
  ['a tx-ring-ref that is not a number', { 'tx-ring-ref': '12abc' }, /tx-ring-ref is \W+12abc\W+, not a whole number/],
  ['a tx-ring-ref never granted', { 'tx-ring-ref': '31000' }, /cannot map its rings/],
  ['an event channel never offered', { 'event-channel': '999' }, /cannot bind its event channel/],
  ['multi-queue never offered', { 'multi-queue-num-queues': '4' }, /multi-queue-num-queues is \W+4\W+, not a whole number from 1 to 1: this back end serves one queue/],
];

for (const [name, keys, why] of keyAttacks) {
  test.serial(`hostile netfront keys: ${name} → refused with one sentence; the others lose nothing`, async (t) => {
    const { rig, be, good, bad } = await rigWithVictims();
    try {
      await t.throwsAsync(bad.connect(keys, 1500), { message: /never 4/ });
      await be.waitLine('err', /vif 3\/0 refused: /);
      t.regex(be.err.find((l) => /vif 3\/0 refused/.test(l)) ?? '', why);
      await noLoss(t, good);
      t.true(be.running);
    } finally {
      await rig.close();
    }
  });
}
