'use strict';
/**
 * IPCClient: the socket front end over ClientProtocol (protocol.js).
 *
 * It owns the socket, the timers and the callbacks; every protocol rule
 * (framing, the size limit, ids, matching, pushes, late answers) lives in the
 * sans-I/O core. States: IDLE (never connected, or closed), CONNECTING (the
 * first connect() is under way), OPEN, RECONNECTING (the connection ended and
 * autoReconnect will open another). A send() made while CONNECTING or
 * RECONNECTING waits for the connection within its own deadline; one made
 * while IDLE fails with no_open_stream, as the original's does before connect.
 */

const net = require('net');
const { EventEmitter } = require('events');
const { ANSWER, ClientProtocol, LATE, MALFORMED, OVERSIZE, PUSH, UNKNOWN, responseOutcome } = require('./protocol');
const { DEFAULT_MAX_MESSAGE_BYTES } = require('./framing');
const { ErrorCode, IPCError } = require('./errors');

const IDLE = 'idle';
const CONNECTING = 'connecting';
const OPEN = 'open';
const RECONNECTING = 'reconnecting';

// The original's defaults (ms), then the kit's additions.
const DEFAULT_REQUEST_TIMEOUT = 10000;
const DEFAULT_EXPIRE_REQUEST = 10000;
const DEFAULT_AUTO_RECONNECT = 1000;
// Connecting to a local socket is immediate unless the listen backlog is
// full (EAGAIN, LIFE-1); 2 s covers a busy server without hiding a dead one.
const DEFAULT_CONNECT_TIMEOUT = 2000;

function defaultUserAgent() {
  let cwd = '';
  try {
    cwd = process.cwd();
  } catch {
    // the working directory was removed
  }
  return 'Node/IPCClient' + cwd;
}

function checkNumber(options, name, { zeroOk = false, integer = false, nullOk = false } = {}) {
  const value = options[name];
  if (nullOk && (value === null || value === undefined || value === 0 || value === false)) {
    options[name] = null;
    return;
  }
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (zeroOk ? value >= 0 : value > 0) &&
    (!integer || Number.isSafeInteger(value));
  if (!ok) {
    const what = integer ? 'integer' : 'number of ms';
    throw new RangeError(`option ${name} must be a ${zeroOk ? 'non-negative' : 'positive'} ${what}, got ${value}`);
  }
}

function makeOptions(given) {
  if (given !== undefined && given !== null && typeof given !== 'object') {
    throw new TypeError('options must be an object');
  }
  const options = {
    requestTimeout: DEFAULT_REQUEST_TIMEOUT,
    expireRequest: DEFAULT_EXPIRE_REQUEST,
    userAgent: defaultUserAgent(),
    autoReconnect: DEFAULT_AUTO_RECONNECT,
    codeToErr: false,
    messageTransform: null,
    logStatsInterval: null,
    maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
    connectTimeout: DEFAULT_CONNECT_TIMEOUT,
  };
  for (const key of Object.keys(given || {})) {
    if (given[key] !== undefined) options[key] = given[key];
  }
  checkNumber(options, 'requestTimeout');
  checkNumber(options, 'expireRequest', { zeroOk: true });
  checkNumber(options, 'autoReconnect', { zeroOk: true });
  checkNumber(options, 'connectTimeout');
  checkNumber(options, 'maxMessageBytes', { integer: true });
  checkNumber(options, 'logStatsInterval', { nullOk: true });
  if (typeof options.userAgent !== 'string') throw new TypeError('option userAgent must be a string');
  if (options.messageTransform !== null && typeof options.messageTransform !== 'function') {
    throw new TypeError('option messageTransform must be a function or null');
  }
  options.codeToErr = Boolean(options.codeToErr);
  return options;
}

function checkLogger(logger) {
  if (logger === undefined || logger === null || logger === false) return null;
  if (
    (typeof logger !== 'object' && typeof logger !== 'function') ||
    (typeof logger.debug !== 'function' && typeof logger.error !== 'function')
  ) {
    throw new TypeError('logger must have debug(level, msg, data) and error(code, msg, data) methods, or be null');
  }
  return logger;
}

function rethrow(err) {
  throw err;
}

function newCounters() {
  return {
    requests: 0,
    responses: 0,
    timeouts: 0,
    pushes: 0,
    lateAnswers: 0,
    unknownAnswers: 0,
    malformed: 0,
    connects: 0,
    disconnects: 0,
  };
}

/** One request from send() to its callback. */
class Request {
  constructor(uri, callback) {
    this.id = '';
    this.uri = uri;
    this.callback = callback;
    this.timer = null;
    this.sent = false;
    this.done = false;
    // The encoded request while it waits for a connection.
    this.line = null;
  }
}

class IPCClient extends EventEmitter {
  /**
   * @param {string} socketPath the server's socket path
   * @param {object|null} [logger] a pixl-server style logger: debug(level, msg, data), error(code, msg, data)
   * @param {object} [options] see README.md; times in ms
   */
  constructor(socketPath, logger, options) {
    super();
    if (typeof socketPath !== 'string' || socketPath === '') {
      throw new TypeError('socketPath must be a non-empty string');
    }
    this.socketPath = socketPath;
    this.logger = checkLogger(logger);
    /** The options in force; requestTimeout, expireRequest, autoReconnect, codeToErr and messageTransform are read when used. */
    this.options = makeOptions(options);
    this._proto = new ClientProtocol({
      maxMessageBytes: this.options.maxMessageBytes,
      userAgent: this.options.userAgent,
    });
    this._state = IDLE;
    this._socket = null;
    this._out = [];
    this._queue = [];
    this._connectWaiters = [];
    this._dialing = false;
    this._dialToken = 0;
    this._reconnectTimer = null;
    this._sweepTimer = null;
    this._statsTimer = null;
    this._totals = newCounters();
    this._interval = newCounters();
    this._flush = this._flush.bind(this);
    this._onTimeout = this._onTimeout.bind(this);
    this._sweep = this._sweep.bind(this);
    this._reconnect = this._reconnect.bind(this);
  }

  /** True while a connection is open. */
  get connected() {
    return this._state === OPEN;
  }

  /** Requests awaiting an answer, plus timed-out ids still remembered to drop their late answers. */
  get pendingCount() {
    return this._proto.pendingCount;
  }

  /** Counters since the client was made, and what is pending now. */
  getStats() {
    return { ...this._totals, pending: this.pendingCount, connected: this.connected };
  }

  /**
   * Connect to the server. Does nothing more when already connected.
   * @param {function(Error|null)} [callback] or, without it, a promise
   */
  connect(callback) {
    if (typeof callback !== 'function') {
      return new Promise((resolve, reject) => this.connect((err) => (err ? reject(err) : resolve())));
    }
    if (this._state === OPEN) {
      process.nextTick(callback, null);
      return undefined;
    }
    this._connectWaiters.push(callback);
    if (this._state === IDLE) this._state = CONNECTING;
    if (this._reconnectTimer !== null) {
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
    }
    this._startStats();
    this._attempt();
    return undefined;
  }

  /**
   * Send one request and call back with the answer's data.
   * @param {string} uri
   * @param {*} [data] left out of the request when undefined
   * @param {function(*, *)} [callback] (err, data) or, without it, a promise of data
   */
  send(uri, data, callback) {
    if (typeof data === 'function' && callback === undefined) {
      callback = data;
      data = undefined;
    }
    if (typeof callback !== 'function') {
      return new Promise((resolve, reject) =>
        this.send(uri, data, (err, result) => (err ? reject(err) : resolve(result))),
      );
    }
    const state = this._state;
    if (state === IDLE) {
      const why = this._totals.connects === 0 ? 'not connected: call connect() first' : 'the connection is closed';
      process.nextTick(callback, new IPCError(ErrorCode.NO_OPEN_STREAM, why, { uri }));
      return undefined;
    }
    const entry = new Request(uri, callback);
    let line;
    try {
      line = this._proto.encodeRequest(uri, data, entry);
    } catch (err) {
      process.nextTick(callback, err);
      return undefined;
    }
    this._totals.requests++;
    this._interval.requests++;
    entry.timer = setTimeout(this._onTimeout, this.options.requestTimeout, entry, this.options.requestTimeout);
    if (state === OPEN) {
      entry.sent = true;
      this._write(line);
    } else {
      entry.line = line;
      this._queue.push(entry);
    }
    return undefined;
  }

  /**
   * Close the connection and stop reconnecting. Pending requests fail with
   * ipc_client_closed. connect() may open the client again.
   * @param {function(Error|null)} [callback] or, without it, a promise
   */
  close(callback) {
    if (typeof callback !== 'function') {
      return new Promise((resolve) => this.close(() => resolve()));
    }
    this._state = IDLE;
    this._dialing = false;
    this._dialToken++;
    for (const timer of ['_reconnectTimer', '_sweepTimer', '_statsTimer']) {
      if (this[timer] !== null) {
        clearTimeout(this[timer]);
        this[timer] = null;
      }
    }
    const socket = this._socket;
    this._socket = null;
    this._out.length = 0;
    this._queue.length = 0;
    const closed = () => new IPCError(ErrorCode.CLIENT_CLOSED, 'the client was closed');
    for (const waiter of this._connectWaiters.splice(0)) this._call(waiter, closed());
    for (const entry of this._proto.connectionLost()) this._fail(entry, closed());
    if (socket === null) {
      process.nextTick(callback, null);
      return undefined;
    }
    this._debug(5, `Closing IPC connection: ${this.socketPath}`);
    socket.once('close', () => callback(null));
    socket.destroy();
    this._disconnected(closed());
    return undefined;
  }

  // --- connecting -------------------------------------------------------------

  _attempt() {
    if (this._dialing) return;
    this._dialing = true;
    const token = ++this._dialToken;
    this._debug(5, `Connecting to IPC socket: ${this.socketPath}`);
    this._dial((err, socket) => {
      if (token !== this._dialToken) {
        // close() came first.
        if (socket) socket.destroy();
        return;
      }
      this._dialing = false;
      if (err) this._connectFailed(err);
      else this._opened(socket);
    });
  }

  _dial(done) {
    const path = this.socketPath;
    const deadline = performance.now() + this.options.connectTimeout;
    let delay = 5;
    const once = () => {
      const socket = net.createConnection({ path });
      const onError = (err) => {
        socket.removeListener('connect', onConnect);
        socket.destroy();
        // LIFE-1: a full listen backlog is not a failure until the connect timeout.
        if (err.code === 'EAGAIN' && performance.now() + delay < deadline) {
          setTimeout(once, delay);
          delay = Math.min(delay * 2, 50);
        } else {
          done(err, null);
        }
      };
      const onConnect = () => {
        socket.removeListener('error', onError);
        done(null, socket);
      };
      socket.once('error', onError);
      socket.once('connect', onConnect);
    };
    once();
  }

  _connectFailed(cause) {
    const reconnecting = this._state === RECONNECTING && this.options.autoReconnect > 0;
    const error = () =>
      new IPCError(ErrorCode.SOCKET_ERR, `cannot connect to ${this.socketPath}: ${cause.message}`, {
        path: this.socketPath,
        cause,
      });
    if (reconnecting) {
      this._debug(6, `Reconnect failed, next attempt in ${this.options.autoReconnect} ms: ${cause.message}`);
    } else {
      this._error(ErrorCode.SOCKET_ERR, `Cannot connect to IPC socket: ${this.socketPath}: ${cause.message}`);
    }
    for (const waiter of this._connectWaiters.splice(0)) this._call(waiter, error());
    if (reconnecting) {
      this._reconnectTimer = setTimeout(this._reconnect, this.options.autoReconnect);
      return;
    }
    this._state = IDLE;
    for (const entry of this._queue.splice(0)) {
      if (entry.done) continue;
      this._proto.forget(entry.id);
      this._fail(entry, error());
    }
  }

  _reconnect() {
    this._reconnectTimer = null;
    this._attempt();
  }

  _opened(socket) {
    this._socket = socket;
    this._state = OPEN;
    this._totals.connects++;
    this._interval.connects++;
    socket.on('data', (chunk) => this._onData(socket, chunk));
    // The server's FIN ends the connection for this client, even if the
    // server still reads (a half-close, LIFE-8): no answer can come any more.
    socket.on('end', () => this._lost(socket, null));
    socket.on('error', (err) => this._lost(socket, err));
    socket.on('close', () => this._lost(socket, null));
    this._debug(5, `Connected to IPC socket: ${this.socketPath}`);
    for (const entry of this._queue.splice(0)) {
      if (entry.done) continue;
      entry.sent = true;
      this._write(entry.line);
      entry.line = null;
    }
    for (const waiter of this._connectWaiters.splice(0)) this._call(waiter, null);
    this._emitSafely('connect');
  }

  /** The connection ended without close(): fail what was pending (LIFE-3), maybe reconnect (LIFE-4). */
  _lost(socket, err, makeError) {
    if (socket !== this._socket) return;
    this._socket = null;
    this._out.length = 0;
    socket.destroy();
    const why = err ? `the connection failed: ${err.message}` : 'the server closed the connection';
    const error =
      makeError || (() => new IPCError(ErrorCode.SERVER_CLOSED, why, err ? { cause: err } : undefined));
    const entries = this._proto.connectionLost();
    if (entries.length > 0 || err) {
      this._error(ErrorCode.SERVER_CLOSED, `IPC connection ended: ${why}`, { pending: entries.length });
    } else {
      this._debug(5, `IPC connection ended: ${why}`);
    }
    if (this.options.autoReconnect > 0) {
      this._state = RECONNECTING;
      this._reconnectTimer = setTimeout(this._reconnect, this.options.autoReconnect);
    } else {
      this._state = IDLE;
    }
    for (const entry of entries) this._fail(entry, error(entry));
    this._disconnected(error());
  }

  _disconnected(error) {
    this._totals.disconnects++;
    this._interval.disconnects++;
    this._emitSafely('disconnect', error);
  }

  // --- requests and answers ------------------------------------------------------

  _write(line) {
    const out = this._out;
    out.push(line);
    // Requests made in one tick leave in one write (FRAME-10: whole lines).
    if (out.length === 1) process.nextTick(this._flush);
  }

  _flush() {
    const out = this._out;
    if (out.length === 0 || this._socket === null) return;
    const data = out.length === 1 ? out[0] : out.join('');
    out.length = 0;
    this._socket.write(data);
  }

  _onData(socket, chunk) {
    if (socket !== this._socket) return;
    const events = this._proto.receiveData(chunk);
    for (let i = 0; i < events.length; i++) {
      const event = events[i];
      switch (event.kind) {
        case ANSWER:
          this._answer(event.entry, event.message);
          break;
        case PUSH:
          this._count('pushes');
          this._emitSafely('data', event.message);
          break;
        case LATE:
          this._count('lateAnswers');
          this._debug(9, `Dropped the late answer to timed-out request ${event.id}`);
          break;
        case UNKNOWN:
          this._count('unknownAnswers');
          this._debug(6, `Dropped an answer to unknown request id ${JSON.stringify(event.id)}`);
          break;
        case MALFORMED:
          this._count('malformed');
          this._debug(3, `Ignored a malformed message from the server: ${event.reason}`);
          break;
        case OVERSIZE:
          this._oversize(socket, event);
          return;
      }
    }
  }

  _answer(entry, message) {
    entry.done = true;
    clearTimeout(entry.timer);
    this._count('responses');
    const outcome = responseOutcome(message, this.options.codeToErr, this.options.messageTransform);
    this._call(entry.callback, outcome[0], outcome[1]);
  }

  /** LIMIT-3: fail the request the line answers, then close; the others fail as closed. */
  _oversize(socket, event) {
    if (socket !== this._socket) return;
    const { size, limit } = event;
    const tooLarge = (entry) =>
      new IPCError(
        ErrorCode.MESSAGE_TOO_LARGE,
        `a response of at least ${size} bytes exceeds maxMessageBytes (${limit})`,
        { size, limit, uri: entry ? entry.uri : undefined },
      );
    this._error(ErrorCode.MESSAGE_TOO_LARGE, `Response over the limit of ${limit} bytes, closing`, {
      id: event.id,
      size,
    });
    let others = tooLarge;
    if (event.entry !== null) {
      this._fail(event.entry, tooLarge(event.entry));
      others = () =>
        new IPCError(
          ErrorCode.SERVER_CLOSED,
          `the connection was closed after a response exceeded maxMessageBytes (${limit})`,
        );
    }
    this._lost(socket, null, others);
  }

  _onTimeout(entry, timeout) {
    if (entry.done) return;
    entry.done = true;
    this._count('timeouts');
    const expire = this.options.expireRequest;
    if (!entry.sent) {
      this._proto.forget(entry.id);
      const at = this._queue.indexOf(entry);
      if (at >= 0) this._queue.splice(at, 1);
    } else if (expire > 0) {
      // CORR-5: remembered so that its late answer is dropped quietly.
      this._proto.expire(entry.id, performance.now() + expire);
      if (this._sweepTimer === null) this._armSweep(expire);
    } else {
      this._proto.forget(entry.id);
    }
    const detail = entry.sent
      ? `no response to ${entry.uri} within ${timeout} ms`
      : `no connection to send ${entry.uri} on within ${timeout} ms`;
    this._call(entry.callback, new IPCError(ErrorCode.REQUEST_TIMEOUT, detail, { uri: entry.uri, timeout }));
  }

  _armSweep(delay) {
    this._sweepTimer = setTimeout(this._sweep, Math.max(1, Math.ceil(delay)));
    this._sweepTimer.unref();
  }

  _sweep() {
    this._sweepTimer = null;
    const now = performance.now();
    const next = this._proto.sweep(now);
    if (next !== null) this._armSweep(next - now);
  }

  _fail(entry, error) {
    entry.done = true;
    clearTimeout(entry.timer);
    this._call(entry.callback, error);
  }

  // A callback that throws must not stop the others: its exception is thrown
  // again on its own, as an uncaught exception, once the client's state is whole.
  _call(callback, err, data) {
    try {
      callback(err, data);
    } catch (thrown) {
      process.nextTick(rethrow, thrown);
    }
  }

  _emitSafely(name, value) {
    try {
      this.emit(name, value);
    } catch (thrown) {
      process.nextTick(rethrow, thrown);
    }
  }

  // --- logging and stats ----------------------------------------------------------

  _count(name) {
    this._totals[name]++;
    this._interval[name]++;
  }

  _debug(level, message, data) {
    const logger = this.logger;
    if (logger !== null && typeof logger.debug === 'function') logger.debug(level, message, data);
  }

  _error(code, message, data) {
    const logger = this.logger;
    if (logger !== null && typeof logger.error === 'function') logger.error(code, message, data);
  }

  _startStats() {
    const every = this.options.logStatsInterval;
    if (every === null || this._statsTimer !== null || this.logger === null) return;
    this._statsTimer = setInterval(() => {
      const counters = this._interval;
      this._interval = newCounters();
      this._debug(2, 'IPC client stats', { ...counters, pending: this.pendingCount, connected: this.connected });
    }, every);
    this._statsTimer.unref();
  }
}

module.exports = { IPCClient };
