<?php

declare(strict_types=1);

namespace PixlIPC\Tests\Support;

use RuntimeException;

/**
 * Temporary directories and child processes of the test run, cleaned up when
 * the run ends (register_shutdown_function in bootstrap.php), whatever happens.
 */
final class TestProcesses
{
    /** @var array<int, resource> proc_open handles still to stop */
    private static $processes = [];

    /** @var array<int, string> */
    private static $dirs = [];

    /**
     * A new private directory with a short path: socket paths must stay under
     * the 107 bytes AF_UNIX allows.
     */
    public static function tempDir(): string
    {
        $base = rtrim(sys_get_temp_dir(), '/');
        for ($attempt = 0; $attempt < 10; $attempt++) {
            $dir = $base . '/pxl' . bin2hex(random_bytes(4));
            if (@mkdir($dir, 0700)) {
                self::$dirs[] = $dir;
                return $dir;
            }
        }
        throw new RuntimeException("cannot create a temporary directory under {$base}");
    }

    /**
     * Start a process with stdout discarded and stderr to $stderrFile, and wait
     * until that file holds $readyLine.
     *
     * @param array<int, string> $command
     *
     * @return resource
     */
    public static function start(array $command, string $stderrFile, string $readyLine, float $timeout = 20.0)
    {
        $process = proc_open(
            $command,
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', '/dev/null', 'w'], 2 => ['file', $stderrFile, 'w']],
            $pipes
        );
        if (!is_resource($process)) {
            throw new RuntimeException('cannot start ' . implode(' ', $command));
        }
        self::$processes[(int) $process] = $process;
        $until = microtime(true) + $timeout;
        while (true) {
            $log = (string) @file_get_contents($stderrFile);
            if (strpos($log, $readyLine) !== false) {
                return $process;
            }
            if (!proc_get_status($process)['running'] || microtime(true) > $until) {
                self::stop($process);
                throw new RuntimeException(
                    'process did not become ready: ' . implode(' ', $command) . "\nstderr:\n" . $log
                );
            }
            usleep(10000);
        }
    }

    /**
     * Stop a process: SIGTERM, then SIGKILL if it is still running after $grace s.
     *
     * @param resource $process
     */
    public static function stop($process, float $grace = 5.0): void
    {
        if (!isset(self::$processes[(int) $process])) {
            return;
        }
        unset(self::$processes[(int) $process]);
        $status = proc_get_status($process);
        if ($status['running']) {
            proc_terminate($process, 15);
            $until = microtime(true) + $grace;
            while (proc_get_status($process)['running'] && microtime(true) < $until) {
                usleep(10000);
            }
            if (proc_get_status($process)['running']) {
                proc_terminate($process, 9);
            }
        }
        proc_close($process);
    }

    /** Stop every process still running and remove the directories. */
    public static function cleanUp(): void
    {
        foreach (self::$processes as $process) {
            self::stop($process, 2.0);
        }
        foreach (self::$dirs as $dir) {
            self::removeTree($dir);
        }
        self::$dirs = [];
    }

    private static function removeTree(string $dir): void
    {
        foreach ((array) @scandir($dir) as $name) {
            if ($name === '.' || $name === '..' || !is_string($name)) {
                continue;
            }
            $path = $dir . '/' . $name;
            if (is_dir($path) && !is_link($path)) {
                self::removeTree($path);
            } else {
                @unlink($path);
            }
        }
        @rmdir($dir);
    }
}
