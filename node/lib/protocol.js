'use strict';
/**
 * The client side of the pixl-ipc protocol: building requests, reading
 * responses, matching them to requests. No I/O and no timers here.
 *
 * Theory of operation
 * -------------------
 * A connection carries one JSON object per line in each direction (spec
 * section 2). ClientProtocol is the state of one client object across its
 * connections: it numbers requests ("rq0", "rq1", ... from one counter that
 * goes on across reconnects, so an id is never reused, CORR-1) and encodes
 * them the way the original Node client does (member order ipcReqID, uri,
 * data, pid, userAgent; an undefined member is left out). It keeps the table
 * of requests awaiting an answer (id -> the front end's entry) and of
 * timed-out ids whose late answers are still expected (CORR-5).
 *
 * Bytes read from the connection go into receiveData(), which returns events
 * in stream order:
 *   ANSWER    a response to a pending request (its entry, the message); the
 *             entry leaves the table (CORR-2)
 *   PUSH      a message whose ipcReqID is falsy (PUSH-1, PUSH-2); a top-level
 *             error with a null id is one too, never a request's failure (ERR-7)
 *   LATE      the answer to a timed-out id, dropped quietly (CORR-3)
 *   UNKNOWN   a response with an id this client is not waiting for (CORR-3)
 *   MALFORMED a "{" line that does not parse (FRAME-7): it fails nothing
 *   OVERSIZE  a line over the limit (LIMIT-3), with the pending entry whose id
 *             was recovered from its first 4096 bytes (CORR-6), or null
 * Lines that are blank or do not start with "{" produce nothing (FRAME-4,
 * FRAME-5). responseOutcome() turns an answer into the caller's (err, data)
 * with the original's codeToErr and messageTransform semantics. The front end
 * (client.js) only moves bytes, runs the timers and calls back.
 */

const { InvalidLine, LineDecoder, OversizeLine, DEFAULT_MAX_MESSAGE_BYTES } = require('./framing');

const ANSWER = 'answer';
const PUSH = 'push';
const LATE = 'late';
const UNKNOWN = 'unknown';
const MALFORMED = 'malformed';
const OVERSIZE = 'oversize';

// CORR-6: the first "ipcReqID" member, and the string or number after it, if any.
const ID_PATTERN = /"ipcReqID"[ \t\r\n]*:[ \t\r\n]*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)?/;
// What may follow a number that is not complete yet: the end of the head, or more of it.
const NUMBER_GOES_ON = /^(?:$|[0-9.eE+-])/;

/** True for the ids that mean "not correlated" (REQ-3): absent, null, false, 0, "". */
function isFalsyId(value) {
  return value === undefined || value === null || value === false || value === 0 || value === '';
}

/**
 * Find the ipcReqID in the first bytes of a line that cannot be read whole (CORR-6).
 * @param {Buffer} head
 * @returns {string|number|null} the id if it is found and truthy, else null
 */
function recoverId(head) {
  const text = head.toString('utf8', 0, Math.min(head.length, 4096));
  const match = ID_PATTERN.exec(text);
  // Only the first member counts: null, true or a cut value there is no id.
  if (match === null || match[1] === undefined) return null;
  const after = text.slice(match.index + match[0].length, match.index + match[0].length + 1);
  if (match[1][0] !== '"' && NUMBER_GOES_ON.test(after)) return null; // the whole number or none
  try {
    const value = JSON.parse(match[1]);
    return isFalsyId(value) ? null : value;
  } catch {
    return null;
  }
}

/** True when the line's first character other than space, tab or CR is "{" (FRAME-4, FRAME-5). */
function isMessageLine(line) {
  const first = line.charCodeAt(0);
  if (first === 0x7b) return true;
  if (first !== 0x20 && first !== 0x09 && first !== 0x0d) return false;
  for (let i = 1; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === 0x7b) return true;
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d) return false;
  }
  return false;
}

class ClientProtocol {
  /**
   * @param {object} [options]
   * @param {number} [options.maxMessageBytes] the longest response line accepted (LIMIT-1)
   * @param {string} [options.userAgent] the userAgent member of every request (REQ-6)
   * @param {number} [options.pid] the pid member (REQ-5), default this process's
   */
  constructor({ maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES, userAgent = '', pid = process.pid } = {}) {
    this.maxMessageBytes = maxMessageBytes;
    this.userAgent = userAgent;
    this.pid = pid;
    this.decoder = new LineDecoder(maxMessageBytes);
    this._counter = 0;
    /** @type {Map<string, any>} id -> entry of a request awaiting its answer */
    this.pending = new Map();
    /** @type {Map<string, number>} timed-out id -> when to forget it, in insertion order */
    this.expired = new Map();
  }

  /** Every per-request entry held: requests awaiting an answer and remembered timed-out ids. */
  get pendingCount() {
    return this.pending.size + this.expired.size;
  }

  /**
   * Build a request with a new id (never reused by this object, CORR-1) and
   * enter it in the table.
   * @param {*} uri
   * @param {*} data left out of the request when undefined, as the original does
   * @param {object} entry the front end's record of the request; gets an `id`
   * @returns {string} the line to write, LF included
   * @throws {TypeError} data cannot be encoded as JSON (a cycle, a BigInt); the id is not used
   */
  encodeRequest(uri, data, entry) {
    const id = 'rq' + this._counter;
    const line =
      JSON.stringify({ ipcReqID: id, uri, data, pid: this.pid, userAgent: this.userAgent }) + '\n';
    this._counter++;
    entry.id = id;
    this.pending.set(id, entry);
    return line;
  }

  /** Forget a request that never reached the wire: no answer can come for it. */
  forget(id) {
    this.pending.delete(id);
  }

  /**
   * A request timed out: its answer may still come and is to be dropped (CORR-3, CORR-5).
   * @param {string} id
   * @param {number} forgetAt when to stop remembering it (any clock, as given to sweep)
   */
  expire(id, forgetAt) {
    if (this.pending.delete(id)) this.expired.set(id, forgetAt);
  }

  /**
   * Forget timed-out ids whose time has come.
   * @param {number} now
   * @returns {number|null} when the next one is due, or null if none is left
   */
  sweep(now) {
    for (const [id, forgetAt] of this.expired) {
      if (forgetAt > now) return forgetAt;
      this.expired.delete(id);
    }
    return null;
  }

  /**
   * The connection ended: start the next one with a fresh decoder.
   * @returns {Array<object>} the entries that were pending; the table is empty after
   */
  connectionLost() {
    const entries = [...this.pending.values()];
    this.pending.clear();
    // Ids are never reused, so no late answer can arrive on another connection.
    this.expired.clear();
    this.decoder = new LineDecoder(this.maxMessageBytes);
    return entries;
  }

  /**
   * Feed bytes read from the connection.
   * @param {Buffer} chunk
   * @returns {Array<object>} the events they complete, in stream order (see the top of this file)
   */
  receiveData(chunk) {
    const events = [];
    for (const item of this.decoder.feed(chunk)) {
      if (typeof item === 'string') {
        if (isMessageLine(item)) this._receiveLine(item, events);
      } else if (item instanceof OversizeLine) {
        const id = recoverId(item.head);
        const owner = typeof id === 'string' ? this.pending.get(id) : undefined;
        if (owner !== undefined) this.pending.delete(id);
        events.push({ kind: OVERSIZE, size: item.size, limit: item.limit, id, entry: owner || null });
      } else if (item instanceof InvalidLine) {
        events.push({ kind: MALFORMED, reason: 'invalid UTF-8', id: recoverId(item.head) });
      }
    }
    return events;
  }

  _receiveLine(line, events) {
    let message;
    try {
      message = JSON.parse(line);
    } catch (err) {
      // FRAME-7: ignored; a RangeError is nesting deeper than the stack allows (LIMIT-4).
      events.push({ kind: MALFORMED, reason: err.message, id: recoverId(Buffer.from(line.slice(0, 4096))) });
      return;
    }
    const id = message.ipcReqID;
    if (typeof id === 'string' && id !== '') {
      const entry = this.pending.get(id);
      if (entry !== undefined) {
        this.pending.delete(id);
        events.push({ kind: ANSWER, entry, message });
      } else if (this.expired.delete(id)) {
        events.push({ kind: LATE, id, message });
      } else {
        events.push({ kind: UNKNOWN, id, message });
      }
    } else if (isFalsyId(id)) {
      events.push({ kind: PUSH, message });
    } else {
      // A number, true, an object: this client never sends such ids.
      events.push({ kind: UNKNOWN, id, message });
    }
  }
}

/**
 * Turn a response into the caller's [err, data] (ERR-4), as the original does.
 *
 * With messageTransform, its result [err, data] is used as it is. Otherwise a
 * truthy top-level code makes the whole message the error (always, ERR-4);
 * with codeToErr, a truthy data.code makes data the error. data is passed
 * along in every case.
 *
 * @param {object} message the response as received
 * @param {boolean} codeToErr
 * @param {Function|null} messageTransform
 * @returns {[any, any]} err (null when none) and data
 */
function responseOutcome(message, codeToErr, messageTransform) {
  if (messageTransform) {
    let result;
    try {
      result = messageTransform(message);
    } catch (err) {
      return [err, undefined];
    }
    if (!Array.isArray(result)) {
      return [new TypeError('messageTransform must return an array [err, data]'), undefined];
    }
    return [result[0] || null, result[1]];
  }
  const data = message.data;
  if (message.code) return [message, data];
  if (codeToErr && data && data.code) return [data, data];
  return [null, data];
}

module.exports = {
  ANSWER,
  ClientProtocol,
  LATE,
  MALFORMED,
  OVERSIZE,
  PUSH,
  UNKNOWN,
  isFalsyId,
  isMessageLine,
  recoverId,
  responseOutcome,
};
