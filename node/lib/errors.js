'use strict';
/**
 * The errors this client reports itself. An error the server sends is passed
 * on as the original client does (the message, or its data, see
 * protocol.responseOutcome); the client's own errors are IPCError objects,
 * whose `code` is one of ErrorCode:
 *
 *   ipc_socket_err         connect failed (the original's)
 *   no_open_stream         send with no connection open or coming (the original's)
 *   request_timeout        no answer within requestTimeout (the original's)
 *   ipc_server_closed      the connection ended while the request was pending (LIFE-3)
 *   ipc_client_closed      close() was called while the request was pending
 *   ipc_message_too_large  the answer passed maxMessageBytes (LIMIT-3)
 */

const ErrorCode = Object.freeze({
  SOCKET_ERR: 'ipc_socket_err',
  NO_OPEN_STREAM: 'no_open_stream',
  REQUEST_TIMEOUT: 'request_timeout',
  SERVER_CLOSED: 'ipc_server_closed',
  CLIENT_CLOSED: 'ipc_client_closed',
  MESSAGE_TOO_LARGE: 'ipc_message_too_large',
});

/** An error of the client itself; `code` says which, the message says why. */
class IPCError extends Error {
  /**
   * @param {string} code one of ErrorCode
   * @param {string} detail what happened, for people
   * @param {object} [fields] structured details (uri, timeout, size, limit, path, cause)
   */
  constructor(code, detail, fields) {
    super(`${code}: ${detail}`, fields && fields.cause ? { cause: fields.cause } : undefined);
    this.name = 'IPCError';
    this.code = code;
    if (fields) {
      for (const key of Object.keys(fields)) if (key !== 'cause') this[key] = fields[key];
    }
  }
}

module.exports = { ErrorCode, IPCError };
