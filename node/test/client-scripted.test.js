'use strict';
// The client over real sockets, against scripted peers that do what the
// reference server will not do on demand: close mid-request, half-close,
// push, answer late or with unknown ids, send oversize or malformed lines.

const assert = require('node:assert/strict');
const path = require('node:path');
const { test } = require('node:test');
const IPCClient = require('..');
const { ErrorCode, IPCError } = IPCClient;
const { assertCode, scriptedPeer, sendResult, tmpDir, waitFor, within, WAIT_MS } = require('./support');

// Long enough that a test passing on it proves the client did not wait for it.
const LONG = 60000;

async function connected(t, peer, options = {}, logger = null) {
  const client = new IPCClient(peer.path, logger, { requestTimeout: LONG, ...options });
  t.after(() => client.close());
  await client.connect();
  return client;
}

test('require returns the class, also exported by name', () => {
  assert.equal(typeof IPCClient, 'function');
  assert.equal(IPCClient.IPCClient, IPCClient);
  assert.ok(new IPCClient('/nowhere') instanceof require('node:events').EventEmitter);
});

test('requests go out as the original writes them, ids counting up', async (t) => {
  const peer = await scriptedPeer(t);
  const client = await connected(t, peer);
  client.send('/myapp/status', { verbose: true }, () => {});
  client.send('/myapp/flush', () => {});
  const conn = await peer.connection();
  await conn.request(1);
  const agent = 'Node/IPCClient' + process.cwd();
  assert.equal(
    conn.raw[0],
    JSON.stringify({ ipcReqID: 'rq0', uri: '/myapp/status', data: { verbose: true }, pid: process.pid, userAgent: agent }),
  );
  assert.equal(conn.raw[1], JSON.stringify({ ipcReqID: 'rq1', uri: '/myapp/flush', pid: process.pid, userAgent: agent }));
});

test('callback and promise forms give the same answer', async (t) => {
  const peer = await scriptedPeer(t);
  const client = await connected(t, peer);
  const viaCallback = sendResult(client, '/a', 1);
  const viaPromise = client.send('/a', 2);
  const conn = await peer.connection();
  conn.answer(await conn.request(1), 'second');
  conn.answer(await conn.request(0), 'first');
  assert.deepEqual(await viaCallback, [null, 'first']);
  assert.equal(await viaPromise, 'second');
});

test('send before connect fails with no_open_stream; a missing socket with ipc_socket_err', async (t) => {
  const where = path.join(tmpDir(t), 'missing.sock');
  const logged = [];
  const logger = { debug() {}, error: (code, msg) => logged.push([code, msg]) };
  const client = new IPCClient(where, logger);
  const [err] = await sendResult(client, '/a', {});
  assertCode(err, ErrorCode.NO_OPEN_STREAM);
  await assert.rejects(client.connect(), (e) => {
    assertCode(e, ErrorCode.SOCKET_ERR);
    assert.equal(e.cause.code, 'ENOENT');
    return true;
  });
  assert.equal(logged[0][0], 'ipc_socket_err');
  assert.match(logged[0][1], /missing\.sock/);
});

test('the server closing mid-request fails every pending request at once', async (t) => {
  const peer = await scriptedPeer(t);
  const client = await connected(t, peer, { autoReconnect: 0 });
  const pending = [sendResult(client, '/a', 1), sendResult(client, '/b', 2), sendResult(client, '/c', 3)];
  const conn = await peer.connection();
  await conn.request(2);
  conn.write('{"ipcReqID":"rq1","data":"done"}\n{"ipcReqID":"rq0","da');
  await waitFor(() => client.pendingCount === 2, 'the first answer');
  conn.socket.destroy();
  const results = await within(Promise.all(pending), WAIT_MS, 'the pending requests');
  assert.deepEqual(results[1], [null, 'done']);
  assertCode(results[0][0], ErrorCode.SERVER_CLOSED);
  assertCode(results[2][0], ErrorCode.SERVER_CLOSED);
  assert.equal(client.pendingCount, 0);
  // autoReconnect 0: nothing more is sent until connect() is called again.
  assertCode((await sendResult(client, '/d', 4))[0], ErrorCode.NO_OPEN_STREAM);
  await client.connect();
  const next = sendResult(client, '/e', 5);
  const conn2 = await peer.connection(1);
  conn2.answer(await conn2.request(0), 'again');
  assert.deepEqual(await next, [null, 'again']);
  assert.equal(conn2.lines[0].ipcReqID, 'rq3', 'ids go on across connections');
});

test('a half-close by the server ends the connection: pending requests fail at once', async (t) => {
  const peer = await scriptedPeer(t, { allowHalfOpen: true });
  const client = await connected(t, peer, { autoReconnect: 0 });
  const pending = sendResult(client, '/a', 1);
  const conn = await peer.connection();
  await conn.request(0);
  // FIN: the server stops writing but still reads, as the original's socket.end().
  conn.socket.end();
  const [err] = await pending;
  assertCode(err, ErrorCode.SERVER_CLOSED);
  await conn.untilEnded();
  assert.equal(client.connected, false);
});

test('after a server close the client reconnects by itself; a send made meanwhile waits for it', async (t) => {
  const peer = await scriptedPeer(t);
  const client = await connected(t, peer, { autoReconnect: 100 });
  const events = [];
  client.on('disconnect', (err) => events.push(['disconnect', err.code]));
  client.on('connect', () => events.push(['connect']));
  const first = sendResult(client, '/a', 1);
  const conn = await peer.connection();
  await conn.request(0);
  await peer.stop();
  assertCode((await first)[0], ErrorCode.SERVER_CLOSED);
  // Sent while there is no server: it waits for the connection, within its deadline.
  const during = sendResult(client, '/b', 2);
  await new Promise((resolve) => setTimeout(resolve, 300));
  await peer.listenAgain();
  const conn2 = await peer.connection(1);
  const request = await conn2.request(0);
  assert.equal(request.ipcReqID, 'rq1');
  conn2.answer(request, 'B');
  assert.deepEqual(await during, [null, 'B']);
  assert.deepEqual(events, [['disconnect', 'ipc_server_closed'], ['connect']]);
});

test('a request waiting for a connection that does not come fails at its deadline', async (t) => {
  const peer = await scriptedPeer(t);
  const client = await connected(t, peer, { autoReconnect: 50 });
  await peer.stop();
  await waitFor(() => !client.connected, 'the drop');
  client.options.requestTimeout = 200;
  const [err] = await sendResult(client, '/a', 1);
  assertCode(err, ErrorCode.REQUEST_TIMEOUT);
  assert.match(err.message, /no connection/);
  assert.equal(client.pendingCount, 0);
});

test('pushes are emitted as data events, a top-level error with a null id too (ERR-7)', async (t) => {
  const peer = await scriptedPeer(t);
  const client = await connected(t, peer);
  const pushes = [];
  client.on('data', (message) => pushes.push(message));
  const pending = sendResult(client, '/a', 1);
  const conn = await peer.connection();
  await conn.request(0);
  conn.write('{"data":{"event":"reload"}}\n');
  conn.write('{"ipcReqID":null,"code":"server_busy","message":"too many"}\n');
  await waitFor(() => pushes.length === 2, 'two pushes');
  assert.equal(client.pendingCount, 1, 'the request still waits');
  conn.write('{"ipcReqID":"rq0","data":"A"}\n');
  assert.deepEqual(await pending, [null, 'A']);
  assert.deepEqual(pushes, [{ data: { event: 'reload' } }, { ipcReqID: null, code: 'server_busy', message: 'too many' }]);
});

test('a timed-out request fails with request_timeout; its late answer is dropped quietly', async (t) => {
  const peer = await scriptedPeer(t);
  const client = await connected(t, peer, { requestTimeout: 100 });
  const [err] = await sendResult(client, '/slow', 1);
  assertCode(err, ErrorCode.REQUEST_TIMEOUT);
  assert.equal(err.uri, '/slow');
  assert.equal(err.timeout, 100);
  assert.equal(client.pendingCount, 1, 'the id is remembered for its late answer');
  const conn = await peer.connection();
  conn.answer(await conn.request(0), 'late');
  await waitFor(() => client.getStats().lateAnswers === 1, 'the late answer');
  assert.equal(client.pendingCount, 0);
  client.options.requestTimeout = LONG;
  const next = sendResult(client, '/next', 2);
  const request = await conn.request(1);
  assert.equal(request.ipcReqID, 'rq1');
  conn.answer(request, 'mine');
  assert.deepEqual(await next, [null, 'mine']);
});

test('a timed-out id is forgotten after expireRequest', async (t) => {
  const peer = await scriptedPeer(t);
  const client = await connected(t, peer, { requestTimeout: 50, expireRequest: 100 });
  assertCode((await sendResult(client, '/slow', 1))[0], ErrorCode.REQUEST_TIMEOUT);
  await waitFor(() => client.pendingCount === 0, 'the id to be forgotten');
});

test('answers with unknown ids and malformed lines are ignored; the real answer follows', async (t) => {
  const peer = await scriptedPeer(t);
  const client = await connected(t, peer);
  const pending = sendResult(client, '/a', 1);
  const conn = await peer.connection();
  await conn.request(0);
  conn.write('{"ipcReqID":"rq99","data":"not yours"}\n{"ipcReqID":"rq0","data":}\n[1]\n\n');
  conn.write('{"ipcReqID":5,"data":"no"}\n{"ipcReqID":"rq0","data":"yes"}\r\n');
  assert.deepEqual(await pending, [null, 'yes']);
  const stats = client.getStats();
  assert.equal(stats.unknownAnswers, 2);
  assert.equal(stats.malformed, 1);
});

test('an answer over maxMessageBytes fails its request as too large; the others as closed', async (t) => {
  const peer = await scriptedPeer(t);
  const limit = 64 * 1024;
  const client = await connected(t, peer, { maxMessageBytes: limit, autoReconnect: 0 });
  const a = sendResult(client, '/a', 1);
  const b = sendResult(client, '/b', 2);
  const conn = await peer.connection();
  await conn.request(1);
  // Written in pieces, never ended by an LF: the client must not wait for the end.
  conn.write('{"ipcReqID":"rq0","data":"');
  for (let i = 0; i < 4; i++) conn.write('x'.repeat(limit / 2));
  const [errA] = await a;
  assertCode(errA, ErrorCode.MESSAGE_TOO_LARGE);
  assert.equal(errA.limit, limit);
  assert.ok(errA.size > limit);
  assert.equal(errA.uri, '/a');
  assertCode((await b)[0], ErrorCode.SERVER_CLOSED);
  await conn.untilEnded();
});

test('an oversize line whose id cannot be read fails every pending request as too large', async (t) => {
  const peer = await scriptedPeer(t);
  const client = await connected(t, peer, { maxMessageBytes: 1024, autoReconnect: 0 });
  const a = sendResult(client, '/a', 1);
  const b = sendResult(client, '/b', 2);
  const conn = await peer.connection();
  await conn.request(1);
  // The id comes after the first 4096 bytes (CORR-6 looks no further).
  conn.write('{"data":"' + 'y'.repeat(5000) + '","ipcReqID":"rq0"}\n');
  assertCode((await a)[0], ErrorCode.MESSAGE_TOO_LARGE);
  assertCode((await b)[0], ErrorCode.MESSAGE_TOO_LARGE);
});

test('close() fails pending requests with ipc_client_closed and stops reconnecting', async (t) => {
  const peer = await scriptedPeer(t);
  const client = await connected(t, peer, { autoReconnect: 50 });
  const pending = sendResult(client, '/a', 1);
  const conn = await peer.connection();
  await conn.request(0);
  await client.close();
  const [err] = await pending;
  assert.ok(err instanceof IPCError);
  assertCode(err, ErrorCode.CLIENT_CLOSED);
  await conn.untilEnded();
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(peer.connections.length, 1, 'no reconnection after close()');
  assert.equal(client.pendingCount, 0);
});

test('a throwing callback does not keep the answers after it from their callbacks', async (t) => {
  const peer = await scriptedPeer(t);
  const client = await connected(t, peer);
  const boom = new Error('callback failure');
  const caught = new Promise((resolve) => {
    // node:test reports uncaught exceptions; this one is expected.
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.once('uncaughtException', (err) => {
      for (const listener of listeners) process.on('uncaughtException', listener);
      resolve(err);
    });
  });
  client.send('/a', 1, () => {
    throw boom;
  });
  const second = sendResult(client, '/b', 2);
  const conn = await peer.connection();
  await conn.request(1);
  conn.write('{"ipcReqID":"rq0","data":1}\n{"ipcReqID":"rq1","data":2}\n');
  assert.deepEqual(await second, [null, 2]);
  assert.equal(await within(caught, WAIT_MS, 'the rethrown exception'), boom);
});

test('codeToErr and messageTransform act on answers as in the original', async (t) => {
  const peer = await scriptedPeer(t);
  const plain = await connected(t, peer);
  const strict = await connected(t, peer, { codeToErr: true });
  const transformed = await connected(t, peer, { messageTransform: (msg) => [null, { wrapped: msg.data }] });
  const inData = { code: 'no_handler_found', message: 'No handler found for /x' };
  const results = [plain, strict, transformed].map((client) => sendResult(client, '/x', {}));
  for (let n = 0; n < 3; n++) {
    const conn = await peer.connection(n);
    conn.answer(await conn.request(0), inData);
  }
  const [a, b, c] = await Promise.all(results);
  assert.deepEqual(a, [null, inData]);
  assert.deepEqual(b, [inData, inData]);
  assert.deepEqual(c, [null, { wrapped: inData }]);
});

test('options are checked when the client is made', () => {
  assert.throws(() => new IPCClient(''), TypeError);
  assert.throws(() => new IPCClient('/x', null, { requestTimeout: 0 }), RangeError);
  assert.throws(() => new IPCClient('/x', null, { maxMessageBytes: 1.5 }), RangeError);
  assert.throws(() => new IPCClient('/x', null, { autoReconnect: -1 }), RangeError);
  assert.throws(() => new IPCClient('/x', null, { messageTransform: 'yes' }), TypeError);
  assert.throws(() => new IPCClient('/x', { requestTimeout: 5 }), TypeError, 'options given as the logger');
  const client = new IPCClient('/x');
  assert.deepEqual(
    {
      requestTimeout: client.options.requestTimeout,
      expireRequest: client.options.expireRequest,
      autoReconnect: client.options.autoReconnect,
      codeToErr: client.options.codeToErr,
      messageTransform: client.options.messageTransform,
      logStatsInterval: client.options.logStatsInterval,
      maxMessageBytes: client.options.maxMessageBytes,
      userAgent: client.options.userAgent,
    },
    {
      requestTimeout: 10000,
      expireRequest: 10000,
      autoReconnect: 1000,
      codeToErr: false,
      messageTransform: null,
      logStatsInterval: null,
      maxMessageBytes: 64 * 1024 * 1024,
      userAgent: 'Node/IPCClient' + process.cwd(),
    },
  );
});

test('logStatsInterval logs the counters of each interval through the logger', async (t) => {
  const peer = await scriptedPeer(t);
  const logged = [];
  const logger = { debug: (level, msg, data) => logged.push([level, msg, data]), error() {} };
  const client = await connected(t, peer, { logStatsInterval: 50 }, logger);
  const pending = sendResult(client, '/a', 1);
  const conn = await peer.connection();
  conn.answer(await conn.request(0), 'ok');
  await pending;
  await waitFor(() => logged.some(([, msg, data]) => msg === 'IPC client stats' && data.responses === 1), 'stats');
});
