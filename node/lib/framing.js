'use strict';
/**
 * Line framing: bytes in, lines out. No sockets here.
 *
 * A LineDecoder turns a byte stream cut into arbitrary chunks into complete
 * lines (FRAME-1 to FRAME-3). It splits on the LF byte in the Buffers as they
 * come and decodes each line as UTF-8 on its own, so a character split over
 * two reads is never broken. An unfinished line is kept as a list of chunks
 * and joined once when its LF arrives: a line in N chunks costs O(size), not
 * O(N * size). The size limit is enforced as bytes arrive (LIMIT-1, LIMIT-3),
 * so the memory held stays bounded by the limit whatever the peer sends.
 */

const buffer = require('buffer');

/** Default limit of one message in bytes: the kit's 64 MiB (LIMIT-1 asks for at least 16 MiB). */
const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** The smallest limit a conforming receiver may use (LIMIT-1). */
const MIN_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** How much of an oversize line is kept to recover its id (CORR-6). */
const ID_RECOVERY_BYTES = 4096;

const LF = 0x0a;
const REPLACEMENT = '\uFFFD';

// buffer.isUtf8 appeared in Node 18.14; TextDecoder does the same job before it.
const strictDecoder = new TextDecoder('utf-8', { fatal: true });
const isUtf8 =
  typeof buffer.isUtf8 === 'function'
    ? buffer.isUtf8
    : (bytes) => {
        try {
          strictDecoder.decode(bytes);
          return true;
        } catch {
          return false;
        }
      };

/** A line that passed the size limit; the rest of it is discarded as it arrives. */
class OversizeLine {
  /**
   * @param {Buffer} head the first ID_RECOVERY_BYTES bytes of the line (a copy)
   * @param {number} size the bytes of the line seen when it passed the limit
   * @param {number} limit the limit in force
   */
  constructor(head, size, limit) {
    this.head = head;
    this.size = size;
    this.limit = limit;
  }
}

/** A line that is not valid UTF-8 (FRAME-6): the receiver treats it as malformed. */
class InvalidLine {
  /** @param {Buffer} head the first ID_RECOVERY_BYTES bytes of the line (a copy) */
  constructor(head) {
    this.head = head;
  }
}

function copyHead(bytes) {
  return Buffer.from(bytes.subarray(0, ID_RECOVERY_BYTES));
}

/**
 * Split a byte stream into lines of at most maxLineBytes bytes.
 *
 * feed(chunk) returns, in stream order, each complete line as a string
 * (without its LF; a CR before it is kept, since JSON reads it as white
 * space), an InvalidLine for a line that is not valid UTF-8, and an
 * OversizeLine for each line over the limit, reported as soon as the limit is
 * passed; the rest of that line is dropped as it arrives (LIMIT-3). The limit
 * counts every byte before the LF, a CR included.
 */
class LineDecoder {
  /** @param {number} [maxLineBytes] */
  constructor(maxLineBytes = DEFAULT_MAX_MESSAGE_BYTES) {
    if (!Number.isSafeInteger(maxLineBytes) || maxLineBytes < 1) {
      throw new RangeError(`maxLineBytes must be a positive integer, got ${maxLineBytes}`);
    }
    this.maxLineBytes = maxLineBytes;
    this._chunks = [];
    this._pending = 0;
    this._discarding = false;
  }

  /** Bytes of an unfinished line held in memory (never over the limit). */
  get buffered() {
    return this._pending;
  }

  /**
   * Add bytes from the stream.
   * @param {Buffer} chunk
   * @returns {Array<string|OversizeLine|InvalidLine>} the events these bytes complete
   */
  feed(chunk) {
    const out = [];
    const length = chunk.length;
    let start = 0;
    let end;
    if (this._discarding) {
      end = chunk.indexOf(LF);
      if (end < 0) return out;
      this._discarding = false;
      start = end + 1;
    }
    if (this._chunks.length > 0 && start < length) {
      end = chunk.indexOf(LF, start);
      if (end < 0) {
        this._addPartial(chunk, start, length, out);
        return out;
      }
      const size = this._pending + (end - start);
      const chunks = this._chunks;
      chunks.push(chunk.subarray(start, end));
      this._chunks = [];
      this._pending = 0;
      if (size > this.maxLineBytes) {
        out.push(new OversizeLine(copyHead(Buffer.concat(headPieces(chunks))), size, this.maxLineBytes));
      } else {
        const line = Buffer.concat(chunks, size);
        this._emit(line, 0, size, out);
      }
      start = end + 1;
    }
    const limit = this.maxLineBytes;
    while ((end = chunk.indexOf(LF, start)) >= 0) {
      if (end - start > limit) {
        out.push(new OversizeLine(copyHead(chunk.subarray(start, end)), end - start, limit));
      } else {
        this._emit(chunk, start, end, out);
      }
      start = end + 1;
    }
    if (start < length) this._addPartial(chunk, start, length, out);
    return out;
  }

  _emit(bytes, start, end, out) {
    const text = bytes.toString('utf8', start, end);
    // Decoding replaces invalid bytes with U+FFFD; only then is a real check needed.
    if (text.indexOf(REPLACEMENT) >= 0 && !isUtf8(bytes.subarray(start, end))) {
      out.push(new InvalidLine(copyHead(bytes.subarray(start, end))));
      return;
    }
    out.push(text);
  }

  _addPartial(chunk, start, end, out) {
    const size = this._pending + (end - start);
    const piece = start === 0 && end === chunk.length ? chunk : chunk.subarray(start, end);
    if (size > this.maxLineBytes) {
      const pieces = this._chunks;
      pieces.push(piece);
      out.push(new OversizeLine(copyHead(Buffer.concat(headPieces(pieces))), size, this.maxLineBytes));
      this._chunks = [];
      this._pending = 0;
      this._discarding = true;
      return;
    }
    this._chunks.push(piece);
    this._pending = size;
  }
}

/** The leading pieces that hold the first ID_RECOVERY_BYTES bytes, without joining them all. */
function headPieces(pieces) {
  const head = [];
  let wanted = ID_RECOVERY_BYTES;
  for (const piece of pieces) {
    if (wanted <= 0) break;
    head.push(piece.length > wanted ? piece.subarray(0, wanted) : piece);
    wanted -= piece.length;
  }
  return head;
}

module.exports = {
  DEFAULT_MAX_MESSAGE_BYTES,
  ID_RECOVERY_BYTES,
  InvalidLine,
  LineDecoder,
  MIN_MAX_MESSAGE_BYTES,
  OversizeLine,
};
