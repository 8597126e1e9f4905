// The wire codec: header layout, type numbers, error strings, the
// incremental parser in any chunking, and its refusal of oversize lengths.
import test from 'ava';
import {
  encode, ERROR_CODES, HEADER_SIZE, Message, Op, opName, PAYLOAD_MAX, parsePerm, Parser, splitStrings, strings,
} from '../xenstore/wire';

test('message types have xs_wire.h numbers', (t) => {
  const expected: [keyof typeof Op, number][] = [
    ['CONTROL', 0], ['DIRECTORY', 1], ['READ', 2], ['GET_PERMS', 3], ['WATCH', 4], ['UNWATCH', 5],
    ['TRANSACTION_START', 6], ['TRANSACTION_END', 7], ['INTRODUCE', 8], ['RELEASE', 9], ['GET_DOMAIN_PATH', 10],
    ['WRITE', 11], ['MKDIR', 12], ['RM', 13], ['SET_PERMS', 14], ['WATCH_EVENT', 15], ['ERROR', 16],
    ['IS_DOMAIN_INTRODUCED', 17], ['RESUME', 18], ['SET_TARGET', 19], ['RESET_WATCHES', 21], ['DIRECTORY_PART', 22],
    ['GET_FEATURE', 23], ['SET_FEATURE', 24], ['GET_QUOTA', 25], ['SET_QUOTA', 26],
  ];
  for (const [name, n] of expected) {
    t.is(Op[name] as number, n, name);
    t.is(opName(n), name);
  }
  t.is(opName(20), undefined);
  t.is(opName(27), undefined);
  t.is(opName(0xffff), undefined);
});

test('error strings are xsd_errors in order, then EQUOTA', (t) => {
  t.deepEqual([...ERROR_CODES], [
    'EINVAL', 'EACCES', 'EEXIST', 'EISDIR', 'ENOENT', 'ENOMEM', 'ENOSPC', 'EIO', 'ENOTEMPTY', 'ENOSYS', 'EROFS',
    'EBUSY', 'EAGAIN', 'EISCONN', 'E2BIG', 'EPERM', 'EQUOTA',
  ]);
});

test('the header is four little-endian u32s: type, req_id, tx_id, len', (t) => {
  const b = encode({ type: Op.WRITE, reqId: 0x01020304, txId: 0xa0b0c0d0, payload: Buffer.from('/a\0v') });
  t.deepEqual([...b.subarray(0, HEADER_SIZE)], [11, 0, 0, 0, 4, 3, 2, 1, 0xd0, 0xc0, 0xb0, 0xa0, 4, 0, 0, 0]);
  t.is(b.subarray(HEADER_SIZE).toString(), '/a\0v');
  t.throws(() => encode({ type: Op.WRITE, reqId: 0, txId: 0, payload: Buffer.alloc(PAYLOAD_MAX + 1) }), { instanceOf: RangeError });
  t.notThrows(() => encode({ type: Op.WRITE, reqId: 0, txId: 0, payload: Buffer.alloc(PAYLOAD_MAX) }));
});

test('the parser yields the same messages whatever the chunking', (t) => {
  const msgs: Message[] = [
    { type: Op.READ, reqId: 1, txId: 0, payload: strings('/a') },
    { type: Op.WATCH_EVENT, reqId: 0, txId: 0, payload: strings('/a/b', 'tok') },
    { type: Op.DIRECTORY, reqId: 2, txId: 9, payload: Buffer.alloc(0) },
    { type: Op.WRITE, reqId: 3, txId: 0, payload: Buffer.alloc(PAYLOAD_MAX, 7) },
  ];
  const stream = Buffer.concat(msgs.map(encode));
  for (const size of [1, 3, 16, 17, 1000, stream.length]) {
    const p = new Parser();
    const got: Message[] = [];
    for (let off = 0; off < stream.length; off += size) {
      p.feed(stream.subarray(off, off + size));
      for (let r = p.next(); r; r = p.next()) {
        if (r.kind !== 'message') return t.fail('unexpected oversize');
        got.push(r.msg);
      }
    }
    t.deepEqual(got, msgs, `chunk size ${size}`);
    t.is(p.buffered, 0);
  }
});

test('a length over 4096 fails the parser for good', (t) => {
  const p = new Parser();
  const header = Buffer.alloc(16);
  header.writeUInt32LE(Op.READ, 0);
  header.writeUInt32LE(PAYLOAD_MAX + 1, 12);
  p.feed(header);
  t.like(p.next(), { kind: 'oversize', len: PAYLOAD_MAX + 1 });
  p.feed(encode({ type: Op.READ, reqId: 1, txId: 0, payload: strings('/a') }));
  t.like(p.next(), { kind: 'oversize' });
});

test('random bytes never make the parser throw, and what it yields is consistent', (t) => {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) & 0xff;
  for (let round = 0; round < 300; round++) {
    // Small length bytes so that many headers are plausible.
    const bytes = Buffer.from(Array.from({ length: 64 + rand() * 16 }, (_, i) => (i % 16 >= 13 ? 0 : i % 16 === 12 ? rand() & 0x3f : rand())));
    const p = new Parser();
    let consumed = 0;
    let failed = false;
    t.notThrows(() => {
      for (let off = 0, step = 1; off < bytes.length && !failed; off += step) {
        step = 1 + (rand() & 31);
        p.feed(bytes.subarray(off, off + step));
        for (let r = p.next(); r; r = p.next()) {
          if (r.kind === 'oversize') {
            failed = true;
            t.true(r.len > PAYLOAD_MAX);
            break;
          }
          t.true(r.msg.payload.length <= PAYLOAD_MAX);
          consumed += HEADER_SIZE + r.msg.payload.length;
        }
      }
    });
    if (!failed) t.is(consumed + p.buffered, bytes.length);
  }
});

test('payload strings: NUL-terminated lists and perms text', (t) => {
  t.deepEqual(strings('a', '', 'b'), Buffer.from('a\0\0b\0'));
  t.deepEqual(splitStrings(Buffer.from('a\0\0b\0')), ['a', '', 'b']);
  t.deepEqual(splitStrings(Buffer.alloc(0)), []);
  t.is(splitStrings(Buffer.from('a\0b')), undefined);
  t.deepEqual(parsePerm('r5'), { access: 'r', domid: 5 });
  t.deepEqual(parsePerm('b0'), { access: 'b', domid: 0 });
  for (const bad of ['x1', 'r', 'r-1', 'r01', 'r99999', ' r1', 'r1 ']) t.is(parsePerm(bad), undefined, bad);
});
