<?php

declare(strict_types=1);

// Composer is not required: the class file is loaded directly, as a user of
// the original would.
require_once dirname(__DIR__) . '/src/PixlIPCClient.php';
require_once __DIR__ . '/support/TestProcesses.php';
require_once __DIR__ . '/support/ScriptedServer.php';
require_once __DIR__ . '/support/ReferenceServer.php';

register_shutdown_function([PixlIPC\Tests\Support\TestProcesses::class, 'cleanUp']);
