<?php

/**
 * PixlIPCClient: a blocking PHP client for pixl-ipc servers.
 *
 * A drop-in replacement for the original pixl-ipc PixlIPCClient: same class
 * name, constructor, options, methods and their signatures (send() takes the
 * request by reference), protected members, exception codes and return
 * values, with the original's defects fixed (see php/README.md). Both classes
 * live in the global namespace, in this one file, so that replacing the
 * original's `require` line is the whole migration.
 *
 * Theory of operation: one request is in flight at a time. send() writes the
 * request line, then reads lines until the one whose ipcReqID is the
 * request's own arrives, or the request's deadline passes. Lines on the way
 * are handled as the protocol says (spec/PROTOCOL.md): pushes and top-level
 * errors without an id are recorded (PUSH-2, ERR-7), late answers to
 * timed-out requests are dropped by id (CORR-3), lines that are not messages
 * are ignored (FRAME-4, FRAME-5, FRAME-7).
 *
 * The socket stays in blocking mode and every wait is a read or write with
 * stream_set_timeout() set to the time left: PHP then waits with poll(),
 * which works for any descriptor number, where stream_select() fails past
 * FD_SETSIZE (1024). Lines are read with stream_get_line() from PHP's own
 * stream buffer, in pieces, so that a line over maxMessageBytes is never
 * buffered whole (LIMIT-3).
 *
 * @license MIT
 */

declare(strict_types=1);

/**
 * An error raised by PixlIPCClient. getCode() is one of the PixlIPCClient::E_*
 * constants. For E_REMOTE, the remote error's code, message and the whole
 * message it came in are available too; for a failed system call (connect,
 * write), its errno and its text.
 */
class PixlIPCException extends Exception
{
    /** @var string|null */
    private $remoteCode;

    /** @var string|null */
    private $remoteMessage;

    /** @var mixed */
    private $remoteData;

    /** @var int|null */
    private $errno;

    /** @var string|null */
    private $errstr;

    /**
     * @param string         $message       the human-readable text
     * @param int            $code          one of the PixlIPCClient::E_* constants
     * @param Throwable|null $previous      the underlying error, if any
     * @param string|null    $remoteCode    the wire error code (E_REMOTE only)
     * @param string|null    $remoteMessage the wire error message (E_REMOTE only)
     * @param mixed          $remoteData    the whole error message (E_REMOTE only)
     * @param int|null       $errno         the system error number, when a system call failed
     * @param string|null    $errstr        the system's text for $errno
     */
    public function __construct(
        string $message = '',
        int $code = 0,
        ?Throwable $previous = null,
        ?string $remoteCode = null,
        ?string $remoteMessage = null,
        $remoteData = null,
        ?int $errno = null,
        ?string $errstr = null
    ) {
        parent::__construct($message, $code, $previous);
        $this->remoteCode = $remoteCode;
        $this->remoteMessage = $remoteMessage;
        $this->remoteData = $remoteData;
        $this->errno = $errno;
        $this->errstr = $errstr;
    }

    /**
     * The wire error code sent by the server, e.g. "no_uri" (ERR-3), or null
     * when the error did not come from the server.
     */
    public function getRemoteCode(): ?string
    {
        return $this->remoteCode;
    }

    /** The wire error message sent by the server, or null. */
    public function getRemoteMessage(): ?string
    {
        return $this->remoteMessage;
    }

    /**
     * The whole message the remote error came in (decoded as the client's
     * `assoc` option says), or null.
     *
     * @return mixed
     */
    public function getRemoteData()
    {
        return $this->remoteData;
    }

    /**
     * The errno of the system call that failed (e.g. 32 for EPIPE on a
     * write, 111 for ECONNREFUSED on a connect), or null.
     */
    public function getErrno(): ?int
    {
        return $this->errno;
    }

    /** The system's text for getErrno(), e.g. "Broken pipe", or null. */
    public function getErrstr(): ?string
    {
        return $this->errstr;
    }
}

/**
 * Client for a pixl-ipc server listening on a Unix domain socket.
 */
class PixlIPCClient
{
    /** Cannot connect to the socket path (LIFE-1). */
    public const E_SOCKET_CONNECT = 5001;
    /** The request is not an array or an object, or cannot be encoded as JSON. */
    public const E_BAD_REQUEST_TYPE = 5002;
    /** Writing the request failed (the connection is gone). */
    public const E_SOCKET_WRITE = 5003;
    /** A `{` line that is not valid JSON arrived (only with throwOnBadResponse). */
    public const E_BAD_RESPONSE = 5004;
    /** The server closed the connection (LIFE-3). */
    public const E_SERVER_CLOSE = 5005;
    /** The request's deadline passed (writing, or reading with throwOnTimeout). */
    public const E_TIMEOUT = 5006;
    /** The server answered with a top-level error (ERR-4); see getRemoteCode(). */
    public const E_REMOTE = 5007;
    /** A line from the server is longer than maxMessageBytes (LIMIT-3). */
    public const E_MESSAGE_TOO_LARGE = 5008;

    /** The default maxMessageBytes: 64 MiB, as the reference server (LIMIT-1). */
    public const DEFAULT_MAX_MESSAGE_BYTES = 67108864;

    /**
     * The first sentence of each code's message; details follow after ": ".
     * E_SERVER_CLOSE's is the original's text, exactly, with nothing after it.
     */
    private const MESSAGES = [
        self::E_SOCKET_CONNECT => 'Could not connect to socket',
        self::E_BAD_REQUEST_TYPE => 'Invalid request',
        self::E_SOCKET_WRITE => 'Could not write to socket',
        self::E_BAD_RESPONSE => 'Bad response from server',
        self::E_SERVER_CLOSE => 'Server closed the connection (readMessage)',
        self::E_TIMEOUT => 'Request timed out',
        self::E_REMOTE => 'Remote error',
        self::E_MESSAGE_TOO_LARGE => 'Message from server too large',
    ];

    /** errno of a call that would block: a connect to a full accept queue, a write timeout. */
    private const EAGAIN = PHP_OS_FAMILY === 'Linux' ? 11 : 35;
    /** errno of a call interrupted by a signal. */
    private const EINTR = 4;
    /** Nesting accepted when encoding and decoding: LIMIT-4 asks for at least 256 levels. */
    private const JSON_DEPTH = 512;
    /** Bytes PHP reads from the socket at a time into the stream's buffer. */
    private const READ_CHUNK = 262144;
    /**
     * The longest piece of a line taken from the stream at once: a longer
     * line is joined from pieces, and fails as soon as they pass the limit.
     * PHP's stream buffer grows to this size and keeps it while connected.
     * Measured (php/tools/measure.php): 1 MiB pieces cost a 1 MiB echo 40 %
     * more CPU than 4 MiB pieces, as PHP's allocator maps and unmaps a
     * fresh 2 MiB chunk for the extra join on every round trip.
     */
    private const READ_PIECE = 4194304;
    /** The most given to one fwrite, so that the deadline is checked between slices. */
    private const WRITE_SLICE = 262144;
    /** The longest single wait, in ms: PHP's poll() timeout is an int of milliseconds. */
    private const MAX_WAIT_MS = 3600000;
    /** The CORR-6 pattern: the first ipcReqID member, and the string or number after it, if any. */
    private const ID_PATTERN = '/"ipcReqID"[ \t\r\n]*:[ \t\r\n]*'
        . '("(?:[^"\\\\]|\\\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)?/';
    /** How much of an oversize line is searched for its id (CORR-6). */
    private const ID_RECOVERY_BYTES = 4096;

    /** @var resource|null the connection (the original's name; subclasses use it) */
    protected $fp = null;

    /** @var int the number of the next request id, "rq" . $serialCounter (the original's name) */
    protected $serialCounter = 0;

    /** @var string */
    private $socketPath;

    /** @var float|int connect timeout in milliseconds (INF: none) */
    private $connectTimeout;

    /** @var float|int request timeout in milliseconds (INF: none) */
    private $requestTimeout;

    /** @var string the userAgent option, JSON-encoded */
    private $userAgent;

    /** @var bool */
    private $throwOnTimeout;

    /** @var bool */
    private $reconnectOnClose;

    /** @var bool */
    private $emptyArrayAsObject;

    /** @var bool */
    private $scalarRequests;

    /** @var bool */
    private $throwOnBadResponse;

    /** @var int */
    private $maxMessageBytes;

    /** @var int json_decode flags */
    private $decodeFlags;

    /** @var bool */
    private $assoc;

    /** @var callable|null */
    private $onPush;

    /** @var int */
    private $maxPushes;

    /** @var array<int, string> full pieces of a line still arriving */
    private $pieces = [];

    /** @var int their total length */
    private $piecesLength = 0;

    /** @var string the request's members after data, LF included */
    private $tail = '';

    /** @var int the process that opened the connection */
    private $ownerPid = 0;

    /** @var array<int, mixed> data of the pushes kept for getPushes() */
    private $pushes = [];

    /** @var mixed the id of the request waiting for its answer, or null */
    private $pendingId = null;

    /** @var int|null hrtime() deadline of the read in progress (PHP_INT_MAX: none) */
    private $deadline = null;

    /**
     * @param string                    $socketPath path of the server's Unix socket
     * @param array<string, mixed>|null $options    see php/README.md; unknown keys are
     *                                              ignored, null and false mean none
     *
     * @throws InvalidArgumentException an option has a value of the wrong type or range
     */
    public function __construct($socketPath, $options = [])
    {
        if ($options === null || $options === false) {
            $options = [];
        } elseif (!is_array($options)) {
            throw new InvalidArgumentException('options must be an array');
        }
        $this->socketPath = (string) $socketPath;
        $this->connectTimeout = self::positiveNumber($options, 'connectTimeout', 500);
        $this->requestTimeout = self::positiveNumber($options, 'requestTimeout', 500);
        $cwd = getcwd();
        $userAgent = $options['userAgent'] ?? 'PHP/PixlIPCClient' . ($cwd === false ? '' : $cwd);
        if (!is_scalar($userAgent)) {
            throw new InvalidArgumentException('userAgent must be a string');
        }
        try {
            $this->userAgent = self::encode((string) $userAgent);
        } catch (PixlIPCException $e) {
            throw new InvalidArgumentException('userAgent must be valid UTF-8', 0, $e);
        }
        $this->throwOnTimeout = self::flag($options, 'throwOnTimeout', false);
        $this->reconnectOnClose = self::flag($options, 'reconnectOnClose', false);
        $this->emptyArrayAsObject = self::flag($options, 'emptyArrayAsObject', false);
        $this->scalarRequests = self::flag($options, 'scalarRequests', false);
        $this->throwOnBadResponse = self::flag($options, 'throwOnBadResponse', false);
        $this->assoc = self::flag($options, 'assoc', true);
        $this->decodeFlags = self::flag($options, 'bigIntAsString', false) ? JSON_BIGINT_AS_STRING : 0;
        $max = $options['maxMessageBytes'] ?? self::DEFAULT_MAX_MESSAGE_BYTES;
        if (!is_int($max) || $max < 1) {
            throw new InvalidArgumentException('maxMessageBytes must be a positive integer');
        }
        $this->maxMessageBytes = $max;
        $onPush = $options['onPush'] ?? null;
        if ($onPush !== null && !is_callable($onPush)) {
            throw new InvalidArgumentException('onPush must be callable');
        }
        $this->onPush = $onPush;
        $maxPushes = $options['maxPushes'] ?? 0;
        if (!is_int($maxPushes) || $maxPushes < 0) {
            throw new InvalidArgumentException('maxPushes must be a non-negative integer');
        }
        $this->maxPushes = $maxPushes;
    }

    public function __destruct()
    {
        $this->close();
    }

    /**
     * Connect to the server, unless already connected.
     *
     * @return bool true
     *
     * @throws PixlIPCException E_SOCKET_CONNECT: no socket at the path, connection
     *                          refused, permission denied, path too long, or timeout
     */
    public function connect()
    {
        if (is_resource($this->fp)) {
            return true;
        }
        $path = $this->socketPath;
        // sun_path holds 108 bytes on Linux (104 on the BSDs) with its NUL;
        // PHP would silently truncate a longer path and connect elsewhere.
        $maxPath = PHP_OS_FAMILY === 'Linux' ? 107 : 103;
        if ($path === '' || strlen($path) > $maxPath || strpos($path, "\0") !== false) {
            throw self::error(
                self::E_SOCKET_CONNECT,
                "{$path}: the path is empty, contains NUL or is longer than {$maxPath} bytes"
            );
        }
        $deadline = self::deadlineAfter($this->connectTimeout);
        $pause = 1000;
        while (true) {
            $errno = 0;
            $errstr = '';
            $socket = @stream_socket_client(
                'unix://' . $path,
                $errno,
                $errstr,
                min($this->connectTimeout, self::MAX_WAIT_MS) / 1000,
                STREAM_CLIENT_CONNECT
            );
            if ($socket !== false) {
                break;
            }
            // A full accept queue (a burst of clients) fails a Unix socket
            // connect at once with EAGAIN: wait for room until connectTimeout.
            if ($errno !== self::EAGAIN || hrtime(true) + $pause * 1000 > $deadline) {
                $reason = $errstr !== '' ? $errstr : 'error';
                throw self::error(self::E_SOCKET_CONNECT, "{$path}: {$reason} (errno {$errno})", null, $errno, $errstr);
            }
            usleep($pause);
            $pause = min($pause * 2, 20000);
        }
        stream_set_chunk_size($socket, self::READ_CHUNK);
        $this->fp = $socket;
        $this->pieces = [];
        $this->piecesLength = 0;
        $this->ownerPid = getmypid();
        $this->tail = ',"pid":' . $this->ownerPid . ',"userAgent":' . $this->userAgent . "}\n";
        return true;
    }

    /**
     * Close the connection, if any. The next send() connects again.
     * (No return type: code written for the original may define a close() of its own.)
     */
    public function close()
    {
        if (is_resource($this->fp)) {
            @fclose($this->fp);
        }
        $this->fp = null;
        $this->pieces = [];
        $this->piecesLength = 0;
    }

    /**
     * Send one request and wait for its answer, as the original: the request
     * is taken by reference (pass a variable), with the requestTimeout option.
     * Connects first when needed. See sendValue().
     *
     * @param mixed $uri     the target, e.g. "/myapp/status" (REQ-2)
     * @param mixed $request the request data: an array or an object
     *
     * @return mixed the response's data (null when absent), or false when the
     *               deadline passed (unless throwOnTimeout is set)
     *
     * @throws PixlIPCException
     */
    public function send($uri, &$request)
    {
        return $this->sendValue($uri, $request);
    }

    /**
     * Send one request and wait for its answer. Connects first when needed.
     *
     * @param mixed          $uri       the target, e.g. "/myapp/status" (REQ-2)
     * @param mixed          $request   the request data (REQ-4): an array or an
     *                                  object (any JSON value with scalarRequests);
     *                                  an empty array is sent as [] unless
     *                                  emptyArrayAsObject is set
     * @param int|float|null $timeoutMs this request's timeout in ms, instead of
     *                                  the requestTimeout option (INF: none)
     *
     * @return mixed the response's data (null when absent), or false when the
     *               deadline passed (unless throwOnTimeout is set)
     *
     * @throws PixlIPCException E_SOCKET_CONNECT, E_BAD_REQUEST_TYPE, E_SOCKET_WRITE,
     *                          E_TIMEOUT, E_SERVER_CLOSE, E_BAD_RESPONSE, E_REMOTE,
     *                          E_MESSAGE_TOO_LARGE
     * @throws InvalidArgumentException $timeoutMs is not a positive number
     */
    public function sendValue($uri, $request, $timeoutMs = null)
    {
        if ($timeoutMs === null) {
            $timeoutMs = $this->requestTimeout;
        } elseif ((!is_int($timeoutMs) && !is_float($timeoutMs)) || !($timeoutMs > 0)) {
            throw new InvalidArgumentException('timeoutMs must be a positive number');
        }
        if (is_resource($this->fp) && $this->ownerPid !== getmypid()) {
            // A forked child must not share its parent's connection: answers
            // would go to whichever process reads first. Closing the child's
            // copy of the descriptor leaves the parent's connection open.
            $this->close();
        }
        $reused = is_resource($this->fp);
        // Connect first, then check the request, as the original: with the
        // server down, any request gives E_SOCKET_CONNECT.
        $this->connect();
        if (
            !is_array($request) && !is_object($request)
            && !($this->scalarRequests && ($request === null || is_scalar($request)))
        ) {
            throw self::error(self::E_BAD_REQUEST_TYPE, gettype($request) . ' given, an array or an object expected');
        }
        $data = $request === [] && $this->emptyArrayAsObject ? '{}' : self::encode($request);
        $head = '{"uri":' . self::encode($uri) . ',"ipcReqID":';
        if ($reused && $this->reconnectOnClose && $this->peerClosed()) {
            // The server ended this connection while it was idle: nothing of
            // this request was written yet, so a new connection carries it.
            $this->close();
            $this->connect();
            $reused = false;
        }
        $deadline = self::deadlineAfter($timeoutMs);
        // ipcReqID before data, so that a server can answer an oversize
        // request with its id (CORR-6). One line, written whole (FRAME-10).
        $id = $this->nextID();
        $failure = $this->writeLine([$head . self::encode($id) . ',"data":', $data, $this->tail], $deadline);
        if ($failure !== null && $reused) {
            // The server went away since the last request (a restart): the
            // write failed before any byte left, so sending on a new
            // connection cannot duplicate the request (LIFE-4).
            $this->close();
            $this->connect();
            $id = $this->nextID();
            $failure = $this->writeLine([$head . self::encode($id) . ',"data":', $data, $this->tail], $deadline);
        }
        if ($failure !== null) {
            $this->close();
            throw $failure;
        }
        return $this->receive($id, $deadline, $timeoutMs);
    }

    /**
     * The data of the pushes received so far (PUSH-1), oldest first, then
     * forgets them. Reads what the server has already sent without waiting.
     * Pushes are kept only when the maxPushes option is above 0.
     *
     * @return array<int, mixed>
     */
    public function getPushes(): array
    {
        if (is_resource($this->fp)) {
            $this->deadline = 0;
            try {
                while (($message = $this->readMessage()) !== false) {
                    if (self::idOf($message) === null) {
                        $this->push($message);
                    }
                }
            } catch (PixlIPCException $e) {
                // Draining has no request to fail: the connection is closed
                // and the next send() reports or repairs the situation.
                $this->close();
            } finally {
                $this->deadline = null;
            }
        }
        $pushes = $this->pushes;
        $this->pushes = [];
        return $pushes;
    }

    /**
     * How many requests this client holds an entry for: 1 while send() waits
     * for an answer (seen from onPush), else 0. No timed-out id is kept: a
     * late answer is recognised by not matching the request in flight.
     */
    public function pendingCount(): int
    {
        return $this->pendingId === null ? 0 : 1;
    }

    /**
     * The id of the next request: "rq" and a counter that goes on for the life
     * of the client object, across reconnects, as the original's (CORR-1).
     *
     * @return string
     */
    protected function nextID()
    {
        return 'rq' . $this->serialCounter++;
    }

    /**
     * Read the next message from the server, as the original's readMessage():
     * the whole message decoded (ipcReqID, data, ...; arrays or objects as the
     * assoc option says), whatever its id. Lines that are not messages are
     * skipped (FRAME-4, FRAME-5), and so are malformed ones (FRAME-7) unless
     * throwOnBadResponse is set.
     *
     * @return mixed the message, or false when the deadline of the request in
     *               progress passes first (outside send(): requestTimeout from now)
     *
     * @throws PixlIPCException E_SERVER_CLOSE when the server closed the
     *                          connection, E_MESSAGE_TOO_LARGE, E_BAD_RESPONSE
     */
    protected function readMessage()
    {
        if (!is_resource($this->fp)) {
            throw self::error(self::E_SERVER_CLOSE);
        }
        $deadline = $this->deadline ?? self::deadlineAfter($this->requestTimeout);
        while (true) {
            $line = $this->readLine($deadline);
            if ($line === null) {
                return false;
            }
            if (($line[0] ?? '') !== '{' && (ltrim($line, " \t\r")[0] ?? '') !== '{') {
                continue; // FRAME-4, FRAME-5: not a message
            }
            try {
                return json_decode($line, $this->assoc, self::JSON_DEPTH, $this->decodeFlags | JSON_THROW_ON_ERROR);
            } catch (JsonException $e) {
                if ($this->throwOnBadResponse) {
                    throw self::error(self::E_BAD_RESPONSE, $e->getMessage(), $e);
                }
                // FRAME-7: ignored, even when it seems to carry a request's
                // id: an unreadable line cannot be trusted to be its answer.
            }
        }
    }

    /**
     * Read messages until the one answering $id, and return its data.
     *
     * @param mixed     $id
     * @param float|int $timeoutMs for the timeout's message
     *
     * @return mixed
     *
     * @throws PixlIPCException
     */
    private function receive($id, int $deadline, $timeoutMs)
    {
        $this->pendingId = $id;
        $this->deadline = $deadline;
        try {
            while (true) {
                $message = $this->readMessage();
                if ($message === false) {
                    if ($this->throwOnTimeout) {
                        throw self::error(self::E_TIMEOUT, "no answer to {$id} within {$timeoutMs} ms");
                    }
                    // The connection stays open: the late answer will be
                    // skipped by id (CORR-3, CORR-5).
                    return false;
                }
                $messageId = self::idOf($message);
                if ($messageId === $id) {
                    return $this->outcome($message, $id);
                }
                if ($messageId === null) {
                    // PUSH-1, PUSH-2; ERR-7: a top-level error without an id
                    // is not this request's answer either.
                    $this->push($message);
                }
                // Else a late answer to a request that timed out (CORR-3).
            }
        } finally {
            $this->pendingId = null;
            $this->deadline = null;
        }
    }

    /**
     * The message's ipcReqID, or null when it has none that correlates:
     * absent, or falsy as JavaScript counts it (PUSH-1, REQ-3).
     *
     * @param mixed $message
     *
     * @return mixed
     */
    private static function idOf($message)
    {
        if (is_array($message)) {
            $id = $message['ipcReqID'] ?? null;
        } elseif (is_object($message)) {
            $id = $message->ipcReqID ?? null;
        } else {
            return null;
        }
        return self::jsFalsy($id) ? null : $id;
    }

    /**
     * Falsy as JavaScript counts it, as the original reads ids and codes:
     * null (or absent), false, 0 and "". Unlike PHP's own test, "0" and an
     * empty array are truthy.
     *
     * @param mixed $value
     */
    private static function jsFalsy($value): bool
    {
        return $value === null || $value === false || $value === 0 || $value === 0.0 || $value === '';
    }

    /**
     * The caller's result for its response (ERR-4): a top-level code is an
     * error, anything else returns data, errors inside data included (as the
     * original, whose callers test data.code themselves).
     *
     * @param array<string, mixed>|object $message
     * @param mixed                       $id
     *
     * @return mixed
     *
     * @throws PixlIPCException E_REMOTE
     */
    private function outcome($message, $id)
    {
        $fields = is_array($message) ? $message : (array) $message;
        $code = $fields['code'] ?? null;
        if (!self::jsFalsy($code)) { // ERR-4: a truthy code, "0" included
            $remoteCode = is_scalar($code) ? (string) $code : (string) json_encode($code);
            $text = $fields['message'] ?? '';
            $remoteMessage = is_scalar($text) ? (string) $text : (string) json_encode($text);
            throw new PixlIPCException(
                self::MESSAGES[self::E_REMOTE] . ": {$remoteCode}: {$remoteMessage} (for {$id})",
                self::E_REMOTE,
                null,
                $remoteCode,
                $remoteMessage,
                $message
            );
        }
        return $fields['data'] ?? null;
    }

    /**
     * Record a push and hand it to the onPush callback.
     *
     * @param mixed $message
     */
    private function push($message): void
    {
        if (is_array($message)) {
            $data = $message['data'] ?? null;
        } else {
            $data = is_object($message) ? ($message->data ?? null) : null;
        }
        if ($this->maxPushes > 0) {
            if (count($this->pushes) >= $this->maxPushes) {
                array_shift($this->pushes);
            }
            $this->pushes[] = $data;
        }
        if ($this->onPush !== null) {
            ($this->onPush)($data, $message);
        }
    }

    /**
     * The next line from the server, without its LF, or null when the
     * deadline passes first (a deadline in the past: only what has arrived).
     *
     * @throws PixlIPCException E_SERVER_CLOSE, E_MESSAGE_TOO_LARGE
     */
    private function readLine(int $deadline): ?string
    {
        while (true) {
            // A piece of exactly this length means the line goes on. The
            // last piece before the limit ends one byte past it, so that a
            // line over the limit is known as soon as that byte arrives,
            // LF or not (LIMIT-3).
            $pieceLength = min(self::READ_PIECE, $this->maxMessageBytes + 1 - $this->piecesLength);
            $this->waitUntil($deadline);
            $piece = stream_get_line($this->fp, $pieceLength, "\n");
            if ($piece === false) {
                // Nothing before the wait ended. feof() must not wait again.
                stream_set_timeout($this->fp, 0, 0);
                if (feof($this->fp)) {
                    $this->close();
                    throw self::error(self::E_SERVER_CLOSE);
                }
                if (hrtime(true) >= $deadline) {
                    return null;
                }
                continue;
            }
            if ($this->pieces !== [] || strlen($piece) === $pieceLength) {
                $this->pieces[] = $piece;
                $this->piecesLength += strlen($piece);
                if ($this->piecesLength > $this->maxMessageBytes) {
                    $this->tooLarge();
                }
                if (strlen($piece) === $pieceLength) {
                    continue;
                }
                $piece = implode('', $this->pieces);
                $this->pieces = [];
                $this->piecesLength = 0;
            }
            return $piece;
        }
    }

    /**
     * LIMIT-3: fail the request and close the connection, whose stream is
     * mid-line and unusable. The exception names the id the line carries in
     * its first bytes (CORR-6), if any.
     *
     * @throws PixlIPCException E_MESSAGE_TOO_LARGE, always
     */
    private function tooLarge(): void
    {
        $size = $this->piecesLength;
        $head = substr($this->pieces[0], 0, self::ID_RECOVERY_BYTES);
        $this->close();
        $detail = "at least {$size} bytes, over the limit of {$this->maxMessageBytes} bytes";
        $id = self::recoverId($head);
        if ($id !== null) {
            $detail .= ', ipcReqID ' . json_encode($id);
        }
        throw self::error(self::E_MESSAGE_TOO_LARGE, $detail);
    }

    /**
     * CORR-6: the id in the head of a line that cannot be read whole. Only the
     * first ipcReqID member counts, and only a string or number complete in
     * the head (a number followed there by a byte that cannot continue it).
     *
     * @return mixed the id, or null when there is none that is truthy
     */
    private static function recoverId(string $head)
    {
        if (preg_match(self::ID_PATTERN, $head, $match, PREG_OFFSET_CAPTURE) !== 1 || ($match[1][1] ?? -1) < 0) {
            return null;
        }
        [$text, $at] = $match[1];
        $next = substr($head, $at + strlen($text), 1);
        if ($text[0] !== '"' && ($next === '' || strpbrk($next, '0123456789.eE+-') !== false)) {
            return null; // a number that may go on past the head: the whole id or none
        }
        $id = json_decode($text);
        return self::jsFalsy($id) ? null : $id;
    }

    /**
     * Write one request line, given as consecutive parts, before the deadline.
     * A short line goes out in one write; a long one part by part, so that
     * its data is never copied into one more string of its size.
     *
     * @param array<int, string> $parts
     *
     * @return PixlIPCException|null E_SOCKET_WRITE, not thrown, when the very
     *                               first write failed (nothing was sent); null
     *                               when the line was written
     *
     * @throws PixlIPCException E_SOCKET_WRITE after a partial write, E_TIMEOUT
     */
    private function writeLine(array $parts, int $deadline): ?PixlIPCException
    {
        $length = 0;
        foreach ($parts as $part) {
            $length += strlen($part);
        }
        if ($length <= self::WRITE_SLICE) {
            $parts = [implode('', $parts)];
        }
        $written = 0;
        $notice = null;
        // PHP reports a failed send only as a notice that holds the errno:
        // catch it (a user's error handler must not see it either).
        set_error_handler(static function (int $type, string $message) use (&$notice): bool {
            $notice = $message;
            return true;
        });
        try {
            foreach ($parts as $part) {
                $partLength = strlen($part);
                $done = 0;
                while ($done < $partLength) {
                    $this->waitUntil($deadline);
                    $notice = null;
                    $count = $done === 0
                        ? fwrite($this->fp, $part, self::WRITE_SLICE)
                        : fwrite($this->fp, substr($part, $done, self::WRITE_SLICE));
                    $done += (int) $count;
                    $written += (int) $count;
                    if ($notice === null) {
                        continue; // a whole slice went out
                    }
                    [$errno, $errstr] = self::errnoOf($notice);
                    if ($errno === self::EAGAIN || $errno === self::EINTR) {
                        if (hrtime(true) < $deadline) {
                            continue; // woken early: PHP counts in whole milliseconds
                        }
                        // A partial line may be on the wire: the connection
                        // cannot carry another request (FRAME-10).
                        $this->close();
                        throw self::error(
                            self::E_TIMEOUT,
                            "while writing to {$this->socketPath}, {$written} of {$length} bytes written"
                        );
                    }
                    $failure = self::error(
                        self::E_SOCKET_WRITE,
                        "{$this->socketPath}: {$errstr} (errno {$errno}), {$written} of {$length} bytes written",
                        null,
                        $errno,
                        $errstr
                    );
                    if ($written === 0) {
                        return $failure;
                    }
                    $this->close();
                    throw $failure;
                }
            }
            return null;
        } finally {
            restore_error_handler();
        }
    }

    /**
     * Whether the server has ended the connection (end of stream is waiting
     * to be read), without waiting and without taking any bytes.
     */
    private function peerClosed(): bool
    {
        stream_set_timeout($this->fp, 0, 0);
        return feof($this->fp);
    }

    /**
     * Make the stream's next read or write wait until $deadline at most.
     * PHP waits in whole milliseconds, rounded down: round up, so as not to
     * wake before the deadline; a deadline in the past gives no wait at all.
     */
    private function waitUntil(int $deadline): void
    {
        $left = $deadline - hrtime(true);
        if ($left <= 0) {
            stream_set_timeout($this->fp, 0, 0);
            return;
        }
        $ms = intdiv($left + 999999, 1000000);
        if ($ms > self::MAX_WAIT_MS) {
            $ms = self::MAX_WAIT_MS;
        }
        stream_set_timeout($this->fp, intdiv($ms, 1000), ($ms % 1000) * 1000);
    }

    /**
     * The hrtime() deadline $timeoutMs from now; PHP_INT_MAX (none) for a
     * timeout too long to count in nanoseconds (INF, PHP_INT_MAX, 1e13).
     *
     * @param float|int $timeoutMs
     */
    private static function deadlineAfter($timeoutMs): int
    {
        $now = hrtime(true);
        $ns = $timeoutMs * 1e6;
        return $ns < PHP_INT_MAX - $now ? $now + (int) $ns : PHP_INT_MAX;
    }

    /**
     * The errno and its text in a PHP stream notice such as
     * "fwrite(): Send of 5 bytes failed with errno=32 Broken pipe".
     *
     * @return array{0: int|null, 1: string}
     */
    private static function errnoOf(string $notice): array
    {
        if (preg_match('/errno=(\d+) (.*)$/s', $notice, $match) === 1) {
            return [(int) $match[1], $match[2]];
        }
        return [null, $notice];
    }

    /**
     * An exception of $code: the code's fixed first sentence, then $detail.
     */
    private static function error(
        int $code,
        string $detail = '',
        ?Throwable $previous = null,
        ?int $errno = null,
        ?string $errstr = null
    ): PixlIPCException {
        $message = self::MESSAGES[$code] . ($detail === '' ? '' : ': ' . $detail);
        return new PixlIPCException($message, $code, $previous, null, null, null, $errno, $errstr);
    }

    /**
     * JSON as the original writes it: json_encode's defaults, so '/' is
     * written '\/', non-ASCII characters as \u escapes and 1.0 as 1.
     *
     * @param mixed $value
     *
     * @throws PixlIPCException E_BAD_REQUEST_TYPE: not representable in JSON
     */
    private static function encode($value): string
    {
        try {
            return json_encode($value, JSON_THROW_ON_ERROR, self::JSON_DEPTH);
        } catch (JsonException $e) {
            throw self::error(self::E_BAD_REQUEST_TYPE, 'cannot be encoded as JSON: ' . $e->getMessage(), $e);
        }
    }

    /**
     * @param array<string, mixed> $options
     *
     * @return float|int
     */
    private static function positiveNumber(array $options, string $key, int $default)
    {
        $value = $options[$key] ?? $default;
        // Numeric strings are accepted: configuration often arrives as text.
        if (is_string($value) && is_numeric($value)) {
            $value = $value + 0;
        }
        if ((!is_int($value) && !is_float($value)) || !($value > 0)) {
            throw new InvalidArgumentException("{$key} must be a positive number of milliseconds");
        }
        return $value;
    }

    /** @param array<string, mixed> $options */
    private static function flag(array $options, string $key, bool $default): bool
    {
        $value = $options[$key] ?? $default;
        if (!is_bool($value)) {
            throw new InvalidArgumentException("{$key} must be a boolean");
        }
        return $value;
    }
}
