#!/usr/bin/env node
'use strict';
/**
 * Conformance adapter for the Node client (spec/ADAPTER.md).
 *
 * Reads one JSON command per line on stdin, drives IPCClient, and writes one
 * JSON answer per line on stdout. Sends run concurrently on one connection:
 * each is answered when it completes. Logs go to stderr (--log).
 *
 * Usage: node node/adapter.js [--log]
 */

const IPCClient = require('.');
const { ErrorCode, IPCError } = IPCClient;
const { LineDecoder } = require('./lib/framing');
const { version } = require('./package.json');

const CAPABILITIES = [
  'concurrent',
  'push',
  'auto_reconnect',
  'reconnect',
  'max_message_bytes',
  'timeout',
  'introspect',
  'code_to_err',
];
// Commands may carry large data: the decoder takes lines of any size up to this.
const MAX_COMMAND_BYTES = 512 * 1024 * 1024;

const KINDS = {
  [ErrorCode.SOCKET_ERR]: 'connect',
  [ErrorCode.REQUEST_TIMEOUT]: 'timeout',
  [ErrorCode.SERVER_CLOSED]: 'closed',
  [ErrorCode.CLIENT_CLOSED]: 'closed',
  [ErrorCode.NO_OPEN_STREAM]: 'closed',
  [ErrorCode.MESSAGE_TOO_LARGE]: 'too_large',
};

class CommandError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

/** The adapter's error object for what the client reported (ADAPTER.md, error kinds). */
function errorOf(err) {
  if (err instanceof IPCError) return { kind: KINDS[err.code] || 'protocol', message: err.message };
  if (err instanceof CommandError) return { kind: err.kind, message: err.message };
  if (err && typeof err === 'object' && !(err instanceof Error) && err.code) {
    // The server's error, passed on as the original client does (ERR-4).
    return { kind: 'remote', code: String(err.code), message: String(err.message ?? '') };
  }
  return { kind: 'unsupported', message: String(err && err.stack ? err.stack : err) };
}

const log = process.argv.includes('--log')
  ? {
      debug: (level, msg, data) => console.error(`[debug ${level}] ${msg}`, data ?? ''),
      error: (code, msg, data) => console.error(`[error ${code}] ${msg}`, data ?? ''),
    }
  : null;

function clientOptions(given) {
  const options = {};
  if (!given || typeof given !== 'object') return options;
  const number = (key) => (typeof given[key] === 'number' && Number.isFinite(given[key]) ? given[key] : undefined);
  const map = [
    ['request_timeout_ms', 'requestTimeout'],
    ['connect_timeout_ms', 'connectTimeout'],
    ['auto_reconnect_ms', 'autoReconnect'],
    ['expire_request_ms', 'expireRequest'],
    ['max_message_bytes', 'maxMessageBytes'],
  ];
  for (const [key, name] of map) {
    if (number(key) !== undefined) options[name] = number(key);
  }
  if (typeof given.user_agent === 'string') options.userAgent = given.user_agent;
  if (typeof given.code_to_err === 'boolean') options.codeToErr = given.code_to_err;
  return options;
}

let client = null;
let defaultTimeout = 10000;
let pushes = [];

async function handle(command) {
  switch (command.cmd) {
    case 'start':
      return { name: 'pixl-ipc-client (Node.js)', language: 'javascript', version, capabilities: CAPABILITIES };
    case 'connect': {
      if (client) await client.close();
      client = new IPCClient(String(command.socket), log, clientOptions(command.options));
      defaultTimeout = client.options.requestTimeout;
      client.on('data', (message) => pushes.push(message.data === undefined ? null : message.data));
      await client.connect();
      return {};
    }
    case 'send': {
      if (!client) throw new CommandError('closed', 'send before connect');
      const timeout = command.timeout_ms;
      client.options.requestTimeout = typeof timeout === 'number' && timeout > 0 ? timeout : defaultTimeout;
      // Without a data member the request goes out without one (ADAPTER.md).
      const data = await client.send(command.uri, 'data' in command ? command.data : undefined);
      return { data: data === undefined ? null : data };
    }
    case 'close':
      if (client) await client.close();
      return {};
    case 'pushes': {
      const taken = pushes;
      pushes = [];
      return { pushes: taken };
    }
    case 'introspect':
      return { pending: client ? client.pendingCount : 0 };
    default:
      throw new CommandError('unsupported', `unknown command ${JSON.stringify(command.cmd)}`);
  }
}

function answer(body) {
  process.stdout.write(JSON.stringify(body) + '\n');
}

function onLine(line) {
  if (typeof line !== 'string' || !line.trim()) return;
  let command;
  try {
    command = JSON.parse(line);
  } catch (err) {
    answer({ id: null, ok: false, error: { kind: 'unsupported', message: `not a JSON command: ${err.message}` } });
    return;
  }
  if (!command || typeof command !== 'object' || Array.isArray(command)) {
    answer({ id: null, ok: false, error: { kind: 'unsupported', message: 'a command must be a JSON object' } });
    return;
  }
  handle(command).then(
    (result) => answer({ id: command.id, ok: true, result }),
    (err) => answer({ id: command.id, ok: false, error: errorOf(err) }),
  );
}

const decoder = new LineDecoder(MAX_COMMAND_BYTES);
process.stdin.on('data', (chunk) => decoder.feed(chunk).forEach(onLine));
process.stdin.on('end', async () => {
  if (client) await client.close();
  // stdout is a pipe: written synchronously on Linux, flushed by now.
  process.stdout.write('', () => process.exit(0));
});
