<?php

declare(strict_types=1);

namespace PixlIPC\Tests;

use PHPUnit\Framework\TestCase;
use PhpParser\Node;
use PhpParser\NodeFinder;
use PhpParser\ParserFactory;

/**
 * The client promises PHP 7.4 (composer.json), while the test machines run a
 * newer PHP that would accept later syntax silently. This scans the shipped
 * files, and the tests, for what PHP 7.4 cannot run.
 */
final class Php74CompatibilityTest extends TestCase
{
    /** Functions that appeared after PHP 7.4. */
    private const NEWER_FUNCTIONS = [
        'str_contains', 'str_starts_with', 'str_ends_with', 'get_debug_type', 'get_resource_id',
        'fdiv', 'preg_last_error_msg', 'array_is_list', 'enum_exists', 'fsync', 'fdatasync',
        'json_validate', 'mb_str_pad', 'str_increment', 'str_decrement',
    ];

    /** Type names that appeared after PHP 7.4. */
    private const NEWER_TYPES = ['mixed', 'static', 'never', 'null', 'false', 'true'];

    /** @return array<string, array{0: string}> */
    public function files(): array
    {
        $root = dirname(__DIR__);
        $files = [];
        $paths = array_merge(
            [$root . '/src/PixlIPCClient.php', $root . '/adapter.php', $root . '/bench.php'],
            glob($root . '/tools/*.php') ?: [],
            glob($root . '/tests/*.php') ?: [],
            glob($root . '/tests/support/*.php') ?: []
        );
        foreach ($paths as $path) {
            $files[substr($path, strlen($root) + 1)] = [$path];
        }
        return $files;
    }

    /** @dataProvider files */
    public function testFileUsesNoSyntaxOrFunctionNewerThanPhp74(string $path): void
    {
        if (!class_exists(ParserFactory::class)) {
            @include_once '/usr/share/php/PhpParser/autoload.php';
        }
        if (!class_exists(ParserFactory::class)) {
            $this->markTestSkipped('nikic/php-parser is not installed');
        }
        $code = (string) file_get_contents($path);
        $ast = (new ParserFactory())->create(ParserFactory::PREFER_PHP7)->parse($code);
        $this->assertIsArray($ast);
        $problems = [];
        $nodes = (new NodeFinder())->find($ast, static function (Node $node): bool {
            return true;
        });
        foreach ($nodes as $node) {
            $problem = self::newerThan74($node);
            if ($problem !== null) {
                $problems[] = 'line ' . $node->getStartLine() . ': ' . $problem;
            }
        }
        $problems = array_merge($problems, self::trailingCommasInSignatures($code));
        $this->assertSame([], $problems);
    }

    private static function newerThan74(Node $node): ?string
    {
        if ($node instanceof Node\Expr\Match_) {
            return 'match';
        }
        if ($node instanceof Node\Expr\NullsafeMethodCall || $node instanceof Node\Expr\NullsafePropertyFetch) {
            return 'nullsafe operator';
        }
        if ($node instanceof Node\Expr\Throw_) {
            return 'throw as an expression';
        }
        if ($node instanceof Node\UnionType || $node instanceof Node\AttributeGroup) {
            return get_class($node);
        }
        if ($node instanceof Node\Arg && $node->name !== null) {
            return 'named argument';
        }
        if ($node instanceof Node\Param && $node->flags !== 0) {
            return 'constructor property promotion';
        }
        if ($node instanceof Node\Stmt\Property && ($node->flags & Node\Stmt\Class_::MODIFIER_READONLY) !== 0) {
            return 'readonly';
        }
        if ($node instanceof Node\Stmt\Enum_ || $node instanceof Node\VariadicPlaceholder) {
            return get_class($node);
        }
        if (
            ($node instanceof Node\FunctionLike)
            && self::isNewerType($node->getReturnType())
        ) {
            return 'return type newer than 7.4';
        }
        if ($node instanceof Node\Param && self::isNewerType($node->type)) {
            return 'parameter type newer than 7.4';
        }
        if (
            $node instanceof Node\Expr\FuncCall && $node->name instanceof Node\Name
            && in_array(strtolower($node->name->getLast()), self::NEWER_FUNCTIONS, true)
        ) {
            return 'function ' . $node->name->getLast();
        }
        return null;
    }

    /** @param mixed $type */
    private static function isNewerType($type): bool
    {
        if ($type instanceof Node\NullableType) {
            $type = $type->type;
        }
        if ($type instanceof Node\Name) {
            return in_array($type->toLowerString(), self::NEWER_TYPES, true);
        }
        return $type instanceof Node\Identifier && in_array(strtolower($type->name), self::NEWER_TYPES, true);
    }

    /**
     * A trailing comma in a parameter list or a closure's use list is PHP 8.0
     * syntax; the parser accepts it without a trace in the tree.
     *
     * @return array<int, string>
     */
    private static function trailingCommasInSignatures(string $code): array
    {
        $tokens = array_values(array_filter(token_get_all($code), static function ($token): bool {
            return !is_array($token) || !in_array($token[0], [T_WHITESPACE, T_COMMENT, T_DOC_COMMENT], true);
        }));
        $problems = [];
        $count = count($tokens);
        for ($i = 0; $i < $count; $i++) {
            $token = $tokens[$i];
            if (!is_array($token) || !in_array($token[0], [T_FUNCTION, T_FN, T_USE], true)) {
                continue;
            }
            // Find the opening parenthesis of the list, then its match.
            $j = $i + 1;
            while ($j < $count && $tokens[$j] !== '(' && $tokens[$j] !== ';' && $tokens[$j] !== '{') {
                $j++;
            }
            if ($j >= $count || $tokens[$j] !== '(') {
                continue;
            }
            $depth = 0;
            for ($k = $j; $k < $count; $k++) {
                if ($tokens[$k] === '(') {
                    $depth++;
                } elseif ($tokens[$k] === ')' && --$depth === 0) {
                    if ($tokens[$k - 1] === ',') {
                        $problems[] = 'line ' . $token[2] . ': trailing comma in a parameter or use list';
                    }
                    break;
                }
            }
        }
        return $problems;
    }
}
