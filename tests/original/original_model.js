#!/usr/bin/env node
// A model of the original pixl-ipc 1.1 server, for tests only.
//
// What it is: a small Node.js server written from the measured facts about
// the original (the entries marked "measured" in
// spec/vectors/original-answers.json, and PROTOCOL.md section 13), and from
// nothing else. It lets the kit's tests derive the answers those
// facts imply but do not list, and run the conformance cases that encode the
// original's behaviour against "a server that behaves as the Corrections
// describe". JavaScript gives the value semantics for free: JSON.parse and
// JSON.stringify (numbers as doubles, integer-named members first, null for
// Infinity, lone surrogates escaped), String() of a non-string uri,
// setTimeout's reading of a delay, the UTF-8 decoder's U+FFFD.
//
// What it is not: the original's code (which is not available here), a
// reference, or a server to deploy. Where the facts are silent, the model does
// what plain Node does and says so below; such answers are marked "derived"
// in spec/vectors/original-answers.json, never "measured".
//
// Modelled, after those facts:
// - lines split on "\n"; a line whose first non-blank character is not "{"
//   is ignored; a "{" line that JSON.parse refuses is dropped without reply;
// - the reader keeps the last 1 MiB of an unfinished line (a longer line is
//   corrupted and, in practice, dropped);
// - input decoded as UTF-8 with replacement (invalid bytes become U+FFFD);
// - handlers: addURIHandler(pattern, name, cb), a string pattern becomes
//   ^pattern$, the first registered match wins; echo and delay are the prefix
//   regexes /^\/ipcserver\/test\/echo/ and /^\/ipcserver\/test\/delay/,
//   registered first; there is no /ipcserver/info nor /ipcserver/stats;
// - a falsy uri answers no_uri at the top level, an unmatched one
//   no_handler_found in data, both with the request's id or null;
// - delay: request.data.delay truthy -> {"delay": value} after
//   setTimeout(value), else {"delay": 0} at once; no data (or data null)
//   throws a TypeError, which is uncaught, and the process dies;
// - writes are never throttled (no backpressure);
// - a client's half-close: Node's default (allowHalfOpen false) ends the
//   writing side once what was written is flushed; later answers are lost;
// - closeConnections() and shutdown call socket.end() (a half-close): the
//   socket stays readable until the client closes; shutdown then waits up
//   to exit_timeout ms and removes the socket path.
// Plain Node where the facts are silent: an exception thrown by a handler (and
// JSON.stringify's RangeError on very deep nesting) is uncaught and kills
// the process; the 1 MiB bound counts UTF-16 code units, not bytes.
//
// Usage: node original_model.js --socket PATH [--chmod 777] [--exit-timeout-ms 2000]
//        [--app-handlers]      (the conformance application handlers)
// Other options are accepted and ignored. It prints "listening on PATH" to
// stderr once it accepts connections and stops on SIGTERM or SIGINT.
"use strict";

const fs = require("fs");
const net = require("net");

const MAX_LINE = 1024 * 1024;
const NO_URI = "Missing required uri parameter from request";

function parseArgs(argv) {
  const opts = { socket: null, chmod: "777", exitTimeoutMs: 2000, appHandlers: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--socket") opts.socket = argv[++i];
    else if (arg === "--chmod") opts.chmod = argv[++i];
    else if (arg === "--exit-timeout-ms") opts.exitTimeoutMs = Number(argv[++i]);
    else if (arg === "--app-handlers") opts.appHandlers = true;
  }
  if (!opts.socket) {
    process.stderr.write("original_model: --socket is required\n");
    process.exit(2);
  }
  return opts;
}

class OriginalModel {
  constructor(opts) {
    this.opts = opts;
    this.handlers = [];
    this.sockets = new Set();
    this.addURIHandler(/^\/ipcserver\/test\/echo/, "Echo", (req, cb) => cb(req.data));
    this.addURIHandler(/^\/ipcserver\/test\/delay/, "Delay", (req, cb) => {
      if (req.data.delay) setTimeout(() => cb({ delay: req.data.delay }), req.data.delay);
      else cb({ delay: 0 });
    });
  }

  addURIHandler(pattern, name, callback) {
    const regexp = typeof pattern === "string" ? new RegExp("^" + pattern + "$") : pattern;
    this.handlers.push({ regexp, name, callback });
  }

  start() {
    try {
      fs.unlinkSync(this.opts.socket); // whatever is there goes, unlooked at
    } catch (err) {
      // nothing there
    }
    this.server = net.createServer((socket) => this.accept(socket));
    this.server.listen(this.opts.socket, () => {
      if (this.opts.chmod) fs.chmodSync(this.opts.socket, parseInt(this.opts.chmod, 8));
      process.stderr.write(`listening on ${this.opts.socket}\n`);
    });
  }

  accept(socket) {
    this.sockets.add(socket);
    socket.setEncoding("utf8");
    let buffer = "";
    socket.on("data", (chunk) => {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop();
      if (buffer.length > MAX_LINE) buffer = buffer.slice(-MAX_LINE);
      for (const line of lines) this.record(socket, line);
    });
    socket.on("error", () => {});
    socket.on("close", () => this.sockets.delete(socket));
  }

  record(socket, line) {
    if (!/^\s*\{/.test(line)) return; // not a record: ignored
    let request;
    try {
      request = JSON.parse(line);
    } catch (err) {
      process.stderr.write(`dropped a line that does not parse: ${err.message}\n`);
      return;
    }
    const id = request.ipcReqID || null;
    if (!request.uri) {
      this.send(socket, { ipcReqID: id, code: "no_uri", message: NO_URI });
      return;
    }
    const uri = String(request.uri);
    const handler = this.handlers.find((h) => uri.match(h.regexp));
    if (!handler) {
      this.send(socket, {
        ipcReqID: id,
        data: { code: "no_handler_found", message: "No handler found for " + uri },
      });
      return;
    }
    handler.callback(request, (data) => this.send(socket, { ipcReqID: id, data }));
  }

  send(socket, message) {
    if (socket.writable) socket.write(JSON.stringify(message) + "\n");
  }

  closeConnections() {
    for (const socket of this.sockets) socket.end();
  }

  shutdown() {
    this.closeConnections();
    const finish = () => {
      try {
        fs.unlinkSync(this.opts.socket);
      } catch (err) {
        // gone already
      }
      process.exit(0);
    };
    this.server.close(finish);
    setTimeout(finish, this.opts.exitTimeoutMs).unref();
  }
}

function registerAppHandlers(model) {
  // The conformance application handlers (conformance/README.md), after the built-ins.
  model.addURIHandler("/conformance/fail", "conformance-fail", () => {
    throw new Error("conformance-secret-3b9f /etc/pixl-ipc/conformance-secret");
  });
  const shadow = (req, cb) => cb({ shadowed: true });
  model.addURIHandler("/ipcserver/test/echo", "conformance-shadow-echo", shadow);
  model.addURIHandler("/ipcserver/test/delay", "conformance-shadow-delay", shadow);
  model.addURIHandler("/conformance/app", "conformance-app", (req, cb) => cb({ app: true, data: req.data }));
}

const opts = parseArgs(process.argv.slice(2));
const model = new OriginalModel(opts);
if (opts.appHandlers) registerAppHandlers(model);
model.start();
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => model.shutdown());
