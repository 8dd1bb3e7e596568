'use strict';
// The protocol core without sockets: request bytes, matching, pushes, late
// answers, oversize lines, and the original's codeToErr / messageTransform.

const assert = require('node:assert/strict');
const { test } = require('node:test');
const {
  ANSWER,
  ClientProtocol,
  LATE,
  MALFORMED,
  OVERSIZE,
  PUSH,
  UNKNOWN,
  isMessageLine,
  recoverId,
  responseOutcome,
} = require('../lib/protocol');

function proto(options = {}) {
  return new ClientProtocol({ userAgent: 'Node/IPCClient/srv/app', pid: 4242, ...options });
}

/** Feed `text` whole and one byte at a time; both must give the same events. */
function receive(makeProto, text) {
  const whole = makeProto().receiveData(Buffer.from(text));
  const p = makeProto();
  const bytes = Buffer.from(text);
  const byByte = [];
  for (let i = 0; i < bytes.length; i++) byByte.push(...p.receiveData(bytes.subarray(i, i + 1)));
  assert.deepEqual(byByte, whole);
  return whole;
}

test('requests are written as the original writes them: member order, pid, userAgent', () => {
  const p = proto();
  const line = p.encodeRequest('/myapp/status', { verbose: true }, {});
  assert.equal(
    line,
    '{"ipcReqID":"rq0","uri":"/myapp/status","data":{"verbose":true},"pid":4242,"userAgent":"Node/IPCClient/srv/app"}\n',
  );
});

test('a request without data has no data member', () => {
  const p = proto();
  assert.equal(p.encodeRequest('/a', undefined, {}), '{"ipcReqID":"rq0","uri":"/a","pid":4242,"userAgent":"Node/IPCClient/srv/app"}\n');
  // null is a value, and is sent.
  assert.equal(p.encodeRequest('/a', null, {}), '{"ipcReqID":"rq1","uri":"/a","data":null,"pid":4242,"userAgent":"Node/IPCClient/srv/app"}\n');
});

test('ids count up per object, and data that cannot be encoded uses no id', () => {
  const p = proto();
  const cyclic = {};
  cyclic.self = cyclic;
  const entries = [{}, {}, {}];
  p.encodeRequest('/a', 1, entries[0]);
  assert.throws(() => p.encodeRequest('/a', cyclic, {}), TypeError);
  assert.throws(() => p.encodeRequest('/a', 10n, {}), TypeError);
  p.encodeRequest('/a', 2, entries[1]);
  p.connectionLost();
  p.encodeRequest('/a', 3, entries[2]);
  assert.deepEqual(
    entries.map((e) => e.id),
    ['rq0', 'rq1', 'rq2'],
  );
  assert.equal(p.pendingCount, 1);
});

test('an answer goes to the request with its id, in any order', () => {
  const entries = [{ n: 0 }, { n: 1 }];
  const make = () => {
    const p = proto();
    entries.forEach((entry) => p.encodeRequest('/a', null, entry));
    return p;
  };
  const events = receive(make, '{"ipcReqID":"rq1","data":"B"}\n{"ipcReqID":"rq0","data":"A"}\n');
  assert.deepEqual(
    events.map((e) => [e.kind, e.entry.n, e.message.data]),
    [
      [ANSWER, 1, 'B'],
      [ANSWER, 0, 'A'],
    ],
  );
});

test('messages with a falsy id are pushes, a top-level error among them (ERR-7)', () => {
  const make = () => {
    const p = proto();
    p.encodeRequest('/a', null, {});
    return p;
  };
  const text = [
    '{"data":{"event":"x"}}',
    '{"ipcReqID":null,"data":1}',
    '{"ipcReqID":0,"data":2}',
    '{"ipcReqID":"","data":3}',
    '{"ipcReqID":false,"data":4}',
    '{"ipcReqID":null,"code":"access_denied","message":"peer not allowed"}',
  ].join('\n');
  const events = receive(make, text + '\n');
  assert.deepEqual(
    events.map((e) => e.kind),
    [PUSH, PUSH, PUSH, PUSH, PUSH, PUSH],
  );
  assert.equal(events[5].message.code, 'access_denied');
  const p = make();
  p.receiveData(Buffer.from(text + '\n'));
  assert.equal(p.pendingCount, 1, 'the pending request is still waiting');
});

test('late, unknown and foreign ids are told apart and match nothing', () => {
  const p = proto();
  const entry = {};
  p.encodeRequest('/a', null, entry);
  p.encodeRequest('/b', null, {});
  p.expire('rq0', 100);
  assert.equal(p.pendingCount, 2);
  const events = p.receiveData(
    Buffer.from('{"ipcReqID":"rq0","data":"late"}\n{"ipcReqID":"rq9","data":0}\n{"ipcReqID":1,"data":0}\n{"ipcReqID":true}\n'),
  );
  assert.deepEqual(
    events.map((e) => e.kind),
    [LATE, UNKNOWN, UNKNOWN, UNKNOWN],
  );
  // A late answer is dropped once; the id is then forgotten.
  assert.equal(p.pendingCount, 1);
  assert.equal(p.receiveData(Buffer.from('{"ipcReqID":"rq0"}\n'))[0].kind, UNKNOWN);
});

test('timed-out ids are forgotten when their time comes', () => {
  const p = proto();
  for (let i = 0; i < 3; i++) p.encodeRequest('/a', null, {});
  p.expire('rq0', 10);
  p.expire('rq1', 20);
  assert.equal(p.sweep(5), 10);
  assert.equal(p.sweep(15), 20);
  assert.equal(p.pendingCount, 2);
  assert.equal(p.sweep(25), null);
  assert.equal(p.pendingCount, 1);
});

test('blank lines and lines that are not objects produce nothing', () => {
  const events = receive(proto, '\n \t\r\n[1,2]\n"x"\n42\nhello\n');
  assert.deepEqual(events, []);
});

test('a malformed line fails nothing, even one carrying a pending id (FRAME-7)', () => {
  const make = () => {
    const p = proto();
    p.encodeRequest('/a', null, {});
    return p;
  };
  const events = receive(make, '{"ipcReqID":"rq0","data":}\n{not json\n  {"ipcReqID":"rq0","data":"ok"}\n');
  assert.deepEqual(
    events.map((e) => e.kind),
    [MALFORMED, MALFORMED, ANSWER],
  );
  assert.equal(events[0].id, 'rq0');
  assert.equal(events[2].message.data, 'ok');
});

test('a response nested 100,000 levels deep is malformed, not a crash', () => {
  const p = proto();
  p.encodeRequest('/a', null, {});
  const deep = '{"ipcReqID":"rq0","data":' + '['.repeat(100000) + ']'.repeat(100000) + '}\n';
  const events = p.receiveData(Buffer.from(deep));
  assert.ok(events.length === 1 && (events[0].kind === MALFORMED || events[0].kind === ANSWER));
});

test('an oversize answer names the pending request whose id starts the line (CORR-6)', () => {
  const p = proto({ maxMessageBytes: 1000 });
  const owner = { n: 0 };
  p.encodeRequest('/a', null, owner);
  p.encodeRequest('/b', null, { n: 1 });
  const line = '{"ipcReqID":"rq0","data":"' + 'x'.repeat(5000) + '"}\n';
  const events = p.receiveData(Buffer.from(line));
  assert.equal(events.length, 1);
  assert.equal(events[0].kind, OVERSIZE);
  assert.equal(events[0].entry, owner);
  assert.equal(events[0].id, 'rq0');
  assert.equal(events[0].limit, 1000);
  assert.equal(p.pending.has('rq0'), false);
});

test('an oversize line without a pending id names no request', () => {
  for (const start of ['{"data":"', '{"ipcReqID":"rq77","data":"', '{"ipcReqID":null,"data":"']) {
    const p = proto({ maxMessageBytes: 100 });
    p.encodeRequest('/a', null, {});
    const events = p.receiveData(Buffer.from(start + 'x'.repeat(500) + '"}\n'));
    assert.equal(events[0].kind, OVERSIZE);
    assert.equal(events[0].entry, null);
  }
});

test('recoverId reads a string or number id from the head of a line', () => {
  assert.equal(recoverId(Buffer.from('{"uri":"/x", "ipcReqID" : "rq\\"5","data":[')), 'rq"5');
  assert.equal(recoverId(Buffer.from('{"ipcReqID":12,"data":[')), 12);
  assert.equal(recoverId(Buffer.from('{"ipcReqID":0,"data":[')), null);
  assert.equal(recoverId(Buffer.from('{"ipcReqID":"","data":[')), null);
  assert.equal(recoverId(Buffer.from('{"data":[1,2')), null);
  assert.equal(recoverId(Buffer.from('{"data":"' + 'x'.repeat(5000) + '","ipcReqID":"rq1"}')), null);
});

test('recoverId takes only the first ipcReqID, and only a value complete within 4096 bytes', () => {
  assert.equal(recoverId(Buffer.from('{"ipcReqID":null,"data":{"ipcReqID":"rq5"},')), null);
  assert.equal(recoverId(Buffer.from('{"ipcReqID":true,"data":{"ipcReqID":"rq5"},')), null);
  assert.equal(recoverId(Buffer.from('{"data":{"ipcReqID":"inner"},"ipcReqID":"rq5"')), 'inner');
  const pad = '{"uri":"/x","pad":"' + 'p'.repeat(4059) + '","ipcReqID":';
  assert.equal(recoverId(Buffer.from(pad + '"rq12345"}')), null); // the string cut at byte 4096
  assert.equal(recoverId(Buffer.from(pad + '12345}').subarray(0, 4096 + 2)), null); // 12 may go on
  assert.equal(recoverId(Buffer.from('{"ipcReqID":12')), null);
  assert.equal(recoverId(Buffer.from('{"ipcReqID":12}')), 12);
});

test('isMessageLine: the first character other than space, tab or CR is "{"', () => {
  assert.equal(isMessageLine('{}'), true);
  assert.equal(isMessageLine(' \t\r{'), true);
  assert.equal(isMessageLine(''), false);
  assert.equal(isMessageLine('  '), false);
  assert.equal(isMessageLine(' [{'), false);
});

test('responseOutcome: data as it came; a top-level error is always the error', () => {
  assert.deepEqual(responseOutcome({ ipcReqID: 'rq0', data: { a: 1 } }, false, null), [null, { a: 1 }]);
  assert.deepEqual(responseOutcome({ ipcReqID: 'rq0' }, false, null), [null, undefined]);
  const topLevel = { ipcReqID: 'rq0', code: 'no_uri', message: 'Missing required uri parameter from request' };
  for (const codeToErr of [false, true]) {
    assert.deepEqual(responseOutcome(topLevel, codeToErr, null), [topLevel, undefined]);
  }
});

test('responseOutcome: an error in data is data, or the error with codeToErr', () => {
  const data = { code: 'no_handler_found', message: 'No handler found for /x' };
  const message = { ipcReqID: 'rq0', data };
  assert.deepEqual(responseOutcome(message, false, null), [null, data]);
  const [err, passed] = responseOutcome(message, true, null);
  assert.equal(err, data);
  assert.equal(passed, data);
  assert.deepEqual(responseOutcome({ ipcReqID: 'rq0', data: { code: 0 } }, true, null), [null, { code: 0 }]);
});

test('responseOutcome: messageTransform decides, and its failures are errors', () => {
  const message = { ipcReqID: 'rq0', data: { ok: false, why: 'x' } };
  const transform = (msg) => (msg.data.ok ? [null, msg.data] : [new Error(msg.data.why), null]);
  const [err] = responseOutcome(message, false, transform);
  assert.equal(err.message, 'x');
  assert.deepEqual(responseOutcome({ ipcReqID: 'rq0', code: 'no_uri' }, false, () => [null, 'fine']), [null, 'fine']);
  assert.ok(responseOutcome(message, false, () => 'not an array')[0] instanceof TypeError);
  const boom = new Error('boom');
  assert.equal(
    responseOutcome(message, false, () => {
      throw boom;
    })[0],
    boom,
  );
});
