'use strict';
/**
 * What the tests share: temporary directories, the reference server, and
 * scripted peers (small net.Servers that do what a test tells them).
 */

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..');
const PIXL_IPC = path.join(REPO, '.venv', 'bin', 'pixl-ipc');
// Generous: the machine may be loaded; a condition that holds ends the wait at once.
const WAIT_MS = 15000;

/**
 * Clean-ups to run at the end of a suite: stands in for a test context's
 * `after` where one server serves a whole describe block.
 */
class Cleanup {
  constructor() {
    this._steps = [];
  }

  after(step) {
    this._steps.push(step);
  }

  async run() {
    for (const step of this._steps.splice(0).reverse()) await step();
  }
}

/** A temporary directory removed when the test (or `t`, a Cleanup) ends. */
function tmpDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxn-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Reject if `promise` does not settle within `ms`. */
function within(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Wait until `condition()` is true. */
async function waitFor(condition, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The callback-style result of a send, as [err, data], with a deadline. */
function sendResult(client, uri, data, ms = WAIT_MS) {
  return within(
    new Promise((resolve) => client.send(uri, data, (err, result) => resolve([err, result]))),
    ms,
    `answer to ${uri}`,
  );
}

/** One connection accepted by a scripted peer: lines in, text out. */
class PeerConnection {
  constructor(socket) {
    this.socket = socket;
    this.lines = [];
    this.raw = [];
    this.ended = false;
    this.closed = false;
    this._waiters = [];
    let rest = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      rest = Buffer.concat([rest, chunk]);
      let end;
      while ((end = rest.indexOf(10)) >= 0) {
        const line = rest.subarray(0, end).toString('utf8');
        rest = rest.subarray(end + 1);
        this.raw.push(line);
        this.lines.push(JSON.parse(line));
      }
      this._wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this._wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this._wake();
    });
    socket.on('error', () => {});
  }

  _wake() {
    for (const wake of this._waiters.splice(0)) wake();
  }

  _until(condition, what) {
    return within(
      new Promise((resolve) => {
        const check = () => (condition() ? resolve() : this._waiters.push(check));
        check();
      }),
      WAIT_MS,
      what,
    );
  }

  /** The n-th request received (0-based), once it has arrived. */
  async request(n = 0) {
    await this._until(() => this.lines.length > n, `request ${n}`);
    return this.lines[n];
  }

  /** Wait until the client closes its side. */
  async untilEnded() {
    await this._until(() => this.ended || this.closed, 'the client to end the connection');
  }

  write(text) {
    this.socket.write(text);
  }

  /** Answer a request with `data`. */
  answer(request, data) {
    this.write(JSON.stringify({ ipcReqID: request.ipcReqID, data }) + '\n');
  }
}

/**
 * A scripted peer on a temporary socket. Each accepted connection becomes a
 * PeerConnection; `connection(n)` waits for the n-th.
 */
async function scriptedPeer(t, options = {}) {
  const dir = tmpDir(t);
  const socketPath = path.join(dir, 's.sock');
  const connections = [];
  const waiters = [];
  const server = net.createServer({ allowHalfOpen: Boolean(options.allowHalfOpen) }, (socket) => {
    connections.push(new PeerConnection(socket));
    for (const wake of waiters.splice(0)) wake();
  });
  await new Promise((resolve) => server.listen(socketPath, resolve));
  const peer = {
    path: socketPath,
    server,
    connections,
    connection(n = 0) {
      return within(
        new Promise((resolve) => {
          const check = () => (connections.length > n ? resolve(connections[n]) : waiters.push(check));
          check();
        }),
        WAIT_MS,
        `connection ${n}`,
      );
    },
    async stop() {
      for (const conn of connections) conn.socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
    async listenAgain() {
      await new Promise((resolve) => server.listen(socketPath, resolve));
    },
  };
  t.after(() => {
    for (const conn of connections) conn.socket.destroy();
    server.close();
  });
  return peer;
}

/** True when the reference server can be started (`make setup` has run). */
function haveReferenceServer() {
  return fs.existsSync(PIXL_IPC);
}

function canConnect(socketPath) {
  return new Promise((resolve) => {
    const socket = net.createConnection({ path: socketPath });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Start the reference server on a temporary socket; it is stopped when the
 * test (or `t`, a Cleanup) ends.
 * @returns {Promise<{path: string, process: import('child_process').ChildProcess}>}
 */
async function referenceServer(t, extraArgs = []) {
  const dir = tmpDir(t);
  const socketPath = path.join(dir, 's.sock');
  const child = spawn(PIXL_IPC, ['serve', '--socket', socketPath, ...extraArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  t.after(() => child.kill('SIGKILL'));
  const deadline = Date.now() + 30000;
  while (!(await canConnect(socketPath))) {
    if (child.exitCode !== null) throw new Error(`the reference server exited: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`the reference server did not listen: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { path: socketPath, process: child };
}

/** Assert that `err` is the client's own error with this code. */
function assertCode(err, code) {
  assert.ok(err instanceof Error, `expected an Error with code ${code}, got ${JSON.stringify(err)}`);
  assert.equal(err.code, code, err.message);
}

module.exports = {
  Cleanup,
  REPO,
  WAIT_MS,
  assertCode,
  haveReferenceServer,
  referenceServer,
  scriptedPeer,
  sendResult,
  tmpDir,
  waitFor,
  within,
};
