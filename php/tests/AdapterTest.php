<?php

declare(strict_types=1);

namespace PixlIPC\Tests;

use PHPUnit\Framework\TestCase;
use PixlIPC\Tests\Support\ScriptedServer;
use PixlIPC\Tests\Support\TestProcesses;
use PixlIPCClient;
use stdClass;

/**
 * php/adapter.php driven as the conformance runner drives it (spec/ADAPTER.md):
 * JSON lines on its stdin, one answer per command on its stdout.
 */
final class AdapterTest extends TestCase
{
    /** @var resource|null */
    private $process;

    /** @var array<int, resource> */
    private $pipes = [];

    /** @var int */
    private $nextId = 0;

    /** @var array<int, ScriptedServer> */
    private $servers = [];

    protected function tearDown(): void
    {
        if ($this->process !== null) {
            foreach ($this->pipes as $pipe) {
                @fclose($pipe);
            }
            proc_terminate($this->process, 9);
            proc_close($this->process);
            $this->process = null;
        }
        foreach ($this->servers as $server) {
            $server->stop();
        }
    }

    /** @param array<int, string> $args */
    private function startAdapter(array $args = []): void
    {
        $this->process = proc_open(
            array_merge([PHP_BINARY, dirname(__DIR__) . '/adapter.php'], $args),
            [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['file', '/dev/null', 'w']],
            $this->pipes
        );
        $this->assertIsResource($this->process);
    }

    /**
     * Send one command and return the adapter's answer to it.
     *
     * @param array<string, mixed> $command
     *
     * @return array<string, mixed>
     */
    private function command(array $command, float $timeout = 10.0): array
    {
        $id = $this->nextId++;
        $command = ['id' => $id] + $command;
        fwrite($this->pipes[0], json_encode($command, JSON_UNESCAPED_SLASHES) . "\n");
        fflush($this->pipes[0]);
        $read = [$this->pipes[1]];
        $write = $except = null;
        $this->assertSame(1, stream_select($read, $write, $except, (int) $timeout), 'the adapter answers in time');
        $line = fgets($this->pipes[1]);
        $this->assertIsString($line);
        $this->assertStringEndsWith("\n", $line, 'one answer per line');
        $answer = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
        $this->assertSame($id, $answer['id']);
        return $answer;
    }

    /** @param array<int, array<int, array<int, mixed>>> $connections */
    private function peer(array $connections): ScriptedServer
    {
        $server = new ScriptedServer($connections);
        $this->servers[] = $server;
        return $server;
    }

    /** Close stdin and expect exit status 0 (ADAPTER.md, "Channel"). */
    private function endAndExpectExitZero(): void
    {
        fclose($this->pipes[0]);
        $this->assertSame('', stream_get_contents($this->pipes[1]), 'nothing after the last answer');
        fclose($this->pipes[1]);
        $this->pipes = [];
        $until = microtime(true) + 10;
        do {
            $status = proc_get_status($this->process);
            if (!$status['running']) {
                break;
            }
            usleep(10000);
        } while (microtime(true) < $until);
        $this->assertFalse($status['running'], 'the adapter exits at end of input');
        $this->assertSame(0, $status['exitcode']);
        proc_close($this->process);
        $this->process = null;
    }

    public function testStartNamesTheClientAndItsCapabilities(): void
    {
        $this->startAdapter();
        $answer = $this->command(['cmd' => 'start']);
        $this->assertTrue($answer['ok']);
        $this->assertSame('php', $answer['result']['language']);
        $this->assertSame('pixl-ipc php PixlIPCClient', $answer['result']['name']);
        $this->assertIsString($answer['result']['version']);
        $this->assertSame(
            ['push', 'reconnect', 'max_message_bytes', 'introspect', 'timeout'],
            $answer['result']['capabilities']
        );
        $this->endAndExpectExitZero();
    }

    public function testSessionWithDataPushesAndErrors(): void
    {
        $server = $this->peer([[
            ['read'], ['raw', '{"data":{"p":{}}}' . "\n" . '{"ipcReqID":"%ID%","data":{"a":{},"b":[],"f":1.5}}' . "\n"],
            ['read'], ['raw', '{"ipcReqID":"%ID%","code":"no_uri",'
                . '"message":"Missing required uri parameter from request"}' . "\n"],
            ['read'], ['raw', "{\"ipcReqID\":\"%ID%\",\"data\":{bad\n"],
            ['read'], ['sleep', 600], ['read'], ['reply', false], ['wait_close'],
        ]]);
        $this->startAdapter();
        $this->command(['cmd' => 'start']);
        $answer = $this->command([
            'cmd' => 'connect', 'socket' => $server->path,
            'options' => ['request_timeout_ms' => 3000, 'user_agent' => 'conformance', 'auto_reconnect_ms' => 0],
        ]);
        $this->assertSame(['id' => 1, 'ok' => true, 'result' => []], $answer);

        // Objects stay objects: compare the raw shape of the answer.
        $answer = $this->command(['cmd' => 'send', 'uri' => '/e', 'data' => ['k' => 'v'], 'timeout_ms' => 3000]);
        $this->assertSame(['data' => ['a' => [], 'b' => [], 'f' => 1.5]], $answer['result']);
        $this->assertSame('conformance', $server->requests()[0]['userAgent']);
        $this->assertSame(['pushes' => [['p' => []]]], $this->command(['cmd' => 'pushes'])['result']);
        $this->assertSame(['pushes' => []], $this->command(['cmd' => 'pushes'])['result']);

        $answer = $this->command(['cmd' => 'send', 'uri' => '', 'data' => new stdClass(), 'timeout_ms' => 3000]);
        $this->assertSame(
            ['kind' => 'remote', 'message' => 'Missing required uri parameter from request', 'code' => 'no_uri'],
            $answer['error']
        );
        $this->assertFalse($answer['ok']);
        $this->assertSame('{}', substr($server->lines()[1], strpos($server->lines()[1], '"data":') + 7, 2));

        // FRAME-7: the malformed line is ignored; the answer never comes.
        $answer = $this->command(['cmd' => 'send', 'uri' => '/e', 'data' => [1], 'timeout_ms' => 300]);
        $this->assertSame('timeout', $answer['error']['kind']);

        $answer = $this->command(['cmd' => 'send', 'uri' => '/slow', 'data' => [], 'timeout_ms' => 100]);
        $this->assertSame('timeout', $answer['error']['kind']);

        // An answer whose data is false is data, not a timeout.
        $answer = $this->command(['cmd' => 'send', 'uri' => '/e', 'data' => [], 'timeout_ms' => 3000]);
        $this->assertSame(['data' => false], $answer['result']);

        $this->assertSame('unsupported', $this->command(['cmd' => 'frobnicate'])['error']['kind']);
        $answer = $this->command(['cmd' => 'send', 'uri' => '/e', 'data' => 'x', 'timeout_ms' => 0]);
        $this->assertSame('unsupported', $answer['error']['kind'], 'a timeout of 0 is refused');
        $this->assertTrue($this->command(['cmd' => 'close'])['ok']);
        $this->assertTrue($server->waitFor('eof', 0));
        $this->endAndExpectExitZero();
    }

    public function testIntrospectCountsTheRequestsTheClientHolds(): void
    {
        $server = $this->peer([[['read'], ['echo'], ['read'], ['sleep', 300], ['echo'], ['wait_close']]]);
        $this->startAdapter();
        $this->command(['cmd' => 'start']);
        $this->assertSame(['pending' => 0], $this->command(['cmd' => 'introspect'])['result'], 'before connect');
        $answer = $this->command([
            'cmd' => 'connect', 'socket' => $server->path, 'options' => ['expire_request_ms' => 50],
        ]);
        $this->assertTrue($answer['ok'], 'expire_request_ms is accepted');
        $this->command(['cmd' => 'send', 'uri' => '/e', 'data' => ['a' => 1], 'timeout_ms' => 3000]);
        $this->assertSame(['pending' => 0], $this->command(['cmd' => 'introspect'])['result'], 'answered');
        $answer = $this->command(['cmd' => 'send', 'uri' => '/e', 'data' => ['a' => 2], 'timeout_ms' => 50]);
        $this->assertSame('timeout', $answer['error']['kind']);
        $this->assertSame(['pending' => 0], $this->command(['cmd' => 'introspect'])['result'], 'timed out');
        $this->endAndExpectExitZero();
    }

    public function testConnectErrorAndSendBeforeConnect(): void
    {
        $this->startAdapter();
        $this->command(['cmd' => 'start']);
        $answer = $this->command(['cmd' => 'send', 'uri' => '/e', 'data' => [], 'timeout_ms' => 100]);
        $this->assertSame('closed', $answer['error']['kind']);
        $dir = TestProcesses::tempDir();
        $answer = $this->command(['cmd' => 'connect', 'socket' => $dir . '/none.sock', 'options' => new stdClass()]);
        $this->assertFalse($answer['ok']);
        $this->assertSame('connect', $answer['error']['kind']);
        $this->assertStringContainsString('none.sock', $answer['error']['message']);
        $this->endAndExpectExitZero();
    }

    public function testServerCloseIsClosedAndTheNextSendReconnects(): void
    {
        $server = $this->peer([[['read'], ['close']], [['read'], ['echo']]]);
        $this->startAdapter();
        $this->command(['cmd' => 'start']);
        $this->command(['cmd' => 'connect', 'socket' => $server->path, 'options' => []]);
        $answer = $this->command(['cmd' => 'send', 'uri' => '/e', 'data' => ['a' => 1], 'timeout_ms' => 5000]);
        $this->assertSame('closed', $answer['error']['kind']);
        $answer = $this->command(['cmd' => 'send', 'uri' => '/e', 'data' => ['a' => 2], 'timeout_ms' => 5000]);
        $this->assertSame(['data' => ['a' => 2]], $answer['result']);
        $this->endAndExpectExitZero();
    }

    public function testMaxMessageBytesOptionGivesTooLarge(): void
    {
        $server = $this->peer([[['read'], ['big', 17 << 20], ['wait_close']], [['read'], ['big', (16 << 20) - 28]]]);
        $this->startAdapter();
        $this->command(['cmd' => 'start']);
        $this->command([
            'cmd' => 'connect', 'socket' => $server->path, 'options' => ['max_message_bytes' => 16 << 20],
        ]);
        $answer = $this->command(['cmd' => 'send', 'uri' => '/e', 'data' => [], 'timeout_ms' => 10000]);
        $this->assertSame('too_large', $answer['error']['kind']);
        // A line of exactly the limit (28 bytes of framing) is accepted, on a new connection.
        $answer = $this->command(['cmd' => 'send', 'uri' => '/e', 'data' => [], 'timeout_ms' => 10000]);
        $this->assertTrue($answer['ok']);
        $this->assertSame((16 << 20) - 28, strlen($answer['result']['data']));
        $this->endAndExpectExitZero();
    }

    public function testFalseOnTimeoutModeMapsFalseToTimeout(): void
    {
        $server = $this->peer([[['read'], ['sleep', 500], ['read'], ['echo']]]);
        $this->startAdapter(['--false-on-timeout']);
        $this->command(['cmd' => 'start']);
        $this->command(['cmd' => 'connect', 'socket' => $server->path, 'options' => ['request_timeout_ms' => 100]]);
        $answer = $this->command(['cmd' => 'send', 'uri' => '/e', 'data' => [], 'timeout_ms' => 100]);
        $this->assertSame('timeout', $answer['error']['kind']);
        $answer = $this->command(['cmd' => 'send', 'uri' => '/e', 'data' => ['z' => 1], 'timeout_ms' => 3000]);
        $this->assertSame(['data' => ['z' => 1]], $answer['result']);
        $this->endAndExpectExitZero();
    }

    public function testInputThatIsNotACommandIsAnsweredAndTheAdapterGoesOn(): void
    {
        $this->startAdapter();
        fwrite($this->pipes[0], "this is not json\n[1,2]\n");
        fflush($this->pipes[0]);
        for ($i = 0; $i < 2; $i++) {
            $read = [$this->pipes[1]];
            $write = $except = null;
            $this->assertSame(1, stream_select($read, $write, $except, 10));
            $answer = json_decode((string) fgets($this->pipes[1]), true);
            $this->assertSame(['id' => null, 'ok' => false], array_slice($answer, 0, 2));
            $this->assertSame('unsupported', $answer['error']['kind']);
        }
        $this->assertTrue($this->command(['cmd' => 'start'])['ok']);
        $this->endAndExpectExitZero();
    }
}
