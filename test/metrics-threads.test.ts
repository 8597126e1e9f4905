// The per-thread metrics of a back end with --cores (backend/metrics.ts), from a fake source.
import test from 'ava';
import { buildRegistry, MetricsSource } from '../backend/metrics';

const source = (threads?: ReturnType<NonNullable<MetricsSource['threads']>>): MetricsSource => ({
  devices: () => [],
  nic: () => ({ present: false, rx: 0, tx: 0, dropped: 0, drops: {} }),
  loops: () => 190,
  ...(threads ? { threads: () => threads } : {}),
  events: () => ({ attached: 0, detached: {}, quarantined: 0, refused: {} }),
  capture: () => ({ captured: 0, dropped: 0 }),
});

test('each data thread has its loops, handoffs and dropped handoffs, labelled by thread', async (t) => {
  const text = await buildRegistry(
    source([
      { thread: 0, loops: 100, handed_out: 10, handed_in: 7, handoff_dropped: 0 },
      { thread: 1, loops: 90, handed_out: 7, handed_in: 10, handoff_dropped: 2 },
    ]),
  ).metrics();
  t.regex(text, /^xsw_thread_loops_total\{thread="0"\} 100$/m);
  t.regex(text, /^xsw_thread_loops_total\{thread="1"\} 90$/m);
  t.regex(text, /^xsw_thread_handed_out_total\{thread="0"\} 10$/m);
  t.regex(text, /^xsw_thread_handed_in_total\{thread="1"\} 10$/m);
  t.regex(text, /^xsw_thread_handoff_dropped_total\{thread="1"\} 2$/m);
  t.regex(text, /^xsw_switch_loops_total 190$/m);
});

test('a source without threads exports no per-thread series', async (t) => {
  const text = await buildRegistry(source()).metrics();
  t.notRegex(text, /^xsw_thread_loops_total\{/m);
  t.notRegex(text, /^xsw_switch_cycles_total/m); // nor cycles, when the source has none
});

test("the data threads' processing and idle cycles, by kind", async (t) => {
  const text = await buildRegistry({ ...source(), cycles: () => ({ processing: 1234, idle: 8766 }) }).metrics();
  t.regex(text, /^# TYPE xsw_switch_cycles_total counter$/m);
  t.regex(text, /^xsw_switch_cycles_total\{kind="processing"\} 1234$/m);
  t.regex(text, /^xsw_switch_cycles_total\{kind="idle"\} 8766$/m);
});
