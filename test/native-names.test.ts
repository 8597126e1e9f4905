// The names of ring violations and drop reasons come from one table each on
// the C++ side (native/shm/violation.h, native/switch/drops.h); TypeScript
// keeps its own list for its types (native/vring.ts, native/switch.ts). These
// tests fail when either side has a name the other does not know.
import test from 'ava';
import { addon } from '../native/binding';
import { dropReasons, DROP_NAMES, SWITCH_DROP_NAMES } from '../native/switch';
import { VIOLATION_NAMES, vringNative } from '../native/vring';

test('violation names: TypeScript knows exactly the C++ table, in code order', (t) => {
  const native = addon().shm.violationNames;
  t.is(native[0], 'none');
  t.deepEqual(native.slice(1), [...VIOLATION_NAMES]);
  t.deepEqual(vringNative().violationNames(), ['none', ...VIOLATION_NAMES]);
});

test('drop names: the violations first, then the switch reasons, exactly as C++ counts them', (t) => {
  const native = addon().switch.dropNames;
  t.is(native[0], 'none');
  t.deepEqual(native.slice(1, 1 + VIOLATION_NAMES.length), [...VIOLATION_NAMES]);
  t.deepEqual(native.slice(1 + VIOLATION_NAMES.length), [...SWITCH_DROP_NAMES]);
  t.deepEqual(dropReasons(), [...DROP_NAMES]);
});

test('every name is a unique snake_case word', (t) => {
  const all = ['none', ...DROP_NAMES];
  t.is(new Set(all).size, all.length);
  for (const n of all) t.regex(n, /^[a-z]+(_[a-z]+)*$/);
});
