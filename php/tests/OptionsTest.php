<?php

declare(strict_types=1);

namespace PixlIPC\Tests;

use Exception;
use InvalidArgumentException;
use PHPUnit\Framework\TestCase;
use PixlIPCClient;
use PixlIPCException;

/**
 * Constructor options and argument checks that need no server.
 */
final class OptionsTest extends TestCase
{
    public function testCodesAreTheOriginalsPlusTwo(): void
    {
        $this->assertSame(5001, PixlIPCClient::E_SOCKET_CONNECT);
        $this->assertSame(5002, PixlIPCClient::E_BAD_REQUEST_TYPE);
        $this->assertSame(5003, PixlIPCClient::E_SOCKET_WRITE);
        $this->assertSame(5004, PixlIPCClient::E_BAD_RESPONSE);
        $this->assertSame(5005, PixlIPCClient::E_SERVER_CLOSE);
        $this->assertSame(5006, PixlIPCClient::E_TIMEOUT);
        $this->assertSame(5007, PixlIPCClient::E_REMOTE);
        $this->assertSame(5008, PixlIPCClient::E_MESSAGE_TOO_LARGE);
        $this->assertSame(64 * 1024 * 1024, PixlIPCClient::DEFAULT_MAX_MESSAGE_BYTES);
        $this->assertTrue(is_subclass_of(PixlIPCException::class, Exception::class));
    }

    /** @return array<string, array{0: array<string, mixed>}> */
    public function badOptions(): array
    {
        return [
            'negative connectTimeout' => [['connectTimeout' => -1]],
            'zero requestTimeout' => [['requestTimeout' => 0]],
            'text requestTimeout' => [['requestTimeout' => 'soon']],
            'NAN requestTimeout' => [['requestTimeout' => NAN]],
            'array connectTimeout' => [['connectTimeout' => [1]]],
            'zero maxMessageBytes' => [['maxMessageBytes' => 0]],
            'float maxMessageBytes' => [['maxMessageBytes' => 1.5]],
            'string throwOnTimeout' => [['throwOnTimeout' => 'yes']],
            'int emptyArrayAsObject' => [['emptyArrayAsObject' => 1]],
            'array assoc' => [['assoc' => []]],
            'string bigIntAsString' => [['bigIntAsString' => 'true']],
            'int scalarRequests' => [['scalarRequests' => 1]],
            'string throwOnBadResponse' => [['throwOnBadResponse' => 'no']],
            'int reconnectOnClose' => [['reconnectOnClose' => 1]],
            'onPush not callable' => [['onPush' => 'no_such_function_here']],
            'negative maxPushes' => [['maxPushes' => -1]],
            'invalid UTF-8 userAgent' => [['userAgent' => "\xFF"]],
            'array userAgent' => [['userAgent' => ['x']]],
        ];
    }

    /**
     * @dataProvider badOptions
     *
     * @param array<string, mixed> $options
     */
    public function testBadOptionIsRefusedWithItsName(array $options): void
    {
        $this->expectException(InvalidArgumentException::class);
        $this->expectExceptionMessage((string) array_key_first($options));
        new PixlIPCClient('/tmp/x.sock', $options);
    }

    public function testOptionsMustBeAnArray(): void
    {
        $this->expectException(InvalidArgumentException::class);
        new PixlIPCClient('/tmp/x.sock', 'requestTimeout=5');
    }

    public function testNullAndFalseOptionsMeanNoOptions(): void
    {
        // As the original accepted them.
        foreach ([null, false] as $options) {
            $client = new PixlIPCClient('/nonexistent/x.sock', $options);
            try {
                $client->connect();
                $this->fail('connected to a path that does not exist');
            } catch (PixlIPCException $e) {
                $this->assertSame(PixlIPCClient::E_SOCKET_CONNECT, $e->getCode());
            }
        }
    }

    public function testConnectErrorHasAPlainFirstSentenceThenTheDetailsAndErrno(): void
    {
        $client = new PixlIPCClient('/nonexistent/x.sock');
        try {
            $client->connect();
            $this->fail('connected to a path that does not exist');
        } catch (PixlIPCException $e) {
            $this->assertSame(
                'Could not connect to socket: /nonexistent/x.sock: No such file or directory (errno 2)',
                $e->getMessage()
            );
            $this->assertSame(2, $e->getErrno());
            $this->assertSame('No such file or directory', $e->getErrstr());
        }
    }

    public function testGoodOptionsAreAcceptedAndUnknownOnesIgnored(): void
    {
        $client = new PixlIPCClient('/tmp/x.sock', [
            'connectTimeout' => '250',
            'requestTimeout' => 1.5,
            'userAgent' => 'x',
            'throwOnTimeout' => true,
            'emptyArrayAsObject' => true,
            'assoc' => false,
            'bigIntAsString' => true,
            'scalarRequests' => true,
            'throwOnBadResponse' => true,
            'maxMessageBytes' => 16 << 20,
            'onPush' => static function (): void {
            },
            'maxPushes' => 3,
            'reconnectOnClose' => true,
            'somethingElse' => 'ignored',
        ]);
        $this->assertInstanceOf(PixlIPCClient::class, $client);
        // No deadline at all is a valid timeout.
        $client = new PixlIPCClient('/tmp/x.sock', ['requestTimeout' => INF, 'connectTimeout' => INF]);
        $this->assertInstanceOf(PixlIPCClient::class, $client);
    }

    public function testBadPerRequestTimeoutIsRefusedBeforeConnecting(): void
    {
        $client = new PixlIPCClient('/nonexistent/x.sock');
        foreach ([0, -5, 'soon', NAN, -INF] as $timeout) {
            try {
                $client->sendValue('/x', [], $timeout);
                $this->fail('accepted timeout ' . var_export($timeout, true));
            } catch (InvalidArgumentException $e) {
                $this->assertStringContainsString('timeoutMs', $e->getMessage());
            }
        }
    }
}
