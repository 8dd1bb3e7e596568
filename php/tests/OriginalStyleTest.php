<?php

declare(strict_types=1);

namespace PixlIPC\Tests;

use PHPUnit\Framework\TestCase;
use PixlIPC\Tests\Support\LegacyClient;
use PixlIPC\Tests\Support\ReferenceServer;
use PixlIPC\Tests\Support\ScriptedServer;
use PixlIPC\Tests\Support\TestProcesses;
use PixlIPCClient;
use PixlIPCException;

/**
 * Code written for the original client, run unchanged against this one: a
 * subclass with the original's signatures and protected members
 * (support/LegacyClient.php), send() by reference, null options, the
 * original's exception codes and its E_SERVER_CLOSE text, false on timeout.
 */
final class OriginalStyleTest extends TestCase
{
    /** @var array<int, ScriptedServer> */
    private $servers = [];

    protected function tearDown(): void
    {
        foreach ($this->servers as $server) {
            $server->stop();
        }
        $this->servers = [];
    }

    /** @param array<int, array<int, array<int, mixed>>> $connections */
    private function peer(array $connections): ScriptedServer
    {
        $server = new ScriptedServer($connections);
        $this->servers[] = $server;
        return $server;
    }

    /** The code of the PixlIPCException that $call throws. */
    private static function codeOf(callable $call): int
    {
        try {
            $call();
        } catch (PixlIPCException $e) {
            return $e->getCode();
        }
        return 0;
    }

    public function testSubclassSendsByReferenceThroughTheProtectedMembers(): void
    {
        $client = new LegacyClient(ReferenceServer::shared()->path, null);
        $request = ['user' => 'pixl', 'path' => '/a/b'];
        $this->assertSame($request, $client->send('/ipcserver/test/echo', $request));
        $this->assertSame(['user' => 'pixl', 'path' => '/a/b'], $request, 'the request is left as it was');
        $this->assertTrue($client->isConnected());

        // A request written by hand on $fp with the original's counter,
        // read back with readMessage().
        $this->assertSame(['n' => 2], $client->sendTagged('/ipcserver/test/echo', ['n' => 2], 'x'));
        $request = ['n' => 3];
        $this->assertSame($request, $client->send('/ipcserver/test/echo', $request));

        $this->assertSame(['/ipcserver/test/echo', '/ipcserver/test/echo'], $client->sentUris);
        $this->assertSame(['rq0', 'rq2'], $client->ids, 'send() takes its ids from nextID()');
        $this->assertSame(3, $client->messagesRead, 'send() reads through readMessage()');
    }

    public function testOriginalExceptionCodes(): void
    {
        $missing = TestProcesses::tempDir() . '/missing.sock';
        $client = new LegacyClient($missing);
        $request = ['a' => 1];
        $this->assertSame(PixlIPCClient::E_SOCKET_CONNECT, self::codeOf(function () use ($client, &$request): void {
            $client->send('/x', $request);
        }));
        // Server down: the connect is tried first, whatever the request.
        $text = 'not an array';
        $this->assertSame(5001, self::codeOf(function () use ($client, &$text): void {
            $client->send('/x', $text);
        }));

        $client = new LegacyClient(ReferenceServer::shared()->path);
        $this->assertSame(5002, self::codeOf(function () use ($client, &$text): void {
            $client->send('/x', $text);
        }));
        $this->assertSame($request, $client->send('/ipcserver/test/echo', $request), 'the connection is usable');

        $server = $this->peer([[['read'], ['raw', "{\"ipcReqID\":\"%ID%\",\"data\":{bad\n"]]]);
        $client = new LegacyClient($server->path, ['throwOnBadResponse' => true]);
        $this->assertSame(5004, self::codeOf(function () use ($client, &$request): void {
            $client->send('/x', $request);
        }));
    }

    public function testServerCloseThrowsOnceWithTheOriginalMessageThenReconnects(): void
    {
        // The original's "test unexpected socket close", against a peer that
        // ends the connection as the original server does (a half-close).
        $server = $this->peer([
            [['read'], ['echo'], ['half_close'], ['wait_close']],
            [['read'], ['echo'], ['read'], ['echo']],
        ]);
        $client = new LegacyClient($server->path, ['requestTimeout' => 5000]);
        $request = ['n' => 1];
        $this->assertSame($request, $client->send('/x', $request));
        $this->assertTrue($server->waitFor('half_closed', 0));
        try {
            $client->send('/x', $request);
            $this->fail('no exception after the server closed the connection');
        } catch (PixlIPCException $e) {
            $this->assertSame(PixlIPCClient::E_SERVER_CLOSE, $e->getCode());
            $this->assertSame('Server closed the connection (readMessage)', $e->getMessage());
        }
        $this->assertFalse($client->isConnected(), 'the subclass\'s close() ran');
        $request = ['n' => 2];
        $this->assertSame($request, $client->send('/x', $request));
        $this->assertSame($request, $client->send('/x', $request));
        $this->assertSame(2, $server->accepted());
    }

    public function testTimeoutReturnsFalseAndTheNextSendDiscardsTheLateAnswer(): void
    {
        // The answer to rq0 comes 300 ms after its timeout, while rq1 waits.
        $server = $this->peer([[
            ['read'], ['sleep', 1800], ['raw', "{\"ipcReqID\":\"%ID%\",\"data\":\"stale\"}\n"],
            ['read'], ['reply', 'fresh'],
        ]]);
        $client = new LegacyClient($server->path, ['requestTimeout' => 1500]);
        $request = ['q' => 1];
        $this->assertFalse($client->send('/x', $request));
        $this->assertSame('fresh', $client->send('/x', $request));
        $this->assertSame(2, $client->messagesRead, 'the late answer was read, then skipped');
        $this->assertSame(1, $server->accepted(), 'a timeout keeps the connection');
    }
}
