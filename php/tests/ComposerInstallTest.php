<?php

declare(strict_types=1);

namespace PixlIPC\Tests;

use PHPUnit\Framework\TestCase;
use PixlIPC\Tests\Support\ReferenceServer;
use PixlIPC\Tests\Support\TestProcesses;

/**
 * The Composer install that php/README.md describes, run as written: its
 * composer.json in a new project, `composer install`, then the client used
 * through vendor/autoload.php in a process of its own.
 */
final class ComposerInstallTest extends TestCase
{
    /** The placeholder for the kit's checkout in the README's composer.json. */
    private const KIT_PATH = '/path/to/pixl-ipc-kit';

    public function testTheReadmesComposerInstallGivesAWorkingClient(): void
    {
        $composer = self::which('composer');
        if ($composer === null) {
            $this->markTestSkipped(
                'composer is not installed (`make setup` installs it as root, or apt-get install composer):'
                . ' the Composer install is not checked'
            );
        }
        $kit = dirname(__DIR__, 2);
        $project = TestProcesses::tempDir();
        file_put_contents(
            $project . '/composer.json',
            str_replace(self::KIT_PATH, $kit, self::readmeBlock('json', '"pixl-ipc/client"'))
        );
        $command = trim(self::readmeBlock('sh', 'composer install'));
        $this->assertSame('composer install', $command);
        [$status, $output] = self::runIn([$composer, 'install'], $project, [
            // A project of its own: no user configuration, cache or network.
            'COMPOSER_HOME' => $project . '/.composer',
            'COMPOSER_CACHE_DIR' => $project . '/.composer-cache',
            'COMPOSER_DISABLE_NETWORK' => '1',
        ]);
        $this->assertSame(0, $status, $output);
        $this->assertFileExists($project . '/vendor/autoload.php');

        $script = '<?php require "vendor/autoload.php";'
            . ' $client = new PixlIPCClient($argv[1], ["requestTimeout" => 10000]);'
            . ' $request = ["from" => "composer"];'
            . ' echo json_encode([get_class($client), $client->send("/ipcserver/test/echo", $request)]);';
        file_put_contents($project . '/use.php', $script);
        [$status, $output] = self::runIn([PHP_BINARY, 'use.php', ReferenceServer::shared()->path], $project, []);
        $this->assertSame(0, $status, $output);
        $this->assertSame('["PixlIPCClient",{"from":"composer"}]', $output);
    }

    /** The first ```$language block of php/README.md that contains $needle. */
    private static function readmeBlock(string $language, string $needle): string
    {
        $readme = (string) file_get_contents(dirname(__DIR__) . '/README.md');
        preg_match_all('/^```' . $language . '\n(.*?)^```$/ms', $readme, $blocks);
        foreach ($blocks[1] as $block) {
            if (strpos($block, $needle) !== false) {
                return $block;
            }
        }
        self::fail("php/README.md has no ```{$language} block with {$needle}");
    }

    private static function which(string $program): ?string
    {
        foreach (explode(PATH_SEPARATOR, (string) getenv('PATH')) as $dir) {
            if ($dir !== '' && is_executable($dir . '/' . $program)) {
                return $dir . '/' . $program;
            }
        }
        return null;
    }

    /**
     * Run $command in $dir with $env added to the environment.
     *
     * @param array<int, string>    $command
     * @param array<string, string> $env
     *
     * @return array{0: int, 1: string} the exit status and stdout, or stdout and stderr when it failed
     */
    private static function runIn(array $command, string $dir, array $env): array
    {
        $process = proc_open(
            $command,
            [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
            $pipes,
            $dir,
            $env + getenv()
        );
        self::assertIsResource($process);
        $stdout = (string) stream_get_contents($pipes[1]);
        $stderr = (string) stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        $status = proc_close($process);
        return [$status, $status === 0 ? $stdout : $stdout . $stderr];
    }
}
