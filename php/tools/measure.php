<?php

/**
 * The measurements behind the client's JSON and stream choices (php/README.md,
 * "Performance").
 *
 * Usage:
 *   php php/tools/measure.php json [SIZES_KIB=1,1024,16384]
 *       json_encode and json_decode of N x 1 KiB entries, with each choice of
 *       flags, for ASCII text, text full of '/', and non-ASCII text.
 *   php php/tools/measure.php client SOCKET [SIZES_KIB=1,1024,16384] [SECONDS=2] [CLIENT_FILE]
 *       echo round trips through PixlIPCClient (src/PixlIPCClient.php, or a
 *       modified copy given as CLIENT_FILE) against a server at SOCKET: median
 *       round trip, the client's CPU time and its page faults per request.
 *
 * Run the client mode of two copies in turn, several times, to compare them:
 * on a shared machine wall times vary by 30 % and more between runs, CPU time
 * and page faults far less.
 */

declare(strict_types=1);

/**
 * N entries of 1 KiB each once encoded (of $text, padded with "x"), as the
 * benchmark sends (python/benchmarks/bench_client.php).
 *
 * @return array<string, string>
 */
function entries(int $kib, string $text): array
{
    // '"e000000":"' + value + '",' is 13 bytes around each value.
    $value = str_repeat($text, intdiv(1011, strlen($text)));
    $value .= str_repeat('x', 1011 - strlen($value));
    $data = [];
    for ($i = 0; $i < $kib; $i++) {
        $data[sprintf('e%06d', $i)] = $value;
    }
    return $data;
}

/** Mean time of $call in microseconds, over at least 0.3 s. */
function timeOf(callable $call): float
{
    $call();
    $count = 0;
    $start = hrtime(true);
    do {
        $call();
        $count++;
    } while (hrtime(true) - $start < 300000000);
    return (hrtime(true) - $start) / $count / 1000;
}

function cpuSeconds(): float
{
    $usage = getrusage();
    return $usage['ru_utime.tv_sec'] + $usage['ru_utime.tv_usec'] / 1e6
        + $usage['ru_stime.tv_sec'] + $usage['ru_stime.tv_usec'] / 1e6;
}

/** @param array<int, int> $sizes */
function measureJson(array $sizes): void
{
    $encodeFlags = [
        'defaults (the original)' => 0,
        'UNESCAPED_SLASHES|UNICODE' => JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE,
        'THROW_ON_ERROR' => JSON_THROW_ON_ERROR,
    ];
    $texts = ['ascii' => 'x', 'slashes' => '/a/b', 'non-ascii' => "\u{e9}\u{4e2d}"];
    foreach ($sizes as $kib) {
        foreach ($texts as $name => $text) {
            $data = entries($kib, $text);
            foreach ($encodeFlags as $label => $flags) {
                $time = timeOf(static function () use ($data, $flags): void {
                    json_encode($data, $flags);
                });
                printf("%6d KiB %-9s encode %-34s %10.1f us\n", $kib, $name, $label, $time);
            }
        }
        $line = '{"ipcReqID":"rq1","data":' . json_encode(entries($kib, 'x')) . "}\n";
        $decodes = [
            'assoc' => static function () use ($line): void {
                json_decode($line, true);
            },
            'assoc, THROW_ON_ERROR, depth 512' => static function () use ($line): void {
                json_decode($line, true, 512, JSON_THROW_ON_ERROR);
            },
            'objects' => static function () use ($line): void {
                json_decode($line, false);
            },
        ];
        foreach ($decodes as $label => $call) {
            printf("%6d KiB ascii     decode %-34s %10.1f us\n", $kib, $label, timeOf($call));
        }
    }
}

/** @param array<int, int> $sizes */
function measureClient(string $socket, array $sizes, float $seconds, string $clientFile): void
{
    require $clientFile;
    ini_set('memory_limit', '-1');
    $client = new PixlIPCClient($socket, ['requestTimeout' => 120000, 'throwOnTimeout' => true]);
    echo $clientFile, "\n";
    foreach ($sizes as $kib) {
        $data = entries($kib, 'x');
        for ($i = 0; $i < 3; $i++) {
            if ($client->sendValue('/ipcserver/test/echo', $data) !== $data) {
                throw new RuntimeException("{$kib} KiB: the echo came back different");
            }
        }
        $times = [];
        $faults = getrusage()['ru_minflt'];
        $cpu = cpuSeconds();
        $start = hrtime(true);
        do {
            $begin = hrtime(true);
            $client->sendValue('/ipcserver/test/echo', $data);
            $times[] = hrtime(true) - $begin;
        } while (count($times) < 5 || hrtime(true) - $start < $seconds * 1e9);
        $count = count($times);
        sort($times);
        printf(
            "%6d KiB: median %10.1f us, client CPU %10.1f us, page faults %8.1f per request (%d requests)\n",
            $kib,
            $times[intdiv($count, 2)] / 1000,
            (cpuSeconds() - $cpu) / $count * 1e6,
            (getrusage()['ru_minflt'] - $faults) / $count,
            $count
        );
    }
}

$mode = $argv[1] ?? '';
if ($mode === 'json') {
    measureJson(array_map('intval', explode(',', $argv[2] ?? '1,1024,16384')));
} elseif ($mode === 'client' && isset($argv[2])) {
    measureClient(
        $argv[2],
        array_map('intval', explode(',', $argv[3] ?? '1,1024,16384')),
        (float) ($argv[4] ?? 2),
        $argv[5] ?? dirname(__DIR__) . '/src/PixlIPCClient.php'
    );
} else {
    fwrite(STDERR, "usage: php measure.php json [SIZES_KIB]\n"
        . "       php measure.php client SOCKET [SIZES_KIB] [SECONDS] [CLIENT_FILE]\n");
    exit(2);
}
