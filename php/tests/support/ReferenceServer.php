<?php

declare(strict_types=1);

namespace PixlIPC\Tests\Support;

use RuntimeException;

/**
 * The Python reference server (`python -m pixl_ipc serve`) on a temporary
 * socket. The interpreter is $PIXL_IPC_PYTHON, else the repository's
 * .venv/bin/python.
 */
final class ReferenceServer
{
    /** @var ReferenceServer|null */
    private static $shared;

    /** @var string */
    public $path;

    /** @var array<int, string> */
    private $extraArgs;

    /** @var resource|null */
    private $process;

    /** @var string */
    private $dir;

    /** @param array<int, string> $extraArgs further `serve` arguments */
    public function __construct(array $extraArgs = [], ?string $path = null)
    {
        $this->dir = TestProcesses::tempDir();
        $this->path = $path ?? $this->dir . '/s.sock';
        $this->extraArgs = $extraArgs;
        $this->start();
    }

    /** One server for the tests that do not stop it, started on first use. */
    public static function shared(): self
    {
        if (self::$shared === null) {
            self::$shared = new self();
        }
        return self::$shared;
    }

    public static function python(): string
    {
        $python = getenv('PIXL_IPC_PYTHON');
        if ($python === false || $python === '') {
            $python = dirname(__DIR__, 3) . '/.venv/bin/python';
        }
        return $python;
    }

    /** (Re)start the server on the same path. */
    public function start(): void
    {
        if ($this->process !== null) {
            return;
        }
        $python = self::python();
        if (!is_executable($python)) {
            throw new RuntimeException("no Python interpreter at {$python}: set PIXL_IPC_PYTHON");
        }
        $this->process = TestProcesses::start(
            array_merge([$python, '-m', 'pixl_ipc', 'serve', '--socket', $this->path], $this->extraArgs),
            $this->dir . '/stderr-' . bin2hex(random_bytes(3)) . '.log',
            'listening on ' . $this->path
        );
    }

    /** The server's process id, or 0 when it is not running. */
    public function pid(): int
    {
        return $this->process === null ? 0 : (int) proc_get_status($this->process)['pid'];
    }

    /** Stop the server (it removes its socket path on a clean shutdown). */
    public function stop(): void
    {
        if ($this->process !== null) {
            TestProcesses::stop($this->process);
            $this->process = null;
        }
    }
}
