'use strict';
// The client against the reference server (`make setup` builds it in .venv).
// Only what both the reference server and the original answer alike is
// checked here; the scripted peers cover the rest.

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const path = require('node:path');
const { after, before, describe, test } = require('node:test');
const IPCClient = require('..');
const { Cleanup, haveReferenceServer, referenceServer, within, WAIT_MS } = require('./support');

const ECHO = '/ipcserver/test/echo';
const DELAY = '/ipcserver/test/delay';

describe('against the reference server', { skip: !haveReferenceServer() && 'run make setup first' }, () => {
  const cleanup = new Cleanup();
  let server;
  let client;

  before(async () => {
    server = await referenceServer(cleanup);
    client = new IPCClient(server.path, null, { requestTimeout: 60000 });
    cleanup.after(() => client.close());
    await client.connect();
  });
  after(() => cleanup.run());

  test('echo gives back data of every JSON type', async () => {
    const values = [{ a: [1, 2.5, null, true] }, [], {}, 'text é😀\u2028', 0, -12.5, false, null];
    for (const value of values) assert.deepEqual(await client.send(ECHO, value), value);
  });

  for (const mib of [1, 4, 16]) {
    test(`a ${mib} MiB echo comes back whole`, async () => {
      const blob = 'é'.repeat((mib * 1024 * 1024) / 2);
      const answer = await within(client.send(ECHO, { blob }), WAIT_MS * 4, `${mib} MiB echo`);
      assert.equal(answer.blob, blob);
    });
  }

  test('many requests in flight at once each get their own answer', async () => {
    const sends = [];
    for (let i = 0; i < 2000; i++) sends.push(client.send(ECHO, { i }));
    const answers = await within(Promise.all(sends), WAIT_MS * 2, '2000 answers');
    answers.forEach((answer, i) => assert.deepEqual(answer, { i }));
  });

  test('a slow answer does not hold up a fast one, and each reaches its request', async () => {
    const slow = client.send(DELAY, { delay: 200 });
    const fast = client.send(ECHO, 'fast');
    assert.deepEqual(await Promise.all([slow, fast]), [{ delay: 200 }, 'fast']);
  });

  test('a top-level error is the error: the whole message, as the original passes it', async () => {
    await assert.rejects(client.send('', {}), (err) => {
      assert.equal(err.code, 'no_uri');
      assert.equal(err.message, 'Missing required uri parameter from request');
      assert.match(err.ipcReqID, /^rq\d+$/);
      return true;
    });
  });

  test('an error in data is data, unless codeToErr', async () => {
    const expected = { code: 'no_handler_found', message: 'No handler found for /myapp/nope' };
    assert.deepEqual(await client.send('/myapp/nope', {}), expected);
    const strict = new IPCClient(server.path, null, { codeToErr: true });
    cleanup.after(() => strict.close());
    await strict.connect();
    await assert.rejects(strict.send('/myapp/nope', {}), (err) => {
      assert.deepEqual(err, expected);
      return true;
    });
  });

  test('nothing stays pending once every answer is in', () => {
    assert.equal(client.pendingCount, 0);
  });

  test('a script written for the original gets 1 MiB and 4 MiB echoes back', async () => {
    const script = path.join(__dirname, 'fixtures', 'original-script.js');
    const { stdout } = await within(
      new Promise((resolve, reject) =>
        execFile(process.execPath, [script, server.path], (err, out, errOut) =>
          err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve({ stdout: out }),
        ),
      ),
      WAIT_MS * 2,
      'the script',
    );
    assert.equal(stdout, '1 MiB echo ok (1048576 bytes)\n4 MiB echo ok (4194304 bytes)\n');
  });
});
