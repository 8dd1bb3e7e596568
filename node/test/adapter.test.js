'use strict';
// The conformance adapter's own contract (spec/ADAPTER.md): what the
// conformance suite relies on, and the introspect command it may not use yet.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { test } = require('node:test');
const { scriptedPeer, waitFor, within, WAIT_MS } = require('./support');

const ADAPTER = path.join(__dirname, '..', 'adapter.js');

function startAdapter(t) {
  const child = spawn(process.execPath, [ADAPTER], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  const answers = new Map();
  let rest = '';
  child.stdout.on('data', (chunk) => {
    rest += chunk;
    let end;
    while ((end = rest.indexOf('\n')) >= 0) {
      const answer = JSON.parse(rest.slice(0, end));
      rest = rest.slice(end + 1);
      answers.set(answer.id, answer);
    }
  });
  let next = 0;
  return {
    child,
    command(body) {
      const id = next++;
      child.stdin.write(JSON.stringify({ id, ...body }) + '\n');
      return id;
    },
    async answer(id) {
      await waitFor(() => answers.has(id), `answer ${id}`);
      return answers.get(id);
    },
    async run(body) {
      return this.answer(this.command(body));
    },
  };
}

test('adapter: start lists every capability; an unknown command is unsupported', async (t) => {
  const adapter = startAdapter(t);
  const start = await adapter.run({ cmd: 'start' });
  assert.equal(start.ok, true);
  assert.equal(start.result.language, 'javascript');
  assert.deepEqual(start.result.capabilities.sort(), [
    'auto_reconnect',
    'code_to_err',
    'concurrent',
    'introspect',
    'max_message_bytes',
    'push',
    'reconnect',
    'timeout',
  ]);
  const unknown = await adapter.run({ cmd: 'fly' });
  assert.deepEqual([unknown.ok, unknown.error.kind], [false, 'unsupported']);
});

test('adapter: introspect counts a timed-out id until expire_request_ms passes', async (t) => {
  const peer = await scriptedPeer(t);
  const adapter = startAdapter(t);
  await adapter.run({ cmd: 'start' });
  // Long enough that a loaded machine still sees the id remembered, short enough to wait for.
  const options = { request_timeout_ms: 10000, expire_request_ms: 3000 };
  assert.equal((await adapter.run({ cmd: 'connect', socket: peer.path, options })).ok, true);
  const waiting = adapter.command({ cmd: 'send', uri: '/slow', data: {}, timeout_ms: 50 });
  const conn = await peer.connection();
  await conn.request(0);
  assert.equal((await adapter.answer(waiting)).error.kind, 'timeout');
  assert.deepEqual((await adapter.run({ cmd: 'introspect' })).result, { pending: 1 });
  let pending = 1;
  async function poll() {
    while (pending !== 0) {
      pending = (await adapter.run({ cmd: 'introspect' })).result.pending;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  await within(poll(), WAIT_MS, 'introspect to report 0');
});

test('adapter: code_to_err reports an error in data as kind remote', async (t) => {
  const peer = await scriptedPeer(t);
  const adapter = startAdapter(t);
  await adapter.run({ cmd: 'start' });
  const options = { code_to_err: true };
  assert.equal((await adapter.run({ cmd: 'connect', socket: peer.path, options })).ok, true);
  const sent = adapter.command({ cmd: 'send', uri: '/x', data: {}, timeout_ms: 10000 });
  const conn = await peer.connection();
  const request = await conn.request(0);
  const data = { code: 'no_handler_found', message: 'No handler found for /x' };
  conn.write(JSON.stringify({ ipcReqID: request.ipcReqID, data }) + '\n');
  assert.deepEqual((await adapter.answer(sent)).error, { kind: 'remote', ...data });
});

test('adapter: a send without data sends no data member; EOF on stdin exits 0', async (t) => {
  const peer = await scriptedPeer(t);
  const adapter = startAdapter(t);
  await adapter.run({ cmd: 'start' });
  await adapter.run({ cmd: 'connect', socket: peer.path, options: {} });
  const sent = adapter.command({ cmd: 'send', uri: '/a', timeout_ms: 10000 });
  const conn = await peer.connection();
  const request = await conn.request(0);
  assert.equal('data' in request, false);
  conn.write(JSON.stringify({ ipcReqID: request.ipcReqID }) + '\n');
  assert.deepEqual((await adapter.answer(sent)).result, { data: null });
  const exited = new Promise((resolve) => adapter.child.once('exit', resolve));
  adapter.child.stdin.end();
  assert.equal(await within(exited, WAIT_MS, 'the adapter to exit'), 0);
  await conn.untilEnded();
});
