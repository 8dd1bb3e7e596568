<?php

declare(strict_types=1);

// Composer is not required: the class file is loaded directly, as a user of
// the original would.
require_once dirname(__DIR__) . '/src/PixlIPCClient.php';
require_once __DIR__ . '/support/TestProcesses.php';
require_once __DIR__ . '/support/ScriptedServer.php';
require_once __DIR__ . '/support/ReferenceServer.php';
require_once __DIR__ . '/support/WatchedClient.php';
require_once __DIR__ . '/support/LegacyClient.php';

register_shutdown_function([PixlIPC\Tests\Support\TestProcesses::class, 'cleanUp']);

// An interrupted run (Ctrl-C, a CI timeout) must still stop the servers it
// started: exit() runs the shutdown function above.
if (function_exists('pcntl_async_signals')) {
    pcntl_async_signals(true);
    foreach ([SIGINT, SIGTERM, SIGHUP] as $signal) {
        pcntl_signal($signal, static function (int $signal): void {
            exit(128 + $signal);
        });
    }
}
