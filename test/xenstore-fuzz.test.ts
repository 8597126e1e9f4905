// The TypeScript fuzz of xenstored's request handler (test/fuzz/xenstored-fuzz.ts),
// for a bounded time. XSW_FUZZ_SECONDS and XSW_FUZZ_SEED change the budget and
// the seed; a failure names the seed and execution to replay.
import test from 'ava';
import { fuzzXenStored } from './fuzz/xenstored-fuzz';

test('xenstored fuzz: random and mutated messages break no invariant', (t) => {
  const seconds = Number(process.env.XSW_FUZZ_SECONDS ?? 12);
  const seed = Number(process.env.XSW_FUZZ_SEED ?? 0x5eed11);
  const r = fuzzXenStored({ seed, seconds });
  t.log(`seed ${seed}: ${r.executions} executions in ${r.seconds.toFixed(1)} s, ${r.stores} stores, ` +
    `${r.eventsSent} events sent, ${r.eventsCollapsed} collapsed, ${r.closedByServer} connections closed by the server`);
  // Enough happened to mean something: requests of every outcome, events, collapses.
  t.true(r.executions > 20000, `${r.executions} executions`);
  for (const code of ['OK', 'ENOENT', 'EACCES', 'EINVAL', 'ENOSPC', 'EAGAIN']) t.true((r.replies[code] ?? 0) > 0, `some ${code} replies`);
  t.true(r.eventsSent > 0);
  t.true(r.closedByServer > 0);
});
