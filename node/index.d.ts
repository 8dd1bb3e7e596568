// Type declarations of pixl-ipc-client. Self-contained: they need no @types/node.

declare namespace IPCClient {
  /** The codes of the errors the client reports itself (IPCError.code). */
  interface ErrorCodes {
    readonly SOCKET_ERR: 'ipc_socket_err';
    readonly NO_OPEN_STREAM: 'no_open_stream';
    readonly REQUEST_TIMEOUT: 'request_timeout';
    readonly SERVER_CLOSED: 'ipc_server_closed';
    readonly CLIENT_CLOSED: 'ipc_client_closed';
    readonly MESSAGE_TOO_LARGE: 'ipc_message_too_large';
  }

  type ErrorCodeString = ErrorCodes[keyof ErrorCodes];

  /** An error of the client itself. */
  class IPCError extends Error {
    constructor(code: ErrorCodeString, detail: string, fields?: Record<string, unknown>);
    readonly code: ErrorCodeString;
    /** The request's uri (request_timeout, ipc_message_too_large, no_open_stream). */
    readonly uri?: unknown;
    /** The timeout that passed, in ms (request_timeout). */
    readonly timeout?: number;
    /** The bytes of the response seen when it passed the limit (ipc_message_too_large). */
    readonly size?: number;
    /** maxMessageBytes (ipc_message_too_large). */
    readonly limit?: number;
    /** The socket path (ipc_socket_err). */
    readonly path?: string;
  }

  /** A message from the server, as received. */
  interface Message {
    ipcReqID?: unknown;
    data?: any;
    code?: unknown;
    message?: unknown;
    [member: string]: unknown;
  }

  /** A top-level error from the server: the whole message is the error, as in the original. */
  interface RemoteError extends Message {
    code: string;
    message: string;
  }

  /** A pixl-server style logger; either method may be missing. */
  interface Logger {
    debug?(level: number, message: string, data?: unknown): void;
    error?(code: string, message: string, data?: unknown): void;
  }

  interface Options {
    /** ms to wait for each answer, from send() on (default 10000). */
    requestTimeout?: number;
    /** ms a timed-out request's id is remembered so its late answer is dropped quietly (default 10000). */
    expireRequest?: number;
    /** The userAgent member of each request (default "Node/IPCClient" + the working directory). */
    userAgent?: string;
    /** ms after the connection ends before connecting again, and between attempts; 0 disables (default 1000). */
    autoReconnect?: number;
    /** Also report an error inside data (a truthy data.code) as the error (default false). */
    codeToErr?: boolean;
    /** Called with each answer; returns [err, data] for the callback (default null). */
    messageTransform?: ((message: Message) => [unknown, unknown]) | null;
    /** ms between stats lines logged through logger.debug (default null: none). */
    logStatsInterval?: number | null;
    /** The longest answer accepted, in bytes (default 67108864, 64 MiB). */
    maxMessageBytes?: number;
    /** ms to keep trying while the server's listen backlog is full (default 2000). */
    connectTimeout?: number;
  }

  interface ResolvedOptions {
    requestTimeout: number;
    expireRequest: number;
    userAgent: string;
    autoReconnect: number;
    codeToErr: boolean;
    messageTransform: ((message: Message) => [unknown, unknown]) | null;
    logStatsInterval: number | null;
    maxMessageBytes: number;
    connectTimeout: number;
  }

  interface Stats {
    requests: number;
    responses: number;
    timeouts: number;
    pushes: number;
    lateAnswers: number;
    unknownAnswers: number;
    malformed: number;
    connects: number;
    disconnects: number;
    pending: number;
    connected: boolean;
  }

  /** The values of IPCError.code. */
  const ErrorCode: ErrorCodes;
  /** The default maxMessageBytes: 64 MiB. */
  const DEFAULT_MAX_MESSAGE_BYTES: number;

  /** err is an IPCError, a RemoteError, what codeToErr or messageTransform chose, or null. */
  type Callback<T = any> = (err: any, data: T) => void;
}

declare class IPCClient {
  constructor(socketPath: string, logger?: IPCClient.Logger | null, options?: IPCClient.Options);

  readonly socketPath: string;
  readonly logger: IPCClient.Logger | null;
  /** The options in force; requestTimeout, expireRequest, autoReconnect, codeToErr and messageTransform are read when used. */
  options: IPCClient.ResolvedOptions;
  /** True while a connection is open. */
  readonly connected: boolean;
  /** Requests awaiting an answer, plus timed-out ids still remembered to drop their late answers. */
  readonly pendingCount: number;

  connect(callback: (err: IPCClient.IPCError | null) => void): void;
  connect(): Promise<void>;

  send<T = any>(uri: string, data: unknown, callback: IPCClient.Callback<T>): void;
  send<T = any>(uri: string, callback: IPCClient.Callback<T>): void;
  send<T = any>(uri: string, data?: unknown): Promise<T>;

  close(callback: (err: null) => void): void;
  close(): Promise<void>;

  getStats(): IPCClient.Stats;

  /** A message without an id (a push, PUSH-1), or a top-level error with a null id (ERR-7). */
  on(event: 'data', listener: (message: IPCClient.Message) => void): this;
  /** A connection opened (also after each reconnection). */
  on(event: 'connect', listener: () => void): this;
  /** A connection ended; the error pending requests failed with. */
  on(event: 'disconnect', listener: (error: IPCClient.IPCError) => void): this;
  once(event: 'data', listener: (message: IPCClient.Message) => void): this;
  once(event: 'connect', listener: () => void): this;
  once(event: 'disconnect', listener: (error: IPCClient.IPCError) => void): this;
  off(event: 'data' | 'connect' | 'disconnect', listener: (...args: any[]) => void): this;
  addListener(event: 'data' | 'connect' | 'disconnect', listener: (...args: any[]) => void): this;
  removeListener(event: 'data' | 'connect' | 'disconnect', listener: (...args: any[]) => void): this;
  removeAllListeners(event?: 'data' | 'connect' | 'disconnect'): this;
  listenerCount(event: 'data' | 'connect' | 'disconnect'): number;

  /** The class itself, for `const { IPCClient } = require('pixl-ipc-client')`. */
  static readonly IPCClient: typeof IPCClient;
}

export = IPCClient;
