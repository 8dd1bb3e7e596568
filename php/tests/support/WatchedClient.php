<?php

declare(strict_types=1);

namespace PixlIPC\Tests\Support;

use PixlIPCClient;

/**
 * A client whose test can see, through the protected $fp, when the server
 * has ended its connection, without reading from it.
 */
final class WatchedClient extends PixlIPCClient
{
    /** Wait (at most $timeout s) until end of stream from the server is pending. */
    public function waitForServerEnd(float $timeout = 10.0): bool
    {
        $until = microtime(true) + $timeout;
        do {
            stream_set_timeout($this->fp, 0, 0);
            if (feof($this->fp)) {
                return true;
            }
            usleep(5000);
        } while (microtime(true) < $until);
        return false;
    }
}
