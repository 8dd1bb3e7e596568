'use strict';
/**
 * pixl-ipc client for Node.js: require('pixl-ipc-client') returns the client
 * class, as the original's client.js does; it is also exported by name.
 */

const { IPCClient } = require('./lib/client');
const { ErrorCode, IPCError } = require('./lib/errors');
const { DEFAULT_MAX_MESSAGE_BYTES } = require('./lib/framing');

module.exports = IPCClient;
module.exports.IPCClient = IPCClient;
module.exports.IPCError = IPCError;
module.exports.ErrorCode = ErrorCode;
module.exports.DEFAULT_MAX_MESSAGE_BYTES = DEFAULT_MAX_MESSAGE_BYTES;
