<?php

declare(strict_types=1);

namespace PixlIPC\Tests\Support;

/**
 * Runs scripted_server.php (a misbehaving peer, see its header for the steps)
 * as a separate process on a fresh socket path, and reads back what it saw.
 */
final class ScriptedServer
{
    /** @var string the socket path */
    public $path;

    /** @var string */
    private $recordFile;

    /** @var resource */
    private $process;

    /**
     * @param array<int, array<int, array<int, mixed>>> $connections one step list per connection
     */
    public function __construct(array $connections, int $deadlineMs = 15000, int $backlog = 16)
    {
        $dir = TestProcesses::tempDir();
        $this->path = $dir . '/s.sock';
        $this->recordFile = $dir . '/record.jsonl';
        $scriptFile = $dir . '/script.json';
        file_put_contents($scriptFile, json_encode(
            ['connections' => $connections, 'deadline_ms' => $deadlineMs, 'backlog' => $backlog],
            JSON_THROW_ON_ERROR
        ));
        touch($this->recordFile);
        $this->process = TestProcesses::start(
            [PHP_BINARY, __DIR__ . '/scripted_server.php', $this->path, $scriptFile, $this->recordFile],
            $dir . '/stderr.log',
            'listening on ' . $this->path
        );
    }

    /**
     * The events recorded so far.
     *
     * @return array<int, array<string, mixed>>
     */
    public function events(): array
    {
        $events = [];
        foreach (file($this->recordFile, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) ?: [] as $line) {
            $event = json_decode($line, true);
            if (is_array($event)) { // the last line may still be being written
                $events[] = $event;
            }
        }
        return $events;
    }

    /**
     * The lines the server read, in order.
     *
     * @return array<int, string>
     */
    public function lines(?int $connection = null): array
    {
        $lines = [];
        foreach ($this->events() as $event) {
            if ($event['event'] === 'line' && ($connection === null || $event['conn'] === $connection)) {
                $lines[] = $event['line'];
            }
        }
        return $lines;
    }

    /**
     * The requests the server read, decoded.
     *
     * @return array<int, mixed>
     */
    public function requests(?int $connection = null): array
    {
        return array_map(static function (string $line) {
            return json_decode($line, true, 512, JSON_THROW_ON_ERROR);
        }, $this->lines($connection));
    }

    /** Wait (at most $timeout s) until an event like $wanted was recorded. */
    public function waitFor(string $event, int $connection, float $timeout = 5.0): bool
    {
        $until = microtime(true) + $timeout;
        do {
            foreach ($this->events() as $seen) {
                if ($seen['event'] === $event && $seen['conn'] === $connection) {
                    return true;
                }
            }
            usleep(5000);
        } while (microtime(true) < $until);
        return false;
    }

    /** Number of connections the server accepted. */
    public function accepted(): int
    {
        return count(array_filter($this->events(), static function (array $event): bool {
            return $event['event'] === 'accepted';
        }));
    }

    public function stop(): void
    {
        TestProcesses::stop($this->process, 2.0);
    }
}
