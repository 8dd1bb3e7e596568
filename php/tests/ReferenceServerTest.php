<?php

declare(strict_types=1);

namespace PixlIPC\Tests;

use PHPUnit\Framework\TestCase;
use PixlIPC\Tests\Support\ReferenceServer;
use PixlIPC\Tests\Support\TestProcesses;
use PixlIPC\Tests\Support\WatchedClient;
use PixlIPCClient;
use PixlIPCException;
use stdClass;

/**
 * The client against the Python reference server (`python -m pixl_ipc serve`).
 * Most tests share one server; the ones that stop or configure a server
 * start their own.
 */
final class ReferenceServerTest extends TestCase
{
    /** @var array<int, ReferenceServer> */
    private $own = [];

    /** @var ReferenceServer|null */
    private static $handlers;

    protected function tearDown(): void
    {
        foreach ($this->own as $server) {
            $server->stop();
        }
        $this->own = [];
    }

    /** @param array<int, string> $args */
    private function ownServer(array $args = []): ReferenceServer
    {
        $server = new ReferenceServer($args);
        $this->own[] = $server;
        return $server;
    }

    /** @param array<string, mixed> $options */
    private function client(array $options = []): PixlIPCClient
    {
        return new PixlIPCClient(ReferenceServer::shared()->path, $options + ['requestTimeout' => 10000]);
    }

    /** One server with the test handlers (support/test_handlers.py), started on first use. */
    private function handlersServer(): ReferenceServer
    {
        if (self::$handlers === null) {
            self::$handlers = new ReferenceServer(['--handlers', __DIR__ . '/support/test_handlers.py']);
        }
        return self::$handlers;
    }

    public function testEchoOfALiteralArray(): void
    {
        $data = ['name' => 'pixl', 'list' => [1, 2.5, true, null, 'x'], 'map' => ['a' => ['b' => 'c']]];
        for ($i = 0; $i < 60; $i++) {
            $data["k{$i}"] = str_repeat('v', 8);
        }
        $client = $this->client();
        $this->assertSame($data, $client->sendValue('/ipcserver/test/echo', $data));
        $this->assertSame($data, $client->sendValue('/ipcserver/test/echo', $data));
    }

    public function testEmptyRequests(): void
    {
        $client = $this->client(['assoc' => false]);
        $this->assertSame([], $client->sendValue('/ipcserver/test/echo', []));
        $this->assertEquals(new stdClass(), $client->sendValue('/ipcserver/test/echo', new stdClass()));
        $this->assertEquals(new stdClass(), $client->sendValue('/ipcserver/test/echo', (object) []));
        $client = new PixlIPCClient(ReferenceServer::shared()->path, ['assoc' => false, 'emptyArrayAsObject' => true]);
        $this->assertEquals(new stdClass(), $client->sendValue('/ipcserver/test/echo', []));
    }

    public function testUnicodeRoundTrip(): void
    {
        // FRAME-8: astral characters, the JavaScript line terminators, NUL,
        // combining marks, right-to-left text, the last code point.
        $data = [
            'astral' => "\u{1F600}\u{1D11E}\u{10FFFF}",
            'separators' => "a\u{2028}b\u{2029}c",
            'nul' => "x\0y",
            'mixed' => "e\u{301} \u{5D0}\u{5D1} \u{FEFF} \u{FFFF}",
            "\u{1F511}" => 'astral key',
            'controls' => "\t\r\n\x01\x1f",
        ];
        $this->assertSame($data, $this->client()->sendValue('/ipcserver/test/echo', $data));
    }

    public function testSixteenMiBEcho(): void
    {
        $big = str_repeat('0123456789abcdef', 1 << 20);
        $client = $this->client(['requestTimeout' => 40000]);
        $result = $client->sendValue('/ipcserver/test/echo', ['big' => $big]);
        $this->assertIsArray($result);
        $this->assertSame(16 << 20, strlen($result['big']));
        $this->assertTrue($result['big'] === $big);
        $this->assertSame(['after' => 1], $client->sendValue('/ipcserver/test/echo', ['after' => 1]));
    }

    public function testTenThousandRequestsLeakNeitherMemoryNorDescriptors(): void
    {
        $server = $this->handlersServer();
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 10000, 'maxPushes' => 10]);
        $run = function (int $count) use ($client): void {
            for ($i = 0; $i < $count; $i++) {
                if ($i % 1000 === 500) {
                    // A timeout (its late answer is skipped by the next
                    // request), pushes, and a new connection.
                    $this->assertFalse($client->sendValue('/ipcserver/test/delay', ['delay' => 20], 1));
                    $client->sendValue('/test/push', ['count' => 2]);
                    $client->getPushes();
                    $client->close();
                }
                $this->assertSame(['i' => $i], $client->sendValue('/ipcserver/test/echo', ['i' => $i]));
            }
        };
        $run(1000);
        $descriptors = count(scandir('/proc/self/fd') ?: []);
        $memory = memory_get_usage();
        $run(10000);
        $this->assertSame($descriptors, count(scandir('/proc/self/fd') ?: []));
        $this->assertLessThan(64 * 1024, memory_get_usage() - $memory);
    }

    public function testMemoryAfterALargeAnswerIsBounded(): void
    {
        // PHP's stream buffer keeps at most READ_PIECE (4 MiB) and a read
        // chunk after a long line; everything else is freed.
        $client = $this->client(['requestTimeout' => 40000]);
        $client->sendValue('/ipcserver/test/echo', ['small' => 1]);
        $memory = memory_get_usage();
        $big = ['big' => str_repeat('m', 16 << 20)];
        $this->assertSame(16 << 20, strlen($client->sendValue('/ipcserver/test/echo', $big)['big']));
        unset($big);
        $client->sendValue('/ipcserver/test/echo', ['small' => 2]);
        $this->assertLessThan((4 << 20) + (1 << 20), memory_get_usage() - $memory);
    }

    public function testDeepNestingRoundTrip(): void
    {
        // LIMIT-4: at least 256 levels.
        $deep = [];
        for ($i = 0; $i < 300; $i++) {
            $deep = [$deep];
        }
        $this->assertSame($deep, $this->client()->sendValue('/ipcserver/test/echo', $deep));
    }

    public function testNumbersRoundTrip(): void
    {
        $data = [9007199254740991, -9007199254740991, 1.5e300, 0.1, 2.5, -7, 0, PHP_INT_MAX];
        $this->assertSame($data, $this->client()->sendValue('/ipcserver/test/echo', $data));
        // json_encode's defaults, as the original: 1.0 is written 1 and -0.0 -0.
        $this->assertSame([1, 0], $this->client()->sendValue('/ipcserver/test/echo', [1.0, -0.0]));
    }

    public function testMissingUriRaisesRemoteNoUri(): void
    {
        $client = $this->client();
        foreach (['', null, 0, false] as $uri) {
            try {
                $client->sendValue($uri, ['a' => 1]);
                $this->fail('no exception for uri ' . var_export($uri, true));
            } catch (PixlIPCException $e) {
                $this->assertSame(PixlIPCClient::E_REMOTE, $e->getCode());
                $this->assertSame('no_uri', $e->getRemoteCode());
                $this->assertSame('Missing required uri parameter from request', $e->getRemoteMessage());
                $this->assertArrayNotHasKey('data', $e->getRemoteData());
            }
        }
        $this->assertSame(['still' => 'ok'], $client->sendValue('/ipcserver/test/echo', ['still' => 'ok']));
    }

    public function testUnknownUriReturnsNoHandlerFoundAsData(): void
    {
        $this->assertSame(
            ['code' => 'no_handler_found', 'message' => 'No handler found for /no/such/uri'],
            $this->client()->sendValue('/no/such/uri', ['a' => 1])
        );
    }

    public function testDelayAnswers(): void
    {
        $this->assertSame(['delay' => 50], $this->client()->sendValue('/ipcserver/test/delay', ['delay' => 50]));
    }

    public function testTimeoutThenTheNextRequestGetsItsOwnAnswer(): void
    {
        $client = $this->client(['requestTimeout' => 100]);
        $this->assertFalse($client->sendValue('/ipcserver/test/delay', ['delay' => 400]));
        // The late {"delay": 400} arrives while this one waits, and is skipped.
        $this->assertSame(['delay' => 500], $client->sendValue('/ipcserver/test/delay', ['delay' => 500], 5000));
        $this->assertSame(['n' => 3], $client->sendValue('/ipcserver/test/echo', ['n' => 3]));
    }

    public function testThrowOnTimeout(): void
    {
        $client = $this->client(['requestTimeout' => 100, 'throwOnTimeout' => true]);
        try {
            $client->sendValue('/ipcserver/test/delay', ['delay' => 400]);
            $this->fail('no timeout');
        } catch (PixlIPCException $e) {
            $this->assertSame(PixlIPCClient::E_TIMEOUT, $e->getCode());
        }
    }

    public function testRequestAsTheServerReadsIt(): void
    {
        $server = $this->handlersServer();
        $client = new PixlIPCClient($server->path, ['userAgent' => 'tests/1.0']);
        $request = $client->sendValue('/test/request', ['a' => [1, 2]]);
        $this->assertSame(
            [
                'uri' => '/test/request',
                'ipcReqID' => 'rq0',
                'data' => ['a' => [1, 2]],
                'pid' => getmypid(),
                'userAgent' => 'tests/1.0',
            ],
            $request
        );
    }

    public function testPushesFromTheServerAreSkippedAndKept(): void
    {
        $server = $this->handlersServer();
        $seen = 0;
        $client = new PixlIPCClient($server->path, [
            'maxPushes' => 100,
            'onPush' => function () use (&$seen): void {
                $seen++;
            },
        ]);
        $this->assertSame(['pushed' => 3], $client->sendValue('/test/push', ['count' => 3]));
        $this->assertSame([['push' => 0], ['push' => 1], ['push' => 2]], $client->getPushes());
        $this->assertSame(3, $seen);
    }

    public function testForkedChildOpensItsOwnConnection(): void
    {
        if (!function_exists('pcntl_fork')) {
            $this->markTestSkipped('pcntl is not available');
        }
        $client = new PixlIPCClient($this->handlersServer()->path, ['requestTimeout' => 10000]);
        $this->assertSame('rq0', $client->sendValue('/test/request', [])['ipcReqID']);
        $resultFile = TestProcesses::tempDir() . '/child.json';
        $child = pcntl_fork();
        if ($child === 0) {
            // The child: report, then end without running the parent's
            // shutdown functions (they stop the servers).
            try {
                $seen = $client->sendValue('/test/request', ['from' => 'child']);
                $peer = $client->sendValue('/test/peer', [])['pid'];
            } catch (\Throwable $e) {
                $seen = ['error' => $e->getMessage()];
                $peer = null;
            }
            file_put_contents($resultFile, json_encode(['pid' => getmypid(), 'seen' => $seen, 'peer' => $peer]));
            posix_kill(getmypid(), SIGKILL);
        }
        $this->assertGreaterThan(0, $child);
        pcntl_waitpid($child, $status);
        $result = json_decode((string) file_get_contents($resultFile), true);
        $this->assertSame($result['pid'], $result['seen']['pid'] ?? null, 'the child sent with its own pid');
        $this->assertSame($result['pid'], $result['peer'], 'on a connection the child opened');
        // The parent's connection is untouched.
        $seen = $client->sendValue('/test/request', ['from' => 'parent']);
        $this->assertSame(['rq1', getmypid()], [$seen['ipcReqID'], $seen['pid']]);
        $this->assertSame(['pid' => getmypid()], $client->sendValue('/test/peer', []));
    }

    public function testServerRestartBetweenRequestsIsTransparent(): void
    {
        $server = $this->ownServer();
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 10000]);
        $this->assertSame(['n' => 1], $client->sendValue('/ipcserver/test/echo', ['n' => 1]));
        $server->stop();
        $server->start();
        $this->assertSame(['n' => 2], $client->sendValue('/ipcserver/test/echo', ['n' => 2]));
    }

    public function testServerDownGivesConnectErrorThenReconnectsWhenItIsBack(): void
    {
        $server = $this->ownServer();
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 10000]);
        $this->assertSame(['n' => 1], $client->sendValue('/ipcserver/test/echo', ['n' => 1]));
        $server->stop();
        try {
            $client->sendValue('/ipcserver/test/echo', ['n' => 2]);
            $this->fail('sent to a stopped server');
        } catch (PixlIPCException $e) {
            $this->assertSame(PixlIPCClient::E_SOCKET_CONNECT, $e->getCode());
        }
        $server->start();
        $this->assertSame(['n' => 3], $client->sendValue('/ipcserver/test/echo', ['n' => 3]));
    }

    /**
     * The original's "test unexpected socket close": the server ends every
     * connection (close_connections(), a half-close as the original's
     * socket.end()); the next send throws E_SERVER_CLOSE once, with the
     * original's message, and the send after it reconnects.
     */
    public function testServerClosingConnectionsGivesServerCloseOnceThenReconnects(): void
    {
        $server = $this->ownServer(['--handlers', __DIR__ . '/support/test_handlers.py']);
        $client = new WatchedClient($server->path, ['requestTimeout' => 10000]);
        $this->assertSame(['n' => 1], $client->sendValue('/ipcserver/test/echo', ['n' => 1]));
        $this->closeConnections($server, $client);
        try {
            $client->sendValue('/ipcserver/test/echo', ['n' => 2]);
            $this->fail('no E_SERVER_CLOSE after the server closed the connection');
        } catch (PixlIPCException $e) {
            $this->assertSame(PixlIPCClient::E_SERVER_CLOSE, $e->getCode(), $e->getMessage());
            $this->assertSame('Server closed the connection (readMessage)', $e->getMessage());
        }
        $this->assertSame(['n' => 3], $client->sendValue('/ipcserver/test/echo', ['n' => 3]));
        $this->assertSame(['n' => 4], $client->sendValue('/ipcserver/test/echo', ['n' => 4]));
    }

    public function testServerClosingConnectionsIsTransparentWithReconnectOnClose(): void
    {
        $server = $this->ownServer(['--handlers', __DIR__ . '/support/test_handlers.py']);
        $client = new WatchedClient($server->path, ['requestTimeout' => 10000, 'reconnectOnClose' => true]);
        $this->assertSame(['n' => 1], $client->sendValue('/ipcserver/test/echo', ['n' => 1]));
        $this->closeConnections($server, $client);
        $this->assertSame(['n' => 2], $client->sendValue('/ipcserver/test/echo', ['n' => 2]));
    }

    /** Ask the server to end every connection, and wait until $client's has ended. */
    private function closeConnections(ReferenceServer $server, WatchedClient $client): void
    {
        $other = new PixlIPCClient($server->path, ['requestTimeout' => 10000]);
        $this->assertSame(['closing' => true], $other->sendValue('/test/close_connections', []));
        $this->assertTrue($client->waitForServerEnd(), 'the server ended the connection within 10 s');
    }

    /** @return array<string, array{0: float|int}> */
    public function hugeTimeouts(): array
    {
        return ['1e13 ms' => [1e13], 'PHP_INT_MAX ms' => [PHP_INT_MAX], 'INF' => [INF]];
    }

    /**
     * @dataProvider hugeTimeouts
     *
     * @param float|int $timeout
     */
    public function testHugeTimeoutsMeanNoDeadline($timeout): void
    {
        $path = ReferenceServer::shared()->path;
        $client = new PixlIPCClient($path, ['requestTimeout' => $timeout, 'connectTimeout' => $timeout]);
        $this->assertSame(['delay' => 200], $client->sendValue('/ipcserver/test/delay', ['delay' => 200]));
        $client = new PixlIPCClient($path);
        $this->assertSame(['delay' => 200], $client->sendValue('/ipcserver/test/delay', ['delay' => 200], $timeout));
        $this->assertSame(['big' => str_repeat('b', 1 << 20)], $client->sendValue(
            '/ipcserver/test/echo',
            ['big' => str_repeat('b', 1 << 20)],
            $timeout
        ));
    }

    public function testWorksWithMoreThan1024OpenDescriptors(): void
    {
        // stream_select() cannot wait on a descriptor past FD_SETSIZE (1024).
        $wanted = 1100;
        $limit = function_exists('posix_getrlimit') ? posix_getrlimit()['soft openfiles'] : null;
        if (is_numeric($limit) && (int) $limit < $wanted + 64) {
            $hard = posix_getrlimit()['hard openfiles'];
            if (
                !function_exists('posix_setrlimit')
                || (is_numeric($hard) && (int) $hard < $wanted + 64)
                || !posix_setrlimit(POSIX_RLIMIT_NOFILE, $wanted + 64, is_numeric($hard) ? (int) $hard : -1)
            ) {
                $this->markTestSkipped("cannot raise the open files limit ({$limit}) past {$wanted}");
            }
        }
        $held = [];
        try {
            for ($i = 0; $i < $wanted; $i++) {
                $held[] = fopen('/dev/null', 'r');
            }
            $this->assertGreaterThan(1024, count(scandir('/proc/self/fd') ?: []) - 2);
            $client = new PixlIPCClient(ReferenceServer::shared()->path, ['requestTimeout' => 20000]);
            $this->assertSame(['n' => 1], $client->sendValue('/ipcserver/test/echo', ['n' => 1]));
            // A request and an answer larger than the socket buffers: writes
            // and reads both wait.
            $big = ['s' => str_repeat('z', 4 << 20)];
            $this->assertSame($big, $client->sendValue('/ipcserver/test/echo', $big));
            // Deadlines still work.
            $this->assertFalse($client->sendValue('/ipcserver/test/delay', ['delay' => 500], 100));
            $this->assertSame(['n' => 2], $client->sendValue('/ipcserver/test/echo', ['n' => 2]));
        } finally {
            foreach ($held as $handle) {
                fclose($handle);
            }
        }
    }

    public function testServerStoppedMidRequestRaisesServerClose(): void
    {
        $server = $this->ownServer();
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 20000]);
        $client->connect();
        // SIGTERM while the request waits: the server ends the connection
        // within its exit timeout (2 s), long before the request's 20 s.
        $killer = proc_open(
            ['sh', '-c', 'sleep 0.3; kill -TERM ' . $this->serverPid($server)],
            [],
            $pipes
        );
        $start = microtime(true);
        try {
            $client->sendValue('/ipcserver/test/delay', ['delay' => 15000]);
            $this->fail('no error when the server stopped');
        } catch (PixlIPCException $e) {
            $this->assertSame(PixlIPCClient::E_SERVER_CLOSE, $e->getCode());
            $this->assertLessThan(10.0, microtime(true) - $start);
        } finally {
            proc_close($killer);
        }
    }

    public function testOversizeRequestIsAnsweredWithItsId(): void
    {
        // LIMIT-2, CORR-6: ipcReqID is written before data, so the server
        // can name the request it refuses.
        $server = $this->ownServer(['--max-message-bytes', (string) (16 << 20)]);
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 40000]);
        try {
            $client->sendValue('/ipcserver/test/echo', ['big' => str_repeat('x', (16 << 20) + 10)]);
            $this->fail('the server accepted a request over its limit');
        } catch (PixlIPCException $e) {
            $this->assertSame(PixlIPCClient::E_REMOTE, $e->getCode(), $e->getMessage());
            $this->assertSame('message_too_large', $e->getRemoteCode());
            $this->assertSame(16 << 20, $e->getRemoteData()['limit']);
            $this->assertSame('rq0', $e->getRemoteData()['ipcReqID']);
        }
        $this->assertSame(['small' => 1], $client->sendValue('/ipcserver/test/echo', ['small' => 1]));
    }

    public function testInfoReportsProtocolVersion(): void
    {
        $info = $this->client()->sendValue('/ipcserver/info', []);
        $this->assertSame('1.1', $info['protocol']);
        $this->assertIsInt($info['limits']['max_message_bytes']);
    }

    private function serverPid(ReferenceServer $server): int
    {
        $pid = $server->pid();
        $this->assertGreaterThan(0, $pid);
        return $pid;
    }
}
