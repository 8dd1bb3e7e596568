'use strict';
// The line decoder, without sockets: each input fed whole, one byte at a
// time, and followed by more data.

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { ID_RECOVERY_BYTES, InvalidLine, LineDecoder, OversizeLine } = require('../lib/framing');

function feedAll(decoder, chunks) {
  return chunks.flatMap((chunk) => decoder.feed(chunk));
}

function wholeAndByByte(bytes, limit) {
  const whole = feedAll(new LineDecoder(limit), [bytes]);
  const byByte = feedAll(
    new LineDecoder(limit),
    [...bytes].map((b) => Buffer.from([b])),
  );
  return { whole, byByte };
}

const CASES = [
  ['one line', '{"a":1}\n', ['{"a":1}']],
  ['two lines in one read', '{"a":1}\n{"b":2}\n', ['{"a":1}', '{"b":2}']],
  ['a CR before the LF stays, JSON reads it as white space', '{"a":1}\r\n', ['{"a":1}\r']],
  ['blank lines are lines', '\n \n', ['', ' ']],
  ['an unfinished line is held back', '{"a":1}\n{"b"', ['{"a":1}']],
  ['raw UTF-8 of every length', '{"s":"é€😀\u2028"}\n', ['{"s":"é€😀\u2028"}']],
];

for (const [name, input, expected] of CASES) {
  test(`decoder: ${name}`, () => {
    const { whole, byByte } = wholeAndByByte(Buffer.from(input, 'utf8'));
    assert.deepEqual(whole, expected);
    assert.deepEqual(byByte, expected);
  });

  test(`decoder: ${name}, then trailing data`, () => {
    const decoder = new LineDecoder();
    const out = decoder.feed(Buffer.from(input + '{"tail":true}', 'utf8'));
    assert.deepEqual(out, expected);
    const rest = input.endsWith('\n') ? '{"tail":true}' : input.slice(input.lastIndexOf('\n') + 1) + '{"tail":true}';
    assert.deepEqual(decoder.feed(Buffer.from('\n')), [rest]);
  });
}

test('decoder: a line split over many reads is joined once its LF arrives', () => {
  const decoder = new LineDecoder();
  const line = '{"data":"' + 'x'.repeat(200000) + '"}';
  const bytes = Buffer.from(line + '\n');
  const out = [];
  for (let i = 0; i < bytes.length; i += 65536) out.push(...decoder.feed(bytes.subarray(i, i + 65536)));
  assert.deepEqual(out, [line]);
  assert.equal(decoder.buffered, 0);
});

test('decoder: a line of exactly the limit passes, one byte more does not', () => {
  const limit = 100;
  const exact = '{"x":"' + 'a'.repeat(limit - 8) + '"}';
  assert.equal(Buffer.byteLength(exact), limit);
  const { whole, byByte } = wholeAndByByte(Buffer.from(exact + '\n' + exact + 'b\n'), limit);
  for (const out of [whole, byByte]) {
    assert.equal(out.length, 2);
    assert.equal(out[0], exact);
    assert.ok(out[1] instanceof OversizeLine);
    assert.equal(out[1].limit, limit);
    assert.equal(out[1].size, limit + 1);
  }
});

test('decoder: the limit counts a CR before the LF', () => {
  const limit = 10;
  const out = new LineDecoder(limit).feed(Buffer.from('{"a":"12"}\r\n'));
  assert.equal(out.length, 1);
  assert.ok(out[0] instanceof OversizeLine);
  assert.equal(out[0].size, 11);
});

test('decoder: an oversize line is reported once, its rest dropped, the next line kept', () => {
  const limit = 1024;
  const head = '{"ipcReqID":"rq7","data":"';
  const big = Buffer.from(head + 'y'.repeat(10 * limit) + '"}\n{"ipcReqID":"rq8"}\n');
  for (const step of [1, 7, 500, 4096, big.length]) {
    const decoder = new LineDecoder(limit);
    const out = [];
    for (let i = 0; i < big.length; i += step) out.push(...decoder.feed(big.subarray(i, i + step)));
    assert.equal(out.length, 2, `step ${step}`);
    assert.ok(out[0] instanceof OversizeLine);
    assert.ok(out[0].head.toString().startsWith(head));
    assert.ok(out[0].head.length <= ID_RECOVERY_BYTES);
    assert.ok(out[0].size > limit);
    assert.equal(out[1], '{"ipcReqID":"rq8"}');
    // Never more than the limit held, whatever the step.
    assert.ok(decoder.buffered <= limit);
  }
});

test('decoder: the head of an oversize line is its first 4096 bytes, across reads', () => {
  const decoder = new LineDecoder(5000);
  const text = 'z'.repeat(6000);
  const out = [];
  for (let i = 0; i < text.length; i += 1000) out.push(...decoder.feed(Buffer.from(text.slice(i, i + 1000))));
  assert.equal(out.length, 1);
  assert.equal(out[0].head.toString(), text.slice(0, ID_RECOVERY_BYTES));
});

test('decoder: a line with invalid UTF-8 is reported as invalid, and a real U+FFFD is not', () => {
  const bad = Buffer.concat([Buffer.from('{"s":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]);
  const good = Buffer.from('{"s":"\uFFFD"}\n');
  const { whole, byByte } = wholeAndByByte(Buffer.concat([bad, good]));
  for (const out of [whole, byByte]) {
    assert.equal(out.length, 2);
    assert.ok(out[0] instanceof InvalidLine);
    assert.equal(out[1], '{"s":"\uFFFD"}');
  }
});

test('decoder: refuses a limit that is not a positive integer', () => {
  for (const bad of [0, -1, 1.5, NaN, '10']) assert.throws(() => new LineDecoder(bad), RangeError);
});
