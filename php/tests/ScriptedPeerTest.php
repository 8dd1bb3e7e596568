<?php

declare(strict_types=1);

namespace PixlIPC\Tests;

use Exception;
use JsonException;
use PHPUnit\Framework\TestCase;
use PixlIPC\Tests\Support\ScriptedServer;
use PixlIPC\Tests\Support\TestProcesses;
use PixlIPCClient;
use PixlIPCException;
use stdClass;

/**
 * The client against a scripted peer (support/scripted_server.php) that
 * misbehaves on purpose: pushes, junk lines, late answers, hang-ups, oversize
 * and malformed lines. Each test runs its own peer on its own socket path.
 */
final class ScriptedPeerTest extends TestCase
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
    private function peer(array $connections, int $backlog = 16): ScriptedServer
    {
        $server = new ScriptedServer($connections, 15000, $backlog);
        $this->servers[] = $server;
        return $server;
    }

    /**
     * @param callable $call
     */
    private function expectCode(int $code, callable $call): PixlIPCException
    {
        try {
            $call();
        } catch (PixlIPCException $e) {
            $this->assertSame($code, $e->getCode(), $e->getMessage());
            return $e;
        }
        $this->fail("expected a PixlIPCException with code {$code}");
    }

    // --- requests on the wire --------------------------------------------

    public function testRequestLineHasTheOriginalMembersWithIdBeforeData(): void
    {
        $server = $this->peer([[['read'], ['echo'], ['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path);
        // A literal array: the original's by-reference parameter refused it.
        $this->assertSame(['a' => 1], $client->sendValue('/x/y', ['a' => 1]));
        $this->assertSame([1, 2], $client->sendValue('/x/y', [1, 2]));

        $lines = $server->lines();
        $this->assertCount(2, $lines);
        $cwd = getcwd();
        $this->assertSame(
            '{"uri":"\\/x\\/y","ipcReqID":"rq0","data":{"a":1},"pid":' . getmypid()
            . ',"userAgent":' . json_encode('PHP/PixlIPCClient' . $cwd) . '}',
            $lines[0]
        );
        // REQ-1 member order: uri first as the original, ipcReqID before data (CORR-6).
        $this->assertSame(['uri', 'ipcReqID', 'data', 'pid', 'userAgent'], array_keys(json_decode($lines[1], true)));
        $this->assertSame('rq1', json_decode($lines[1], true)['ipcReqID']);
    }

    public function testUserAgentOptionIsSent(): void
    {
        $server = $this->peer([[['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path, ['userAgent' => 'billing/2.0 ü']);
        $client->sendValue('/x', ['a' => 1]);
        $this->assertSame('billing/2.0 ü', $server->requests()[0]['userAgent']);
    }

    public function testEmptyArrayIsSentAsJsonArrayByDefault(): void
    {
        $server = $this->peer([[['read'], ['echo'], ['read'], ['echo'], ['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path);
        $this->assertSame([], $client->sendValue('/x', []));
        $client->sendValue('/x', new stdClass());
        $client->sendValue('/x', (object) []);
        $lines = $server->lines();
        $this->assertStringContainsString('"data":[]', $lines[0]);
        $this->assertStringContainsString('"data":{}', $lines[1]);
        $this->assertStringContainsString('"data":{}', $lines[2]);
    }

    public function testEmptyArrayAsObjectSendsAnEmptyObjectAtTheTopLevelOnly(): void
    {
        $server = $this->peer([[['read'], ['echo'], ['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path, ['emptyArrayAsObject' => true]);
        $client->sendValue('/x', []);
        $client->sendValue('/x', ['list' => []]);
        $lines = $server->lines();
        $this->assertStringContainsString('"data":{}', $lines[0]);
        $this->assertStringContainsString('"data":{"list":[]}', $lines[1]);
    }

    public function testRequestIsEncodedWithJsonEncodeDefaultsAsTheOriginalWritesIt(): void
    {
        // The original's bytes: '/' as '\/', non-ASCII as \u escapes, 1.0 as 1.
        $server = $this->peer([[['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path);
        $this->assertSame(
            ['f' => 1, 's' => "/é\u{1F600}"],
            $client->sendValue('/a/b', ['f' => 1.0, 's' => "/é\u{1F600}"])
        );
        $line = $server->lines()[0];
        $this->assertStringStartsWith('{"uri":"\\/a\\/b",', $line);
        $this->assertStringContainsString('"data":{"f":1,"s":"\\/\\u00e9\\ud83d\\ude00"}', $line);
    }

    public function testRequestThatIsNotAnArrayOrObjectIsRefusedAndNothingIsSent(): void
    {
        $server = $this->peer([[['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path);
        foreach (['text', 42, 1.5, true, false, null] as $bad) {
            $e = $this->expectCode(PixlIPCClient::E_BAD_REQUEST_TYPE, function () use ($client, $bad): void {
                $client->sendValue('/x', $bad);
            });
            $this->assertInstanceOf(Exception::class, $e);
            $this->assertStringStartsWith('Invalid request: ' . gettype($bad) . ' given', $e->getMessage());
        }
        $this->assertSame(['ok' => true], $client->sendValue('/x', ['ok' => true]));
        $this->assertCount(1, $server->lines(), 'only the good request reached the server');
        $this->assertSame(1, $server->accepted());
    }

    public function testRequestThatIsNotAnArrayWithTheServerDownGivesConnectErrorFirst(): void
    {
        // As the original: the client connects before it looks at the request.
        $client = new PixlIPCClient(TestProcesses::tempDir() . '/none.sock');
        foreach (['text', 42, null] as $bad) {
            $this->expectCode(PixlIPCClient::E_SOCKET_CONNECT, function () use ($client, $bad): void {
                $client->send('/x', $bad);
            });
        }
    }

    public function testScalarRequestsOptionSendsAnyJsonValue(): void
    {
        // REQ-4: data may be any JSON value; the original refused scalars.
        $values = ['text', 42, -7.25, true, false, null, 0, ''];
        $steps = [];
        foreach ($values as $value) {
            $steps[] = ['read'];
            $steps[] = ['echo'];
        }
        $server = $this->peer([$steps]);
        $client = new PixlIPCClient($server->path, ['scalarRequests' => true, 'throwOnTimeout' => true]);
        foreach ($values as $value) {
            $this->assertSame($value, $client->sendValue('/x', $value));
        }
        $sent = array_map(static function (array $request) {
            return $request['data'];
        }, $server->requests());
        $this->assertSame($values, $sent);
        $this->assertStringContainsString('"data":null', $server->lines()[5]);
    }

    public function testRequestThatCannotBeEncodedIsRefused(): void
    {
        $server = $this->peer([[['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path);
        $bad = [['n' => NAN], ['s' => "\xC3\x28"], ['f' => fopen('php://memory', 'r')]];
        foreach ($bad as $request) {
            $this->expectCode(PixlIPCClient::E_BAD_REQUEST_TYPE, function () use ($client, $request): void {
                $client->sendValue('/x', $request);
            });
        }
        $this->assertSame(['ok' => 1], $client->sendValue('/x', ['ok' => 1]));
        $this->assertCount(1, $server->lines());
    }

    public function testIdsCountOnAcrossReconnectsAsTheOriginals(): void
    {
        $server = $this->peer([[['read'], ['echo'], ['read'], ['echo']], [['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path);
        $client->sendValue('/x', ['n' => 0]);
        $client->sendValue('/x', ['n' => 1]);
        $client->close();
        $client->sendValue('/x', ['n' => 2]);
        $ids = array_map(static function (array $r): string {
            return $r['ipcReqID'];
        }, $server->requests());
        $this->assertSame(['rq0', 'rq1', 'rq2'], $ids);
        $this->assertSame(2, $server->accepted());
    }

    // --- what the client reads -------------------------------------------

    public function testLinesThatAreNotMessagesAreIgnored(): void
    {
        // FRAME-4, FRAME-5, FRAME-2 (CRLF), leading blanks before "{".
        $junk = "hello\n\n   \n[1,2]\n\"text\"\n42\n\r\n";
        $server = $this->peer([[['read'], ['raw', $junk . " \t{\"ipcReqID\":\"%ID%\",\"data\":{\"ok\":1}}\r\n"]]]);
        $client = new PixlIPCClient($server->path);
        $this->assertSame(['ok' => 1], $client->sendValue('/x', ['q' => 1]));
    }

    public function testResponseWithoutDataGivesNullAndExtraMembersAreIgnored(): void
    {
        $server = $this->peer([[
            ['read'], ['raw', "{\"ipcReqID\":\"%ID%\",\"extra\":[1]}\n"],
            ['read'], ['raw', "{\"more\":{},\"ipcReqID\":\"%ID%\",\"data\":\"v\",\"x\":1}\n"],
        ]]);
        $client = new PixlIPCClient($server->path);
        $this->assertNull($client->sendValue('/x', ['q' => 1]));
        $this->assertSame('v', $client->sendValue('/x', ['q' => 2]));
    }

    public function testAnswerSplitOverManyWritesIsReassembled(): void
    {
        // FRAME-3: one byte at a time, then two answers in one write.
        $server = $this->peer([[
            ['read'], ['repeat', 1, 0, '{"ipcReqID":'], ['sleep', 30], ['raw', '"%ID%","da'], ['sleep', 30],
            ['raw', "ta\":[1]}\n{\"ipcReqID\":\"rq1\",\"data\":2}\n"], ['read'],
        ]]);
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 3000]);
        $this->assertSame([1], $client->sendValue('/x', ['q' => 1]));
        // The second answer was already buffered before rq1 was sent.
        $this->assertSame(2, $client->sendValue('/x', ['q' => 2]));
    }

    public function testDataLevelErrorIsReturnedAsData(): void
    {
        // ERR-2: the original puts no_handler_found inside data; callers test it.
        $error = ['code' => 'no_handler_found', 'message' => 'No handler found for /nope'];
        $server = $this->peer([[['read'], ['reply', $error]]]);
        $client = new PixlIPCClient($server->path);
        $this->assertSame($error, $client->sendValue('/nope', ['q' => 1]));
    }

    public function testTopLevelErrorRaisesRemoteErrorWithItsCodeMessageAndMessage(): void
    {
        $server = $this->peer([[
            ['read'],
            ['raw', '{"ipcReqID":"%ID%","code":"no_uri",'
                . '"message":"Missing required uri parameter from request"}' . "\n"],
            ['read'], ['raw', "{\"ipcReqID\":\"%ID%\",\"code\":\"future_code\",\"message\":\"m\",\"limit\":5}\n"],
            ['read'], ['echo'],
        ]]);
        $client = new PixlIPCClient($server->path);
        $e = $this->expectCode(PixlIPCClient::E_REMOTE, function () use ($client): void {
            $client->sendValue('', ['q' => 1]);
        });
        $this->assertSame('no_uri', $e->getRemoteCode());
        $this->assertSame('Missing required uri parameter from request', $e->getRemoteMessage());
        $this->assertSame('rq0', $e->getRemoteData()['ipcReqID']);
        $this->assertStringContainsString('no_uri', $e->getMessage());
        // ERR-6: an unknown code is an error of that code, with its extra members.
        $e = $this->expectCode(PixlIPCClient::E_REMOTE, function () use ($client): void {
            $client->sendValue('/x', ['q' => 2]);
        });
        $this->assertSame('future_code', $e->getRemoteCode());
        $this->assertSame(5, $e->getRemoteData()['limit']);
        // The connection stays usable.
        $this->assertSame(['q' => 3], $client->sendValue('/x', ['q' => 3]));
        $this->assertSame(1, $server->accepted());
    }

    public function testLocalErrorsCarryNoRemoteFields(): void
    {
        $client = new PixlIPCClient('/nonexistent/pixl-ipc.sock');
        $e = $this->expectCode(PixlIPCClient::E_SOCKET_CONNECT, function () use ($client): void {
            $client->sendValue('/x', []);
        });
        $this->assertNull($e->getRemoteCode());
        $this->assertNull($e->getRemoteMessage());
        $this->assertNull($e->getRemoteData());
    }

    public function testMalformedLineRaisesBadResponseWithThrowOnBadResponse(): void
    {
        $server = $this->peer([[
            ['read'], ['raw', "{\"data\":{nope}\n"], ['sleep', 100], ['echo'],
            ['read'], ['echo'],
        ]]);
        $client = new PixlIPCClient($server->path, ['throwOnBadResponse' => true]);
        $e = $this->expectCode(PixlIPCClient::E_BAD_RESPONSE, function () use ($client): void {
            $client->sendValue('/x', ['q' => 1]);
        });
        $this->assertInstanceOf(JsonException::class, $e->getPrevious());
        $this->assertStringStartsWith('Bad response from server: ', $e->getMessage());
        // The connection is kept; the real answer to rq0 is skipped as late.
        $this->assertSame(['q' => 2], $client->sendValue('/x', ['q' => 2]));
        $this->assertSame(1, $server->accepted());
    }

    public function testMalformedLinesAreIgnoredEvenWithThisRequestsId(): void
    {
        // FRAME-7: this request's id, no id, another id, invalid UTF-8: none
        // of them fails rq0, which gets its real answer.
        $junk = "{\"ipcReqID\":\"rq0\",\"data\":{nope}\n{oops\n{\"ipcReqID\":\"rq77\",\"data\":[\n"
            . "{\"data\":\"\xC3\x28\"}\n";
        $server = $this->peer([[['read'], ['raw64', base64_encode($junk)], ['echo']]]);
        $client = new PixlIPCClient($server->path);
        $this->assertSame(['q' => 1], $client->sendValue('/x', ['q' => 1]));
    }

    public function testPushesAreSkippedAndReportedWhenKept(): void
    {
        $pushes = "{\"data\":{\"n\":1}}\n{\"ipcReqID\":null,\"data\":2}\n{\"ipcReqID\":\"\",\"data\":3}\n"
            . "{\"ipcReqID\":0}\n";
        $server = $this->peer([[['read'], ['raw', $pushes], ['echo']]]);
        $seen = [];
        $client = new PixlIPCClient($server->path, [
            'maxPushes' => 10,
            'onPush' => function ($data, $message) use (&$seen): void {
                $seen[] = [$data, $message];
            },
        ]);
        $this->assertSame(['q' => 1], $client->sendValue('/x', ['q' => 1]));
        $this->assertSame([['n' => 1], 2, 3, null], $client->getPushes());
        $this->assertSame([], $client->getPushes(), 'getPushes forgets what it returned');
        $this->assertCount(4, $seen);
        $this->assertSame(['data' => ['n' => 1]], $seen[0][1]);
        $this->assertSame(['ipcReqID' => 0], $seen[3][1]);
    }

    public function testPushesAreNotKeptByDefaultAndMaxPushesKeepsTheLatest(): void
    {
        $pushes = "{\"data\":1}\n{\"data\":2}\n{\"data\":3}\n";
        $server = $this->peer([[['read'], ['raw', $pushes], ['echo']], [['read'], ['raw', $pushes], ['echo']]]);
        $client = new PixlIPCClient($server->path);
        $client->sendValue('/x', ['q' => 1]);
        $this->assertSame([], $client->getPushes());
        $client = new PixlIPCClient($server->path, ['maxPushes' => 2]);
        $client->sendValue('/x', ['q' => 1]);
        $this->assertSame([2, 3], $client->getPushes());
    }

    public function testGetPushesReadsPushesThatArriveBetweenRequests(): void
    {
        $server = $this->peer([[['read'], ['echo'], ['sleep', 50], ['raw', "{\"data\":\"later\"}\n"], ['wait_close']]]);
        $client = new PixlIPCClient($server->path, ['maxPushes' => 5]);
        $client->sendValue('/x', ['q' => 1]);
        $pushes = [];
        $until = microtime(true) + 5;
        while ($pushes === [] && microtime(true) < $until) {
            usleep(10000);
            $pushes = $client->getPushes();
        }
        $this->assertSame(['later'], $pushes);
    }

    public function testGetPushesWithoutConnectionIsEmpty(): void
    {
        $client = new PixlIPCClient('/nonexistent/pixl-ipc.sock', ['maxPushes' => 5]);
        $this->assertSame([], $client->getPushes());
    }

    public function testPushThatIsNotDecodedAsArrays(): void
    {
        $server = $this->peer([[['read'], ['raw', "{\"data\":{\"a\":{}}}\n"], ['echo']]]);
        $client = new PixlIPCClient($server->path, ['maxPushes' => 5, 'assoc' => false]);
        $client->sendValue('/x', ['q' => 1]);
        $this->assertEquals([(object) ['a' => new stdClass()]], $client->getPushes());
    }

    public function testTopLevelErrorWithoutIdNeitherCompletesNorFailsTheRequest(): void
    {
        // ERR-7: e.g. server_busy or access_denied with ipcReqID null; it is
        // delivered as a push, and the request waits for its own answer.
        $errors = "{\"ipcReqID\":null,\"code\":\"server_busy\",\"message\":\"busy\"}\n"
            . "{\"code\":\"access_denied\",\"message\":\"no\"}\n";
        $server = $this->peer([[['read'], ['raw', $errors], ['sleep', 50], ['echo']]]);
        $seen = [];
        $client = new PixlIPCClient($server->path, [
            'maxPushes' => 10,
            'requestTimeout' => 10000,
            'onPush' => function ($data, $message) use (&$seen): void {
                $seen[] = $message['code'];
            },
        ]);
        $this->assertSame(['q' => 1], $client->sendValue('/x', ['q' => 1]));
        $this->assertSame(['server_busy', 'access_denied'], $seen);
        $this->assertSame([null, null], $client->getPushes());
    }

    public function testPendingCountIsOneWhileARequestWaitsAndZeroOtherwise(): void
    {
        $server = $this->peer([[
            ['read'], ['raw', "{\"data\":\"p\"}\n"], ['echo'],
            ['read'], ['sleep', 300], ['echo'],
            ['read'], ['echo'],
        ]]);
        $during = [];
        $client = null;
        $client = new PixlIPCClient($server->path, [
            'onPush' => function () use (&$during, &$client): void {
                $during[] = $client->pendingCount();
            },
        ]);
        $this->assertSame(0, $client->pendingCount());
        $client->sendValue('/x', ['q' => 1]);
        $this->assertSame([1], $during, 'seen from onPush while the request waited');
        $this->assertSame(0, $client->pendingCount());
        $this->assertFalse($client->sendValue('/x', ['q' => 2], 50));
        $this->assertSame(0, $client->pendingCount(), 'no timed-out id is kept');
        $this->assertSame(['q' => 3], $client->sendValue('/x', ['q' => 3], 5000));
        $this->assertSame(0, $client->pendingCount());
    }

    // --- timeouts ----------------------------------------------------------

    public function testTimeoutReturnsFalseAndTheLateAnswerIsSkippedByTheNextRequest(): void
    {
        $server = $this->peer([[
            ['read'], ['sleep', 400], ['raw', "{\"ipcReqID\":\"%ID%\",\"data\":\"stale\"}\n"],
            ['read'], ['reply', 'fresh'],
        ]]);
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 150]);
        $this->assertFalse($client->sendValue('/x', ['q' => 1]));
        $this->assertSame('fresh', $client->sendValue('/x', ['q' => 2], 3000));
        $this->assertSame(1, $server->accepted(), 'a timeout keeps the connection');
    }

    public function testThrowOnTimeoutRaisesTimeout(): void
    {
        $server = $this->peer([[['read'], ['sleep', 1000]]]);
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 100, 'throwOnTimeout' => true]);
        // Without the deadline the peer's hang-up would give E_SERVER_CLOSE.
        $e = $this->expectCode(PixlIPCClient::E_TIMEOUT, function () use ($client): void {
            $client->sendValue('/x', ['q' => 1]);
        });
        $this->assertSame('Request timed out: no answer to rq0 within 100 ms', $e->getMessage());
    }

    public function testTimeoutIsADeadlineForTheWholeRequest(): void
    {
        // A push every 50 ms: a per-read timeout would never expire.
        $server = $this->peer([[['read'], ['repeat', 60, 50, "{\"data\":\"tick\"}\n"]]]);
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 300]);
        $start = microtime(true);
        $this->assertFalse($client->sendValue('/x', ['q' => 1]));
        $this->assertLessThan(2.0, microtime(true) - $start);
    }

    public function testPerRequestTimeoutOverridesTheOption(): void
    {
        $server = $this->peer([
            [['read'], ['sleep', 300], ['echo'], ['wait_close']],
            [['read'], ['sleep', 300], ['echo']],
        ]);
        // The answers come after 300 ms: only the per-request timeout decides.
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 5000]);
        $this->assertFalse($client->sendValue('/x', ['q' => 1], 50));
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 50]);
        $this->assertSame(['q' => 1], $client->sendValue('/x', ['q' => 1], 5000));
    }

    public function testTimeoutWhileWritingRaisesTimeoutEvenWithoutThrowOnTimeout(): void
    {
        // The peer never reads: an 8 MiB request fills the socket buffers.
        $server = $this->peer([[['sleep', 3000]], [['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 200]);
        $e = $this->expectCode(PixlIPCClient::E_TIMEOUT, function () use ($client): void {
            $client->sendValue('/x', ['s' => str_repeat('a', 8 << 20)]);
        });
        $this->assertStringStartsWith('Request timed out: while writing to ' . $server->path, $e->getMessage());
        // A partial line may be on the wire: the next request goes on a new connection.
        $this->assertSame(['q' => 2], $client->sendValue('/x', ['q' => 2], 5000));
        $this->assertSame(2, $server->accepted());
    }

    // --- connection ends ---------------------------------------------------

    public function testServerGoneMidRequestRaisesServerCloseAndNextSendReconnects(): void
    {
        $server = $this->peer([[['read'], ['close']], [['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 10000]);
        $start = microtime(true);
        $e = $this->expectCode(PixlIPCClient::E_SERVER_CLOSE, function () use ($client): void {
            $client->sendValue('/x', ['q' => 1]);
        });
        $this->assertLessThan(2.0, microtime(true) - $start, 'LIFE-3: fails at once, not at the timeout');
        $this->assertSame('Server closed the connection (readMessage)', $e->getMessage());
        $this->assertSame(['q' => 2], $client->sendValue('/x', ['q' => 2]));
        $this->assertSame(2, $server->accepted());
    }

    public function testServerGoneMidAnswerRaisesServerClose(): void
    {
        $server = $this->peer([[['read'], ['raw', '{"ipcReqID":"%ID%","data":"trunc'], ['close']]]);
        $client = new PixlIPCClient($server->path);
        $this->expectCode(PixlIPCClient::E_SERVER_CLOSE, function () use ($client): void {
            $client->sendValue('/x', ['q' => 1]);
        });
    }

    public function testIdleConnectionThatTheServerClosedWhollyIsReopenedTransparently(): void
    {
        // A server that is gone (a restart) fails the write before any byte
        // leaves: the request is sent once, on a new connection (LIFE-4).
        $server = $this->peer([[['close']], [['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path);
        $this->assertTrue($client->connect());
        $this->assertTrue($server->waitFor('closed', 0));
        $this->assertSame(['q' => 1], $client->sendValue('/x', ['q' => 1]));
        $this->assertSame([], $server->lines(0));
        $this->assertCount(1, $server->requests(1));
        $this->assertSame('rq1', $server->requests(1)[0]['ipcReqID'], 'the id of the failed write is not reused');
    }

    public function testHalfClosedConnectionGivesServerCloseOnceThenTheNextSendReconnects(): void
    {
        // The original server ends a connection with socket.end(): the
        // client's next write succeeds, its read sees end of stream.
        $server = $this->peer([
            [['read'], ['echo'], ['half_close'], ['wait_close']],
            [['read'], ['echo']],
        ]);
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 10000]);
        $this->assertSame(['q' => 1], $client->sendValue('/x', ['q' => 1]));
        $this->assertTrue($server->waitFor('half_closed', 0));
        $e = $this->expectCode(PixlIPCClient::E_SERVER_CLOSE, function () use ($client): void {
            $client->sendValue('/x', ['q' => 2]);
        });
        $this->assertSame('Server closed the connection (readMessage)', $e->getMessage());
        $this->assertTrue($server->waitFor('eof', 0), 'the client closed its end');
        $this->assertSame(['q' => 2], $server->requests(0)[1]['data'], 'the write succeeded, as the original\'s');
        $this->assertSame(['q' => 3], $client->sendValue('/x', ['q' => 3]));
        $this->assertSame(2, $server->accepted());
    }

    public function testHalfClosedConnectionIsReplacedBeforeWritingWithReconnectOnClose(): void
    {
        $server = $this->peer([
            [['read'], ['echo'], ['half_close'], ['wait_close']],
            [['read'], ['echo']],
        ]);
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 10000, 'reconnectOnClose' => true]);
        $this->assertSame(['q' => 1], $client->sendValue('/x', ['q' => 1]));
        $this->assertTrue($server->waitFor('half_closed', 0));
        $this->assertSame(['q' => 2], $client->sendValue('/x', ['q' => 2]));
        $this->assertTrue($server->waitFor('eof', 0));
        $this->assertCount(1, $server->lines(0), 'nothing was written to the ended connection');
        $this->assertSame([['q' => 2]], array_column($server->requests(1), 'data'));
    }

    public function testWriteToAConnectionThatEndsMidRequestRaisesSocketWrite(): void
    {
        // The peer closes without reading while a large request is being written.
        $server = $this->peer([[['sleep', 300], ['close']], [['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 10000]);
        $e = $this->expectCode(PixlIPCClient::E_SOCKET_WRITE, function () use ($client): void {
            $client->sendValue('/x', ['s' => str_repeat('a', 8 << 20)]);
        });
        // The errno is kept, in the text and as a property.
        $this->assertContains($e->getErrno(), [32, 104], 'EPIPE or ECONNRESET');
        $this->assertNotEmpty($e->getErrstr());
        $this->assertStringStartsWith('Could not write to socket: ' . $server->path . ': ', $e->getMessage());
        $this->assertStringContainsString("{$e->getErrstr()} (errno {$e->getErrno()})", $e->getMessage());
        $this->assertSame(['q' => 2], $client->sendValue('/x', ['q' => 2]), 'the next send reconnects');
    }

    public function testServerThatStoppedGivesConnectErrorThenNothingLingers(): void
    {
        $server = $this->peer([[['read'], ['echo'], ['stop']]]);
        $client = new PixlIPCClient($server->path);
        $this->assertSame(['q' => 1], $client->sendValue('/x', ['q' => 1]));
        $this->assertTrue($server->waitFor('closed', 0));
        usleep(100000); // the peer unlinks its socket after closing
        $this->expectCode(PixlIPCClient::E_SOCKET_CONNECT, function () use ($client): void {
            $client->sendValue('/x', ['q' => 2]);
        });
    }

    public function testCloseEndsTheConnectionAndTheNextSendReconnects(): void
    {
        $server = $this->peer([[['read'], ['echo'], ['wait_close']], [['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path);
        $client->sendValue('/x', ['q' => 1]);
        $client->close();
        $client->close(); // twice is harmless
        $this->assertTrue($server->waitFor('eof', 0));
        $this->assertSame(['q' => 2], $client->sendValue('/x', ['q' => 2]));
        $this->assertSame(2, $server->accepted());
    }

    public function testDestructorClosesTheConnection(): void
    {
        $server = $this->peer([[['read'], ['echo'], ['wait_close']]]);
        $client = new PixlIPCClient($server->path);
        $client->sendValue('/x', ['q' => 1]);
        unset($client);
        $this->assertTrue($server->waitFor('eof', 0));
    }

    public function testConnectIsIdempotent(): void
    {
        $server = $this->peer([[['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path);
        $this->assertTrue($client->connect());
        $this->assertTrue($client->connect());
        $client->sendValue('/x', ['q' => 1]);
        $this->assertSame(1, $server->accepted());
    }

    // --- connect errors ----------------------------------------------------

    public function testBadSocketPathsRaiseConnectError(): void
    {
        $dir = TestProcesses::tempDir();
        file_put_contents($dir . '/file', 'x');
        $paths = [
            '/nonexistent/dir/pixl.sock',
            $dir . '/missing.sock',
            $dir . '/file',
            $dir,
            '',
            $dir . '/' . str_repeat('a', 120) . '.sock',
        ];
        foreach ($paths as $path) {
            $client = new PixlIPCClient($path);
            $start = microtime(true);
            $e = $this->expectCode(PixlIPCClient::E_SOCKET_CONNECT, function () use ($client): void {
                $client->connect();
            });
            $this->assertLessThan(2.0, microtime(true) - $start);
            $this->assertStringContainsString('Could not connect to socket', $e->getMessage());
            $this->expectCode(PixlIPCClient::E_SOCKET_CONNECT, function () use ($client): void {
                $client->sendValue('/x', ['q' => 1]);
            });
        }
    }

    public function testConnectWaitsForRoomInAFullAcceptQueueUntilConnectTimeout(): void
    {
        // Backlog 0: one connection held by the peer, one queued, and the
        // queue is full: the kernel refuses further connects with EAGAIN.
        $server = $this->peer([[['sleep', 1500], ['close']], [['close']], [['read'], ['echo']]], 0);
        $held = new PixlIPCClient($server->path);
        $held->connect();
        $this->assertTrue($server->waitFor('accepted', 0));
        $queued = new PixlIPCClient($server->path);
        $queued->connect();

        $impatient = new PixlIPCClient($server->path, ['connectTimeout' => 100]);
        $start = microtime(true);
        $this->expectCode(PixlIPCClient::E_SOCKET_CONNECT, function () use ($impatient): void {
            $impatient->connect();
        });
        $this->assertLessThan(1.4, microtime(true) - $start);

        // Room appears when the peer is done with the first two connections.
        $patient = new PixlIPCClient($server->path, ['connectTimeout' => 8000, 'requestTimeout' => 5000]);
        $this->assertSame(['ok' => 1], $patient->sendValue('/x', ['ok' => 1]));
    }

    public function testStaleSocketGivesConnectError(): void
    {
        $dir = TestProcesses::tempDir();
        $path = $dir . '/stale.sock';
        $listener = stream_socket_server('unix://' . $path);
        fclose($listener); // PHP leaves the socket file behind: nobody listens
        $this->assertFileExists($path);
        $client = new PixlIPCClient($path);
        $e = $this->expectCode(PixlIPCClient::E_SOCKET_CONNECT, function () use ($client): void {
            $client->sendValue('/x', ['q' => 1]);
        });
        $this->assertStringContainsString($path, $e->getMessage());
    }

    // --- sizes -------------------------------------------------------------

    public function testLongAnswerIsReadWhole(): void
    {
        $server = $this->peer([[['read'], ['big', 5 << 20], ['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path, ['requestTimeout' => 10000]);
        $this->assertSame(str_repeat('x', 5 << 20), $client->sendValue('/x', ['q' => 1]));
        $this->assertSame(['q' => 2], $client->sendValue('/x', ['q' => 2]));
    }

    public function testAnswerOverMaxMessageBytesRaisesTooLargeAndCloses(): void
    {
        $server = $this->peer([[['read'], ['big', 5000], ['wait_close']], [['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path, ['maxMessageBytes' => 1000]);
        $e = $this->expectCode(PixlIPCClient::E_MESSAGE_TOO_LARGE, function () use ($client): void {
            $client->sendValue('/x', ['q' => 1]);
        });
        $this->assertSame(
            'Message from server too large: at least 1001 bytes, over the limit of 1000 bytes, ipcReqID "rq0"',
            $e->getMessage()
        );
        $this->assertTrue($server->waitFor('eof', 0), 'LIMIT-3: the connection is closed');
        $this->assertSame(['q' => 2], $client->sendValue('/x', ['q' => 2]));
    }

    /** @return array<string, array{0: string, 1: string}> */
    public function oversizeLines(): array
    {
        $tail = str_repeat('x', 3000) . "\"}\n";
        return [
            'its own id' => ['{"ipcReqID":"%ID%","data":"' . $tail, ', ipcReqID "rq0"'],
            'a late answer\'s id' => ['{"ipcReqID":"rq77","data":"' . $tail, ', ipcReqID "rq77"'],
            'a number id' => ["{\"data\":1, \"ipcReqID\" : 42,\"x\":\"" . $tail, ', ipcReqID 42'],
            'no id (a push)' => ['{"data":"' . $tail, ''],
            'a null id' => ['{"ipcReqID":null,"data":"' . $tail, ''],
            'a null id, then one in data' => ['{"ipcReqID":null,"data":{"ipcReqID":"rq0","x":"' . $tail, ''],
            'an id past 4096 bytes' => ['{"data":"' . str_repeat('y', 5000) . '","ipcReqID":"rq0"}' . "\n", ''],
            'CR counted' => ['{"ipcReqID":"%ID%","data":"' . str_repeat('x', 972) . "\"}\r\n", ', ipcReqID "rq0"'],
        ];
    }

    /**
     * LIMIT-3 with CORR-6: whatever id the oversize line carries, the one
     * request in flight fails as too large and the connection is closed.
     *
     * @dataProvider oversizeLines
     */
    public function testOversizeLineFailsTheRequestInFlightWithTheIdItCarries(string $line, string $named): void
    {
        $server = $this->peer([[['read'], ['raw', $line], ['wait_close']], [['read'], ['echo']]]);
        $client = new PixlIPCClient($server->path, ['maxMessageBytes' => 1000, 'requestTimeout' => 10000]);
        $e = $this->expectCode(PixlIPCClient::E_MESSAGE_TOO_LARGE, function () use ($client): void {
            $client->sendValue('/x', ['q' => 1]);
        });
        $this->assertStringEndsWith('over the limit of 1000 bytes' . $named, $e->getMessage());
        $this->assertTrue($server->waitFor('eof', 0), 'the connection is closed');
        $this->assertSame(0, $client->pendingCount());
        $this->assertSame(['q' => 2], $client->sendValue('/x', ['q' => 2]));
    }

    public function testUnfinishedLineOverTheLimitFailsWithoutWaitingForItsEnd(): void
    {
        $server = $this->peer([[['read'], ['big', 200000, false], ['sleep', 3000]]]);
        $client = new PixlIPCClient($server->path, ['maxMessageBytes' => 100000, 'requestTimeout' => 2500]);
        $start = microtime(true);
        $this->expectCode(PixlIPCClient::E_MESSAGE_TOO_LARGE, function () use ($client): void {
            $client->sendValue('/x', ['q' => 1]);
        });
        $this->assertLessThan(2.0, microtime(true) - $start);
    }

    public function testOneByteOverALimitAboveTheReadPieceFailsWithoutWaitingForTheLineEnd(): void
    {
        // A limit above the 4 MiB read piece: the byte past the limit, with no
        // LF after it, must be enough (LIMIT-3), not another whole piece.
        $limit = (4 << 20) + 1000;
        $server = $this->peer([[['read'], ['big', $limit + 1 - 28, false], ['sleep', 3000]]]);
        $client = new PixlIPCClient($server->path, ['maxMessageBytes' => $limit, 'requestTimeout' => 2500]);
        $start = microtime(true);
        $this->expectCode(PixlIPCClient::E_MESSAGE_TOO_LARGE, function () use ($client): void {
            $client->sendValue('/x', ['q' => 1]);
        });
        $this->assertLessThan(2.0, microtime(true) - $start);
    }

    public function testAnswerOfExactlyMaxMessageBytesIsAccepted(): void
    {
        // 28 bytes of framing around the string: {"ipcReqID":"rq0","data":"..."}.
        $server = $this->peer([[['read'], ['big', 1000 - 28]]]);
        $client = new PixlIPCClient($server->path, ['maxMessageBytes' => 1000]);
        $this->assertSame(972, strlen($client->sendValue('/x', ['q' => 1])));
    }

    // --- decoding options --------------------------------------------------

    public function testBigIntegersAreFloatsByDefaultAndStringsWithBigIntAsString(): void
    {
        $answer = "{\"ipcReqID\":\"%ID%\",\"data\":{\"n\":123456789012345678901234,\"m\":9007199254740993}}\n";
        $server = $this->peer([[['read'], ['raw', $answer]]]);
        $client = new PixlIPCClient($server->path);
        $data = $client->sendValue('/x', ['q' => 1]);
        $this->assertIsFloat($data['n']);
        $this->assertSame(9007199254740993, $data['m']);
        $server2 = $this->peer([[['read'], ['raw', $answer]]]);
        $client = new PixlIPCClient($server2->path, ['bigIntAsString' => true]);
        $this->assertSame(['n' => '123456789012345678901234', 'm' => 9007199254740993], $client->sendValue('/x', []));
    }

    public function testACodeIsAnErrorWhenJavaScriptFindsItTruthy(): void
    {
        // ERR-4: "0" is a code (truthy in JavaScript, falsy in PHP); "" is none.
        $server = $this->peer([[
            ['read'], ['raw', "{\"ipcReqID\":\"%ID%\",\"code\":\"0\",\"message\":\"zero\"}\n"],
            ['read'], ['raw', "{\"ipcReqID\":\"%ID%\",\"code\":\"\",\"data\":\"B\"}\n"],
        ]]);
        $client = new PixlIPCClient($server->path);
        $e = $this->expectCode(PixlIPCClient::E_REMOTE, function () use ($client): void {
            $client->sendValue('/x', ['q' => 1]);
        });
        $this->assertSame('0', $e->getRemoteCode());
        $this->assertSame('B', $client->sendValue('/x', ['q' => 2]));
    }

    public function testAssocFalseReturnsObjects(): void
    {
        $server = $this->peer([[
            ['read'], ['raw', "{\"ipcReqID\":\"%ID%\",\"data\":{\"a\":{},\"b\":[]}}\n"],
            ['read'], ['raw', "{\"ipcReqID\":\"%ID%\",\"code\":\"x\",\"message\":\"y\"}\n"],
        ]]);
        $client = new PixlIPCClient($server->path, ['assoc' => false]);
        $this->assertEquals((object) ['a' => new stdClass(), 'b' => []], $client->sendValue('/x', ['q' => 1]));
        $e = $this->expectCode(PixlIPCClient::E_REMOTE, function () use ($client): void {
            $client->sendValue('/x', ['q' => 2]);
        });
        $this->assertSame('x', $e->getRemoteCode());
        $this->assertSame('y', $e->getRemoteMessage());
    }

    public function testUnicodeAnswersAreDecoded(): void
    {
        // FRAME-8: raw and escaped astral characters, raw U+2028, escaped NUL.
        $answer = '{"ipcReqID":"%ID%","data":["' . "\u{1F600}" . '","\ud83d\ude00","'
            . "a\u{2028}b\u{2029}" . '","\u0000"]}' . "\n";
        $server = $this->peer([[['read'], ['raw', $answer]]]);
        $client = new PixlIPCClient($server->path);
        $this->assertSame(["\u{1F600}", "\u{1F600}", "a\u{2028}b\u{2029}", "\0"], $client->sendValue('/x', ['q' => 1]));
    }
}
