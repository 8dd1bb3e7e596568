#!/usr/bin/env node
// A complete minimal pixl-ipc client in Node.js, and its conformance adapter
// (spec/ADAPTER.md): JSON commands on stdin, one JSON answer per line on stdout.
// Only `net` and `readline`. Comments cite the rules of spec/PROTOCOL.md.
'use strict';
const net = require('net'), readline = require('readline');
const fail = (kind, message, extra = {}) => Object.assign(new Error(message), { info: { kind, message, ...extra } });

class Client {
  constructor(path, options) {
    Object.assign(this, { path, timeoutMs: options.request_timeout_ms ?? 10000, counter: 0, pushes: [],
      userAgent: options.user_agent ?? 'Node/MinimalClient' + process.cwd(), sock: null, connected: false });
    this.pending = new Map(); // ipcReqID -> {resolve, reject}
  }
  connect() {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(this.path);
      let chunks = [];
      sock.once('connect', () => { this.sock = sock; this.connected = true; resolve(); });
      sock.on('error', (err) => { if (this.sock !== sock) reject(fail('connect', err.message)); }); // LIFE-1
      sock.on('data', (chunk) => {
        let start = 0, nl;
        while ((nl = chunk.indexOf(10, start)) >= 0) { // FRAME-3: every line of a read, in order
          chunks.push(chunk.subarray(start, nl));
          this.onLine(Buffer.concat(chunks).toString('utf8'));
          [chunks, start] = [[], nl + 1];
        }
        if (start < chunk.length) chunks.push(chunk.subarray(start)); // a line split over reads
      });
      sock.on('close', () => {
        if (this.sock === sock) this.sock = null;
        this.failAll(fail('closed', 'the connection ended')); // LIFE-3: at once, not at the timeout
      });
    });
  }
  onLine(line) {
    if (line.endsWith('\r')) line = line.slice(0, -1); // FRAME-2
    if (!line.trimStart().startsWith('{')) return; // FRAME-4, FRAME-5: not a message
    let msg; try { msg = JSON.parse(line); } catch { return; } // FRAME-7: a malformed message is ignored
    if (msg.ipcReqID === undefined || msg.ipcReqID === null) { this.pushes.push(msg.data ?? null); return; } // PUSH-1/2
    const waiter = this.pending.get(msg.ipcReqID); // CORR-2: by id, never by order
    if (!waiter) return; // CORR-3: a late or unknown answer is dropped
    this.pending.delete(msg.ipcReqID);
    if (msg.code) waiter.reject(fail('remote', String(msg.message ?? ''), { code: String(msg.code) })); // ERR-4/6
    else waiter.resolve(msg.data === undefined ? null : msg.data); // RESP-3, RESP-4
  }
  async send(uri, data, timeoutMs) {
    if (!this.sock && this.connected) await this.connect(); // LIFE-4: the next send connects again
    if (!this.sock) throw fail('closed', 'not connected');
    const id = 'rq' + this.counter++; // CORR-1: a counter never reuses an id
    const line = JSON.stringify({ ipcReqID: id, uri, data, pid: process.pid, userAgent: this.userAgent }) + '\n';
    return new Promise((resolve, reject) => {
      const done = (settle) => (value) => { clearTimeout(timer); settle(value); };
      const timer = setTimeout(() => { this.pending.delete(id); reject(fail('timeout', 'no answer')); },
        timeoutMs ?? this.timeoutMs); // CORR-5: the id stays used (the counter moves on); a late answer is dropped
      this.pending.set(id, { resolve: done(resolve), reject: done(reject) });
      this.sock.write(line); // FRAME-1, FRAME-10: one message, one write
    });
  }
  failAll(err) {
    const waiters = [...this.pending.values()];
    this.pending.clear();
    waiters.forEach((waiter) => waiter.reject(err));
  }
  close() {
    if (this.sock) this.sock.destroy();
    [this.connected, this.sock] = [false, null];
    this.failAll(fail('closed', 'the client was closed'));
  }
}

let client = null;
async function handle(cmd) {
  switch (cmd.cmd) {
    case 'start': return { name: 'minimal Node.js client (example)', language: 'javascript', version: '1.0.0',
      capabilities: ['concurrent', 'push', 'reconnect', 'timeout', 'introspect'] };
    case 'connect':
      if (client) client.close();
      client = new Client(cmd.socket, cmd.options || {});
      return client.connect().then(() => ({}));
    case 'send':
      if (!client) throw fail('closed', 'send before connect');
      return { data: await client.send(cmd.uri, cmd.data, cmd.timeout_ms) };
    case 'close': if (client) client.close(); return {};
    case 'pushes': return { pushes: client ? client.pushes.splice(0) : [] };
    case 'introspect': return { pending: client ? client.pending.size : 0 }; // timed-out ids are not kept
    default: throw fail('unsupported', `unknown command ${cmd.cmd}`);
  }
}

const input = readline.createInterface({ input: process.stdin });
input.on('line', (text) => {
  if (!text.trim()) return;
  const cmd = JSON.parse(text);
  const answer = (body) => process.stdout.write(JSON.stringify({ id: cmd.id, ...body }) + '\n');
  handle(cmd).then((result) => answer({ ok: true, result }),
    (err) => answer({ ok: false, error: err.info ?? { kind: 'protocol', message: String(err) } }));
});
input.on('close', () => { if (client) client.close(); process.exit(0); }); // stdin EOF: close and exit 0
