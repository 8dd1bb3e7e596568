<?php

/**
 * Conformance adapter for PixlIPCClient (spec/ADAPTER.md).
 *
 * Reads one JSON command per line on stdin, answers one JSON line per command
 * on stdout, logs nothing on stdout. Exits 0 at end of input after closing
 * the client.
 *
 * Usage: php php/adapter.php [--false-on-timeout]
 *
 * By default the client runs with throwOnTimeout, so that an answer whose data
 * is `false` is reported as data. With --false-on-timeout it runs as the
 * original did (send returns false on timeout) and `false` maps to "timeout".
 */

declare(strict_types=1);

namespace PixlIPC\Conformance;

use InvalidArgumentException;
use PixlIPCClient;
use PixlIPCException;
use stdClass;

// Warnings must never reach the JSON channel.
ini_set('display_errors', 'stderr');
error_reporting(E_ALL);

require_once __DIR__ . '/src/PixlIPCClient.php';

final class PixlIPCAdapter
{
    private const NAME = 'pixl-ipc php PixlIPCClient';
    private const VERSION = '1.1.0';
    private const CAPABILITIES = ['push', 'reconnect', 'max_message_bytes', 'introspect', 'timeout'];
    /** How many unreported pushes are kept for the `pushes` command. */
    private const MAX_PUSHES = 100000;
    private const OUTPUT_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION;

    /** The error kind of each PixlIPCException code (ADAPTER.md, "Error kinds"). */
    private const KINDS = [
        PixlIPCClient::E_SOCKET_CONNECT => 'connect',
        PixlIPCClient::E_BAD_REQUEST_TYPE => 'unsupported',
        PixlIPCClient::E_SOCKET_WRITE => 'closed',
        PixlIPCClient::E_BAD_RESPONSE => 'protocol',
        PixlIPCClient::E_SERVER_CLOSE => 'closed',
        PixlIPCClient::E_TIMEOUT => 'timeout',
        PixlIPCClient::E_REMOTE => 'remote',
        PixlIPCClient::E_MESSAGE_TOO_LARGE => 'too_large',
    ];

    /** @var PixlIPCClient|null */
    private $client;

    /** @var bool */
    private $falseOnTimeout;

    public function __construct(bool $falseOnTimeout)
    {
        $this->falseOnTimeout = $falseOnTimeout;
    }

    /** @param resource $input */
    public function run($input): int
    {
        while (($line = fgets($input)) !== false) {
            if (trim($line) === '') {
                continue;
            }
            $this->handle($line);
        }
        if ($this->client !== null) {
            $this->client->close();
        }
        return 0;
    }

    private function handle(string $line): void
    {
        // Objects stay objects, so that {} and [] travel unchanged.
        $command = json_decode($line, false);
        if (!$command instanceof stdClass) {
            $this->answer(null, false, [
                'kind' => 'unsupported',
                'message' => 'not a JSON object: ' . json_last_error_msg(),
            ]);
            return;
        }
        $id = $command->id ?? null;
        $cmd = $command->cmd ?? null;
        try {
            switch ($cmd) {
                case 'start':
                    $result = [
                        'name' => self::NAME,
                        'language' => 'php',
                        'version' => self::VERSION,
                        'capabilities' => self::CAPABILITIES,
                    ];
                    break;
                case 'connect':
                    $result = $this->connect($command);
                    break;
                case 'send':
                    $result = $this->send($command);
                    break;
                case 'close':
                    if ($this->client !== null) {
                        $this->client->close();
                    }
                    $result = new stdClass();
                    break;
                case 'pushes':
                    $result = ['pushes' => $this->client !== null ? $this->client->getPushes() : []];
                    break;
                case 'introspect':
                    $result = ['pending' => $this->client !== null ? $this->client->pendingCount() : 0];
                    break;
                default:
                    $this->answer($id, false, [
                        'kind' => 'unsupported',
                        'message' => 'unknown command ' . json_encode($cmd),
                    ]);
                    return;
            }
        } catch (PixlIPCException $e) {
            $error = ['kind' => self::KINDS[$e->getCode()] ?? 'protocol', 'message' => $e->getMessage()];
            if ($e->getCode() === PixlIPCClient::E_REMOTE) {
                $error['code'] = (string) $e->getRemoteCode();
                $error['message'] = (string) $e->getRemoteMessage();
            }
            $this->answer($id, false, $error);
            return;
        } catch (InvalidArgumentException $e) {
            $this->answer($id, false, ['kind' => 'unsupported', 'message' => $e->getMessage()]);
            return;
        }
        $this->answer($id, true, $result);
    }

    /** @return stdClass */
    private function connect(stdClass $command): stdClass
    {
        if ($this->client !== null) {
            $this->client->close();
            $this->client = null;
        }
        $given = $command->options ?? null;
        if (!$given instanceof stdClass) {
            $given = new stdClass();
        }
        $options = [
            // ADAPTER.md: send takes any JSON value as data (REQ-4).
            'scalarRequests' => true,
            'assoc' => false,
            'maxPushes' => self::MAX_PUSHES,
            'throwOnTimeout' => !$this->falseOnTimeout,
        ];
        // auto_reconnect_ms has no counterpart: the client reconnects on the
        // next send, which is the "reconnect" capability. Nor has
        // expire_request_ms: the client keeps no timed-out ids (a late answer
        // is dropped for not matching the request in flight).
        $names = [
            'request_timeout_ms' => 'requestTimeout',
            'connect_timeout_ms' => 'connectTimeout',
            'user_agent' => 'userAgent',
            'max_message_bytes' => 'maxMessageBytes',
        ];
        foreach ($names as $from => $to) {
            if (isset($given->{$from})) {
                $options[$to] = $given->{$from};
            }
        }
        $client = new PixlIPCClient((string) ($command->socket ?? ''), $options);
        $client->connect();
        $this->client = $client;
        return new stdClass();
    }

    /** @return array<string, mixed> */
    private function send(stdClass $command): array
    {
        if ($this->client === null) {
            throw new PixlIPCException('not connected: send before connect', PixlIPCClient::E_SERVER_CLOSE);
        }
        $timeout = $command->timeout_ms ?? null;
        $data = $this->client->sendValue($command->uri ?? null, $command->data ?? null, $timeout);
        if ($data === false && $this->falseOnTimeout) {
            throw new PixlIPCException('no answer in time (send returned false)', PixlIPCClient::E_TIMEOUT);
        }
        return ['data' => $data];
    }

    /**
     * @param mixed $id
     * @param mixed $payload the result, or the error object
     */
    private function answer($id, bool $ok, $payload): void
    {
        $message = ['id' => $id, 'ok' => $ok];
        $message[$ok ? 'result' : 'error'] = $payload;
        $json = json_encode($message, self::OUTPUT_FLAGS);
        if ($json === false) {
            $json = json_encode([
                'id' => $id,
                'ok' => false,
                'error' => ['kind' => 'protocol', 'message' => 'cannot encode the answer: ' . json_last_error_msg()],
            ]);
        }
        fwrite(STDOUT, $json . "\n");
        fflush(STDOUT);
    }
}

$adapter = new PixlIPCAdapter(in_array('--false-on-timeout', array_slice($argv, 1), true));
exit($adapter->run(STDIN));
