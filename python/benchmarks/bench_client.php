<?php

/**
 * Sequential echo round trips through PixlIPCClient, for the benchmark.
 *
 * Usage: php bench_client.php SOCKET SIZES REPS MIN_TIME MIN_COUNT WARMUP
 *   SIZES     KiB, comma-separated (each message is N entries of 1 KiB)
 *   MIN_TIME  seconds each repetition lasts at least
 *
 * Prints one JSON object: {"php_version", "rtt_seconds": {"KiB": [mean RTT of each repetition]}}.
 * Mirrors worker.py seq so that the PHP figures compare with the Python ones.
 */

declare(strict_types=1);

require __DIR__ . '/../../php/src/PixlIPCClient.php';

const ENTRY_BYTES = 1024;
// '"e000000":"' + value + '",' is 13 bytes around each value.
const ENTRY_OVERHEAD = 13;
const ECHO_URI = '/ipcserver/test/echo';

/** @return array<string, string> */
function makeData(int $kib): array
{
    $value = str_repeat('x', ENTRY_BYTES - ENTRY_OVERHEAD);
    $data = [];
    for ($i = 0; $i < $kib; $i++) {
        $data[sprintf('e%06d', $i)] = $value;
    }
    return $data;
}

/**
 * @param array<string, string> $data
 * @return list<float>
 */
function timeRoundTrips(PixlIPCClient $client, array $data, int $reps, float $minTime, int $minCount): array
{
    $results = [];
    for ($r = 0; $r < $reps; $r++) {
        $count = 0;
        $start = hrtime(true);
        while (true) {
            $answer = $client->send(ECHO_URI, $data);
            if ($answer === false) {
                throw new RuntimeException('request timed out');
            }
            $count++;
            $elapsed = (hrtime(true) - $start) / 1e9;
            if ($count >= $minCount && $elapsed >= $minTime) {
                break;
            }
        }
        $results[] = $elapsed / $count;
    }
    return $results;
}

function main(array $argv): int
{
    if (count($argv) !== 7) {
        fwrite(STDERR, "usage: php bench_client.php SOCKET SIZES REPS MIN_TIME MIN_COUNT WARMUP\n");
        return 2;
    }
    [, $socket, $sizes, $reps, $minTime, $minCount, $warmup] = $argv;
    ini_set('memory_limit', '-1');
    // A 16 MiB echo on a loaded machine needs far more than the 500 ms default.
    $client = new PixlIPCClient($socket, ['connectTimeout' => 5000, 'requestTimeout' => 120000]);
    $client->connect();
    $out = [];
    foreach (explode(',', $sizes) as $size) {
        $kib = (int) $size;
        $data = makeData($kib);
        $answer = $client->send(ECHO_URI, $data);
        if ($answer !== $data) {
            throw new RuntimeException("$kib KiB: the echo came back different");
        }
        timeRoundTrips($client, $data, 1, (float) $warmup, 2);
        $out[(string) $kib] = timeRoundTrips($client, $data, (int) $reps, (float) $minTime, (int) $minCount);
    }
    $client->close();
    echo json_encode(['php_version' => PHP_VERSION, 'rtt_seconds' => $out], JSON_THROW_ON_ERROR), "\n";
    return 0;
}

exit(main($argv));
