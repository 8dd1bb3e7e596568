<?php

/**
 * A scripted, deliberately misbehaving pixl-ipc peer for the client tests.
 *
 * Usage: php scripted_server.php SOCKET SCRIPT_FILE RECORD_FILE
 *
 * SCRIPT_FILE holds {"connections": [[step, ...], ...], "deadline_ms": N,
 * "backlog": N}. The n-th accepted connection runs the n-th step list, then is
 * closed; when every list has run the server removes its socket and exits.
 * It prints "listening on SOCKET" to stderr once it accepts connections, and
 * appends one JSON object per event to RECORD_FILE:
 * {"conn": n, "event": "accepted" | "line" | "half_closed" | "closed" | "eof",
 * "line": ...}.
 *
 * Steps (JSON arrays):
 *   ["read"]                     read one line; the last request is remembered
 *   ["reply", VALUE]             answer the last request with data VALUE
 *   ["echo"]                     answer the last request with its own data
 *   ["raw", TEXT]                write TEXT as is; "%ID%" becomes the last id
 *   ["raw64", BASE64]            write these bytes as is (for invalid UTF-8)
 *   ["big", BYTES, LF]           answer the last request with a string of BYTES
 *                                "x" as data; LF false leaves the line open
 *   ["repeat", COUNT, MS, TEXT]  write TEXT COUNT times, MS apart
 *   ["sleep", MS]                wait
 *   ["echo_all"]                 echo every request until the client closes
 *   ["wait_close"]               read (and record) until the client closes
 *   ["half_close"]               stop writing (FIN), as the original's socket.end();
 *                                the connection stays readable
 *   ["close"]                    close this connection now
 *   ["stop"]                     close the connection and the listener, exit
 */

declare(strict_types=1);

[$self, $path, $scriptFile, $recordFile] = $argv + [null, null, null, null];
if ($path === null || $scriptFile === null || $recordFile === null) {
    fwrite(STDERR, "usage: php scripted_server.php SOCKET SCRIPT_FILE RECORD_FILE\n");
    exit(2);
}
$script = json_decode((string) file_get_contents($scriptFile), true, 512, JSON_THROW_ON_ERROR);
$deadline = hrtime(true) + (int) (($script['deadline_ms'] ?? 20000) * 1e6);
if (function_exists('pcntl_alarm')) {
    // A test that goes wrong must not leave this process behind.
    pcntl_alarm((int) ceil(($script['deadline_ms'] ?? 20000) / 1000) + 1);
}

$record = static function (array $event) use ($recordFile): void {
    file_put_contents(
        $recordFile,
        json_encode($event, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE) . "\n",
        FILE_APPEND | LOCK_EX
    );
};

$remaining = static function () use ($deadline): float {
    return max(0.0, ($deadline - hrtime(true)) / 1e9);
};

$context = stream_context_create(['socket' => ['backlog' => $script['backlog'] ?? 16]]);
$server = stream_socket_server('unix://' . $path, $errno, $errstr, STREAM_SERVER_BIND | STREAM_SERVER_LISTEN, $context);
if ($server === false) {
    fwrite(STDERR, "cannot listen on {$path}: {$errstr}\n");
    exit(1);
}
fwrite(STDERR, "listening on {$path}\n");

/**
 * Read one line (without LF) or null at end of stream or deadline.
 *
 * @param resource $conn
 */
function read_line($conn, callable $remaining): ?string
{
    $left = $remaining();
    if ($left <= 0) {
        return null;
    }
    stream_set_timeout($conn, (int) $left, (int) (($left - (int) $left) * 1e6));
    $line = fgets($conn);
    if ($line === false) {
        return null;
    }
    return rtrim($line, "\n");
}

/** @param resource $conn */
function write_all($conn, string $bytes): void
{
    $done = 0;
    $length = strlen($bytes);
    while ($done < $length) {
        $count = @fwrite($conn, substr($bytes, $done, 1 << 20));
        if ($count === false || $count === 0) {
            return; // the client went away: the test looks at what it saw
        }
        $done += $count;
    }
}

$stop = false;
foreach ($script['connections'] as $index => $steps) {
    $conn = @stream_socket_accept($server, max(0.001, $remaining()));
    if ($conn === false) {
        break;
    }
    $record(['conn' => $index, 'event' => 'accepted']);
    $last = null;
    $lastId = null;
    $open = true;
    foreach ($steps as $step) {
        $name = $step[0];
        if ($name === 'read' || $name === 'echo_all' || $name === 'wait_close') {
            while (true) {
                $line = read_line($conn, $remaining);
                if ($line === null) {
                    $record(['conn' => $index, 'event' => 'eof']);
                    break;
                }
                $record([
                    'conn' => $index,
                    'event' => 'line',
                    'size' => strlen($line),
                    'line' => strlen($line) > 4096 ? substr($line, 0, 4096) : $line,
                ]);
                $last = json_decode($line, true);
                $lastId = is_array($last) ? ($last['ipcReqID'] ?? null) : null;
                if ($name === 'read') {
                    break;
                }
                if ($name === 'echo_all') {
                    write_all($conn, json_encode(['ipcReqID' => $lastId, 'data' => $last['data'] ?? null]) . "\n");
                }
            }
        } elseif ($name === 'reply') {
            write_all($conn, json_encode(['ipcReqID' => $lastId, 'data' => $step[1]], JSON_UNESCAPED_UNICODE) . "\n");
        } elseif ($name === 'echo') {
            write_all($conn, json_encode(['ipcReqID' => $lastId, 'data' => $last['data'] ?? null]) . "\n");
        } elseif ($name === 'raw') {
            write_all($conn, str_replace('%ID%', (string) $lastId, $step[1]));
        } elseif ($name === 'raw64') {
            write_all($conn, (string) base64_decode($step[1], true));
        } elseif ($name === 'big') {
            $line = '{"ipcReqID":' . json_encode($lastId) . ',"data":"' . str_repeat('x', $step[1]) . '"}';
            write_all($conn, ($step[2] ?? true) ? $line . "\n" : $line);
        } elseif ($name === 'repeat') {
            for ($i = 0; $i < $step[1]; $i++) {
                write_all($conn, $step[3]);
                usleep($step[2] * 1000);
            }
        } elseif ($name === 'sleep') {
            usleep($step[1] * 1000);
        } elseif ($name === 'half_close') {
            stream_socket_shutdown($conn, STREAM_SHUT_WR);
            $record(['conn' => $index, 'event' => 'half_closed']);
        } elseif ($name === 'close') {
            break;
        } elseif ($name === 'stop') {
            $stop = true;
            break;
        } else {
            fwrite(STDERR, "unknown step {$name}\n");
            exit(2);
        }
    }
    fclose($conn);
    $record(['conn' => $index, 'event' => 'closed']);
    if ($stop) {
        break;
    }
}
fclose($server);
@unlink($path);
exit(0);
