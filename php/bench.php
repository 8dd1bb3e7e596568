<?php

/**
 * Sequential echo round trips through PixlIPCClient, for comparing clients.
 *
 * Usage: php php/bench.php SOCKET [SIZE_BYTES=1024] [COUNT=5000]
 * Prints one JSON line: size, count, mean and median round trip in microseconds.
 */

declare(strict_types=1);

require_once __DIR__ . '/src/PixlIPCClient.php';

if ($argc < 2) {
    fwrite(STDERR, "usage: php bench.php SOCKET [SIZE_BYTES] [COUNT]\n");
    exit(2);
}
$size = (int) ($argv[2] ?? 1024);
$count = (int) ($argv[3] ?? 5000);
// Entries of 16 bytes once encoded ("kNNNN":"xxxxxxxx",), like the kit's
// other benchmarks' N x 1 KiB payloads.
$data = [];
for ($i = 0; strlen((string) json_encode($data)) < $size; $i++) {
    $data["k{$i}"] = str_repeat('x', 8);
}
$client = new PixlIPCClient($argv[1], ['requestTimeout' => 60000, 'throwOnTimeout' => true]);
for ($i = 0; $i < min(200, $count); $i++) {
    $client->send('/ipcserver/test/echo', $data); // warm up
}
$times = [];
for ($i = 0; $i < $count; $i++) {
    $start = hrtime(true);
    $client->send('/ipcserver/test/echo', $data);
    $times[] = hrtime(true) - $start;
}
sort($times);
echo json_encode([
    'client' => 'php PixlIPCClient',
    'size' => strlen((string) json_encode($data)),
    'count' => $count,
    'mean_us' => round(array_sum($times) / $count / 1000, 1),
    'median_us' => round($times[intdiv($count, 2)] / 1000, 1),
]), "\n";
