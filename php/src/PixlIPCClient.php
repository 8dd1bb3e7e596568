<?php

/**
 * PixlIPCClient: a blocking PHP client for pixl-ipc servers.
 *
 * A drop-in replacement for the original pixl-ipc PixlIPCClient: same class
 * name, constructor, options, public methods, exception codes and return
 * values, with the original's defects fixed (see php/README.md). Both classes
 * live in the global namespace, in this one file, so that replacing the
 * original's `require` line is the whole migration.
 *
 * Theory of operation: one request is in flight at a time. send() writes the
 * request line in one fwrite loop, then reads the socket in large chunks into a
 * buffer and splits it on LF until the line whose ipcReqID is the request's own
 * arrives, or the request's deadline passes. Lines on the way are handled as
 * the protocol says (spec/PROTOCOL.md): pushes are recorded (PUSH-2), late
 * answers to timed-out requests are dropped by id (CORR-3), lines that are not
 * messages are ignored (FRAME-4, FRAME-5).
 *
 * @license MIT
 */

declare(strict_types=1);

/**
 * An error raised by PixlIPCClient. getCode() is one of the PixlIPCClient::E_*
 * constants. For E_REMOTE, the remote error's code, message and the whole
 * message it came in are available too.
 */
class PixlIPCException extends Exception
{
    /** @var string|null */
    private $remoteCode;

    /** @var string|null */
    private $remoteMessage;

    /** @var mixed */
    private $remoteData;

    /**
     * @param string         $message       the human-readable text
     * @param int            $code          one of the PixlIPCClient::E_* constants
     * @param Throwable|null $previous      the underlying error, if any
     * @param string|null    $remoteCode    the wire error code (E_REMOTE only)
     * @param string|null    $remoteMessage the wire error message (E_REMOTE only)
     * @param mixed          $remoteData    the whole error message (E_REMOTE only)
     */
    public function __construct(
        string $message = '',
        int $code = 0,
        ?Throwable $previous = null,
        ?string $remoteCode = null,
        ?string $remoteMessage = null,
        $remoteData = null
    ) {
        parent::__construct($message, $code, $previous);
        $this->remoteCode = $remoteCode;
        $this->remoteMessage = $remoteMessage;
        $this->remoteData = $remoteData;
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
    /** The server closed the connection while the request waited (LIFE-3). */
    public const E_SERVER_CLOSE = 5005;
    /** The request's deadline passed (writing, or reading with throwOnTimeout). */
    public const E_TIMEOUT = 5006;
    /** The server answered with a top-level error (ERR-4); see getRemoteCode(). */
    public const E_REMOTE = 5007;
    /** A line from the server is longer than maxMessageBytes (LIMIT-3). */
    public const E_MESSAGE_TOO_LARGE = 5008;

    /** The default maxMessageBytes: 64 MiB, as the reference server (LIMIT-1). */
    public const DEFAULT_MAX_MESSAGE_BYTES = 67108864;

    /** errno of a connect refused for a full accept queue (Linux 11, BSDs 35). */
    private const EAGAIN = PHP_OS_FAMILY === 'Linux' ? 11 : 35;
    /** The original's text for E_SERVER_CLOSE, kept for code that matches on it. */
    private const SERVER_CLOSE_MESSAGE = 'Server closed the connection (readMessage)';
    /** Nesting accepted when decoding: LIMIT-4 asks for at least 256 levels. */
    private const JSON_DEPTH = 512;
    /** Bytes asked of one fread while no partial line is buffered. */
    private const READ_CHUNK = 65536;
    /** Bytes asked of one fread while a long line is arriving. */
    private const READ_CHUNK_LARGE = 1048576;
    /** The largest slice handed to fwrite after a partial write, so that the
     * rest of a large request is not copied again on every partial write. */
    private const WRITE_SLICE = 262144;

    /** @var string */
    private $socketPath;

    /** @var float connect timeout in seconds */
    private $connectTimeout;

    /** @var float request timeout in milliseconds */
    private $requestTimeout;

    /** @var string the userAgent option, JSON-encoded */
    private $userAgent;

    /** @var bool */
    private $throwOnTimeout;

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

    /** @var resource|null */
    private $socket = null;

    /** @var string bytes read and not yet consumed from $offset on */
    private $buffer = '';

    /** @var int start of the first unconsumed line in $buffer */
    private $offset = 0;

    /** @var int how far $buffer has been searched for LF */
    private $scanned = 0;

    /** @var int the next request number on this connection (CORR-1) */
    private $counter = 0;

    /** @var string the request's members after data, LF included */
    private $tail = '';

    /** @var int the process that opened the connection */
    private $ownerPid = 0;

    /** @var array<int, mixed> data of the pushes kept for getPushes() */
    private $pushes = [];

    /**
     * @param string               $socketPath path of the server's Unix socket
     * @param array<string, mixed> $options    see php/README.md; unknown keys are ignored
     *
     * @throws InvalidArgumentException an option has a value of the wrong type or range
     */
    public function __construct($socketPath, $options = [])
    {
        if (!is_array($options)) {
            throw new InvalidArgumentException('options must be an array');
        }
        $this->socketPath = (string) $socketPath;
        $this->connectTimeout = self::positiveNumber($options, 'connectTimeout', 500) / 1000;
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
        if ($this->socket !== null) {
            return true;
        }
        $path = $this->socketPath;
        // sun_path holds 108 bytes on Linux (104 on the BSDs) with its NUL;
        // PHP would silently truncate a longer path and connect elsewhere.
        $maxPath = PHP_OS_FAMILY === 'Linux' ? 107 : 103;
        if ($path === '' || strlen($path) > $maxPath || strpos($path, "\0") !== false) {
            throw new PixlIPCException(
                "Could not connect to socket: {$path}: the path is empty, contains NUL"
                . " or is longer than {$maxPath} bytes",
                self::E_SOCKET_CONNECT
            );
        }
        $deadline = hrtime(true) + (int) ($this->connectTimeout * 1e9);
        $pause = 1000;
        while (true) {
            $errno = 0;
            $errstr = '';
            $socket = @stream_socket_client(
                'unix://' . $path,
                $errno,
                $errstr,
                $this->connectTimeout,
                STREAM_CLIENT_CONNECT
            );
            if ($socket !== false) {
                break;
            }
            // A full accept queue (a burst of clients) fails a Unix socket
            // connect at once with EAGAIN: wait for room until connectTimeout.
            if ($errno !== self::EAGAIN || hrtime(true) + $pause * 1000 > $deadline) {
                $reason = $errstr !== '' ? $errstr : 'error ' . $errno;
                throw new PixlIPCException("Could not connect to socket: {$path}: {$reason}", self::E_SOCKET_CONNECT);
            }
            usleep($pause);
            $pause = min($pause * 2, 20000);
        }
        // Non-blocking with PHP's read buffer off: stream_select then sees
        // exactly what the kernel holds, and fread returns what is there.
        stream_set_blocking($socket, false);
        stream_set_read_buffer($socket, 0);
        $this->socket = $socket;
        $this->buffer = '';
        $this->offset = 0;
        $this->scanned = 0;
        $this->counter = 0;
        $this->ownerPid = getmypid();
        $this->tail = ',"pid":' . $this->ownerPid
            . ',"userAgent":' . $this->userAgent . "}\n";
        return true;
    }

    /**
     * Close the connection, if any. The next send() connects again.
     */
    public function close(): void
    {
        if ($this->socket !== null) {
            @fclose($this->socket);
            $this->socket = null;
        }
        $this->buffer = '';
        $this->offset = 0;
        $this->scanned = 0;
    }

    /**
     * Send one request and wait for its answer. Connects first when needed.
     *
     * @param mixed        $uri       the target, e.g. "/myapp/status" (REQ-2)
     * @param mixed        $request   the request data (REQ-4): an array or an
     *                                object (any JSON value with scalarRequests);
     *                                an empty array is sent as [] unless
     *                                emptyArrayAsObject is set
     * @param int|float|null $timeoutMs this request's timeout in ms, instead of
     *                                the requestTimeout option
     *
     * @return mixed the response's data (null when absent), or false when the
     *               deadline passed (unless throwOnTimeout is set)
     *
     * @throws PixlIPCException E_BAD_REQUEST_TYPE, E_SOCKET_CONNECT, E_SOCKET_WRITE,
     *                          E_TIMEOUT, E_SERVER_CLOSE, E_BAD_RESPONSE, E_REMOTE,
     *                          E_MESSAGE_TOO_LARGE
     */
    public function send($uri, $request, $timeoutMs = null)
    {
        if (
            !is_array($request) && !is_object($request)
            && !($this->scalarRequests && ($request === null || is_scalar($request)))
        ) {
            throw new PixlIPCException(
                'Request must be an array or an object, ' . gettype($request) . ' given',
                self::E_BAD_REQUEST_TYPE
            );
        }
        if ($timeoutMs === null) {
            $timeoutMs = $this->requestTimeout;
        } elseif ((!is_int($timeoutMs) && !is_float($timeoutMs)) || !($timeoutMs > 0)) {
            throw new InvalidArgumentException('timeoutMs must be a positive number');
        }
        $deadline = hrtime(true) + (int) ($timeoutMs * 1e6);
        // The uri and data are encoded once, before connecting, so that a
        // request that cannot be encoded costs no connection.
        if ($request === [] && $this->emptyArrayAsObject) {
            $data = '{}';
        } else {
            $data = self::encode($request);
        }
        $head = '{"uri":' . self::encode($uri) . ',"ipcReqID":"';
        // ipcReqID before data, so that a server can answer an oversize
        // request with its id (CORR-6). One line, one fwrite loop (FRAME-10).
        $line = fn(string $id): string => $head . $id . '","data":' . $data . $this->tail;
        if ($this->socket !== null && $this->ownerPid !== getmypid()) {
            // A forked child must not share its parent's connection: answers
            // would go to whichever process reads first. Closing the child's
            // copy of the descriptor leaves the parent's connection open.
            $this->close();
        }
        $reused = $this->socket !== null;
        $this->connect();
        $id = 'rq' . $this->counter++;
        $written = $this->write($line($id), $deadline);
        if ($written === false && $reused) {
            // The server closed the idle connection since the last request
            // (a restart): nothing of this request was written, so sending it
            // again on a new connection cannot duplicate it.
            $this->close();
            $this->connect();
            $id = 'rq' . $this->counter++;
            $written = $this->write($line($id), $deadline);
        }
        if ($written === false) {
            $this->close();
            throw new PixlIPCException(
                "Could not write to socket: {$this->socketPath}",
                self::E_SOCKET_WRITE
            );
        }
        return $this->receive($id, $deadline);
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
        if ($this->socket !== null) {
            try {
                $this->receive(null, 0);
            } catch (PixlIPCException $e) {
                // Draining has no request to fail: the connection is closed
                // and the next send() reports or repairs the situation.
                $this->close();
            }
        }
        $pushes = $this->pushes;
        $this->pushes = [];
        return $pushes;
    }

    /**
     * Write one request line, whole, before the deadline.
     *
     * @return bool false when the very first write failed (nothing was sent)
     *
     * @throws PixlIPCException E_SOCKET_WRITE after a partial write, E_TIMEOUT
     */
    private function write(string $line, int $deadline): bool
    {
        $length = strlen($line);
        $done = @fwrite($this->socket, $line);
        if ($done === $length) {
            return true;
        }
        if ($done === false) {
            return false;
        }
        while ($done < $length) {
            if (!$this->wait(false, $deadline)) {
                // A partial line is on the wire: the connection cannot carry
                // another request (FRAME-10).
                $this->close();
                throw new PixlIPCException(
                    "Timed out writing to socket: {$this->socketPath}",
                    self::E_TIMEOUT
                );
            }
            $count = @fwrite($this->socket, substr($line, $done, self::WRITE_SLICE));
            if ($count === false) {
                $this->close();
                throw new PixlIPCException(
                    "Could not write to socket: {$this->socketPath}",
                    self::E_SOCKET_WRITE
                );
            }
            $done += $count;
        }
        return true;
    }

    /**
     * Read lines until the one answering $id, and return its data.
     * With $id null, only handle what is already readable, then return null.
     *
     * @return mixed
     *
     * @throws PixlIPCException
     */
    private function receive(?string $id, int $deadline)
    {
        while (true) {
            $line = $this->takeLine();
            if ($line === null) {
                if (!$this->fill($id === null ? 0 : $deadline)) {
                    if ($id === null) {
                        return null;
                    }
                    if ($this->throwOnTimeout) {
                        throw new PixlIPCException(
                            "Timed out waiting for the answer to {$id}",
                            self::E_TIMEOUT
                        );
                    }
                    // The connection stays open: the late answer will be
                    // skipped by id (CORR-3, CORR-5).
                    return false;
                }
                continue;
            }
            if (($line[0] ?? '') !== '{' && (ltrim($line, " \t\r")[0] ?? '') !== '{') {
                continue; // FRAME-4, FRAME-5: not a message
            }
            try {
                $message = json_decode(
                    $line,
                    $this->assoc,
                    self::JSON_DEPTH,
                    $this->decodeFlags | JSON_THROW_ON_ERROR
                );
            } catch (JsonException $e) {
                if ($this->throwOnBadResponse && $id !== null) {
                    throw new PixlIPCException(
                        "Bad response from server while waiting for {$id}: " . $e->getMessage(),
                        self::E_BAD_RESPONSE,
                        $e
                    );
                }
                // FRAME-7: ignored, even when it seems to carry this request's
                // id: an unreadable line cannot be trusted to be its answer.
                continue;
            }
            if ($this->assoc) {
                $messageId = $message['ipcReqID'] ?? null;
            } else {
                $messageId = $message->ipcReqID ?? null;
            }
            if ($messageId === $id && $id !== null) {
                return $this->outcome($message, $id);
            }
            if (
                $messageId === null || $messageId === false || $messageId === '' || $messageId === 0
                || $messageId === 0.0 || is_array($messageId) || is_object($messageId)
            ) {
                $this->push($message); // PUSH-1, PUSH-2
            }
            // Else a late answer to a request that timed out (CORR-3).
        }
    }

    /**
     * The caller's result for its response (ERR-4): a top-level code is an
     * error, anything else returns data, errors inside data included (as the
     * original, whose callers test data.code themselves).
     *
     * @param array<string, mixed>|object $message
     *
     * @return mixed
     *
     * @throws PixlIPCException E_REMOTE
     */
    private function outcome($message, string $id)
    {
        $fields = $this->assoc ? $message : (array) $message;
        $code = $fields['code'] ?? null;
        if ($code) {
            $remoteCode = is_scalar($code) ? (string) $code : (string) json_encode($code);
            $text = $fields['message'] ?? '';
            $remoteMessage = is_scalar($text) ? (string) $text : (string) json_encode($text);
            throw new PixlIPCException(
                "Remote error for {$id}: {$remoteCode}: {$remoteMessage}",
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
     * @param array<string, mixed>|object $message
     */
    private function push($message): void
    {
        if ($this->assoc) {
            $data = $message['data'] ?? null;
        } else {
            $data = $message->data ?? null;
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
     * The next complete line in the buffer, without its LF, or null.
     *
     * @throws PixlIPCException E_MESSAGE_TOO_LARGE
     */
    private function takeLine(): ?string
    {
        $end = strpos($this->buffer, "\n", $this->scanned);
        if ($end === false) {
            $this->scanned = strlen($this->buffer);
            if ($this->scanned - $this->offset > $this->maxMessageBytes) {
                $this->tooLarge($this->scanned - $this->offset);
            }
            return null;
        }
        $length = $end - $this->offset;
        if ($length > $this->maxMessageBytes) {
            $this->tooLarge($length);
        }
        $line = substr($this->buffer, $this->offset, $length);
        $this->offset = $this->scanned = $end + 1;
        return $line;
    }

    /**
     * LIMIT-3: fail the request and close the connection, whose stream is
     * mid-line and unusable.
     *
     * @throws PixlIPCException E_MESSAGE_TOO_LARGE, always
     */
    private function tooLarge(int $size): void
    {
        $this->close();
        throw new PixlIPCException(
            "Message from server of at least {$size} bytes exceeds the limit of {$this->maxMessageBytes} bytes",
            self::E_MESSAGE_TOO_LARGE
        );
    }

    /**
     * Read more bytes into the buffer, waiting until the deadline.
     *
     * @return bool false when the deadline passed with nothing to read
     *
     * @throws PixlIPCException E_SERVER_CLOSE
     */
    private function fill(int $deadline): bool
    {
        if ($this->offset > 0) {
            $this->buffer = $this->offset >= strlen($this->buffer)
                ? ''
                : substr($this->buffer, $this->offset);
            $this->scanned -= $this->offset;
            $this->offset = 0;
        }
        while (true) {
            if (!$this->wait(true, $deadline)) {
                return false;
            }
            $size = strlen($this->buffer) > self::READ_CHUNK ? self::READ_CHUNK_LARGE : self::READ_CHUNK;
            $chunk = @fread($this->socket, $size);
            if ($chunk !== false && $chunk !== '') {
                $this->buffer .= $chunk;
                return true;
            }
            if ($chunk === false || feof($this->socket)) {
                $this->close();
                throw new PixlIPCException(self::SERVER_CLOSE_MESSAGE, self::E_SERVER_CLOSE);
            }
        }
    }

    /**
     * Wait until the socket is readable (or writable) or the deadline passes.
     * A deadline of 0 polls without waiting.
     */
    private function wait(bool $read, int $deadline): bool
    {
        while (true) {
            $left = $deadline === 0 ? 0 : $deadline - hrtime(true);
            if ($left < 0) {
                return false;
            }
            $readable = $read ? [$this->socket] : [];
            $writable = $read ? [] : [$this->socket];
            $except = null;
            $ready = @stream_select(
                $readable,
                $writable,
                $except,
                intdiv($left, 1000000000),
                intdiv($left % 1000000000, 1000)
            );
            if ($ready > 0) {
                return true;
            }
            if ($ready === 0 && $deadline === 0) {
                return false;
            }
            // 0 before the deadline (rounding) or false (a signal): loop; the
            // deadline check above ends it.
        }
    }

    /**
     * @param mixed $value
     *
     * @throws PixlIPCException E_BAD_REQUEST_TYPE: not representable in JSON
     */
    private static function encode($value): string
    {
        try {
            return json_encode(
                $value,
                JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR,
                self::JSON_DEPTH
            );
        } catch (JsonException $e) {
            throw new PixlIPCException(
                'Request cannot be encoded as JSON: ' . $e->getMessage(),
                self::E_BAD_REQUEST_TYPE,
                $e
            );
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
        if ((!is_int($value) && !is_float($value)) || !($value > 0) || is_infinite($value)) {
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
