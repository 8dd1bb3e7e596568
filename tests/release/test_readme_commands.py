"""Every shell command in the READMEs runs, as written, and succeeds.

The fenced shell blocks of README.md, python/README.md, php/README.md,
conformance/README.md and node/README.md are run one block at a time, each command with bash
from the repository root, with ``.venv/bin`` first on PATH (as in an
activated virtualenv). A block is shell when it is labelled ``sh``, ``bash``,
``shell`` or ``console``, or unlabelled with a first word that is a program
on that PATH. A command succeeds when it exits 0 (or with the status listed
in ``EXPECTED_STATUS``). The only changes made to a command:

- ``SUBSTITUTIONS``: paths of a user's system (``/run/myapp.sock``,
  ``/tmp/app.sock``, ``build/``) become paths in a fresh temporary directory,
  and a user's own program (``node myserver.js``, ``ruby my_adapter.rb``)
  becomes the kit's own server or adapter.
- A command that installs with pip runs with a fresh virtualenv's ``bin``
  first on PATH, so it never changes the kit's ``.venv``; an npm command runs
  in a fresh directory, as in a user's own project.
- A command that starts a server in the foreground (``SERVER_COMMANDS``), as
  a user would in a terminal of its own, runs in the background until the
  block's other commands are done, and is then stopped with SIGTERM. A block
  that starts its own background jobs (a command ending in ``&``) runs as one
  script instead. A socket that a block uses and none of its commands serves is
  served by the kit's server, started by the test with the message limit
  that the READMEs' conformance commands name (16 MiB).

``SKIPPED`` lists what does not run here, with the reason; each entry must
still be in a README. When a README gains a command that needs a live server
or a path of its own, give it a substitution here rather than skipping it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import Server, start_server, wait_until

REPO = Path(__file__).resolve().parents[2]
READMES = (
    "README.md",
    "python/README.md",
    "php/README.md",
    "conformance/README.md",
    "node/README.md",
)
VENV_BIN = Path(sys.executable).parent
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}

# README text -> what runs instead. {tmp}: the block's temporary directory;
# {venv}: a fresh virtualenv.
SUBSTITUTIONS = {
    "/run/myapp.sock": "{tmp}/myapp.sock",
    "/tmp/app.sock": "{tmp}/app.sock",
    "/tmp/b.sock": "{tmp}/b.sock",
    "/run/old.sock": "{tmp}/old.sock",
    # The socket a block uses is served with a 16 MiB limit; the server it is
    # compared with gets the same, or /ipcserver/info differs.
    '--start "pixl-ipc serve --socket {socket}"': '--start "pixl-ipc serve --socket {socket} --max-message-bytes 16777216"',
    '--handlers myapp_handlers.py"': '--handlers myapp_handlers.py --max-message-bytes 16777216"',
    "myapp_handlers.py": "{repo}/conformance/app/pixl_ipc_python.py",
    "my-requests.json": "{repo}/spec/vectors/original-answers.json",
    "--json compare.json": "--json {tmp}/compare.json",
    "build/pixl-ipc.sock": "{tmp}/pixl-ipc.sock",
    "make serve": "make serve BUILD={tmp}",
    "report.xml": "{tmp}/report.xml",
    # Files a command writes go to the temporary directory, not the checkout.
    "> my_adapter.js": "> {tmp}/my_adapter.js",
    '"node my_adapter.js"': '"node {tmp}/my_adapter.js"',
    "> node-adapter.js": "> {tmp}/node-adapter.js",
    '"node node-adapter.js"': '"node {tmp}/node-adapter.js"',
    # A user's own programs: the kit's own stand in.
    "node myserver.js": "{python} -m pixl_ipc serve --max-message-bytes 16777216",
    '--adapter "ruby my_adapter.rb"': '--adapter "{python} python/adapters/adapter.py --client blocking"',
    '--adapter "..."': '--adapter "{python} python/adapters/adapter.py --client asyncio"',
    ".venv/bin/pip": "{venv}/bin/pip",
    "<path-to-kit>": "{repo}",
    "path/to/pixl-ipc-kit": "{repo}",
}

# Commands (as they are after substitution) that start a server in the foreground.
SERVER_COMMANDS = (
    "make serve",
    "pixl-ipc serve",
    ".venv/bin/pixl-ipc serve",
    "python -m pixl_ipc_conformance.brokenpeers.broken_server",
)

# README command -> why it does not run here.
SKIPPED = {
    "make test": ".ci/run runs it: this test is part of it",
    "make conformance": "make test runs the same matrix, from the installed wheels (conformance-installed)",
    "phpunit -c php/phpunit.xml": "make test runs it",
    "node --test node/test/*.test.js": "make test runs it",
    "composer install": "runs in a project of the user's; make test runs the same steps (php/tests/ComposerInstallTest.php)",
    "make bench": "takes about 5 minutes; make test runs the benchmark in its quick mode (tests/bench)",
}

# README command -> its exit status, where it is not 0: the broken peers are
# there to show the suite failing.
EXPECTED_STATUS = {
    "pixl-ipc-conformance client --case C-LATE-ANSWER "
    '--adapter "{python} -m pixl_ipc_conformance.brokenpeers.broken_adapter --defect late_to_next"': 1,
    # The two servers differ (only the second has the application's handlers):
    # compare reports it in /ipcserver/info's handler list and exits 1.
    "pixl-ipc-conformance compare --socket /run/myapp.sock "
    '--start "pixl-ipc serve --socket {socket} --handlers myapp_handlers.py" '
    "--inputs my-requests.json --json compare.json": 1,
}

# Set in the commands' environment: a README command that runs the test suite
# again (make test) must not run the READMEs' commands once more.
_NESTED = "PIXL_IPC_README_COMMANDS"
# A pip command, by name or by path (after substitution, {venv}/bin/pip).
_PIP = re.compile(r"^(\S*/)?pip3?\s")
_FENCE = re.compile(
    r"^(```|~~~)[ \t]*([\w+-]*)[^\n]*\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL
)


@dataclass(frozen=True)
class Block:
    """A fenced shell block: where it is and its commands, as written."""

    readme: str
    line: int
    commands: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.readme}:{self.line}"


def _search_path() -> str:
    return os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])


def is_shell(language: str, body: str) -> bool:
    """Is a fenced block a shell block (see the module's docstring)?"""
    if language:
        return language in SHELL_LANGUAGES
    commands = commands_of(body)
    program = commands[0].split()[0] if commands else ""
    return (
        program not in ("", "<", ">")
        and shutil.which(program, path=_search_path()) is not None
    )


def commands_of(body: str) -> tuple[str, ...]:
    """The commands of a block: continuation lines joined, prompts, blanks and comments dropped."""
    commands: list[str] = []
    pending = ""
    for raw in body.splitlines():
        line = raw.rstrip()
        if pending:
            line = pending + " " + line.strip()
            pending = ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        line = strip_comment(line.strip().removeprefix("$ "))
        if line:
            commands.append(line)
    return tuple(commands)


def strip_comment(line: str) -> str:
    """A command line without its trailing ``# comment`` (a ``#`` outside quotes after a blank)."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line


def shell_blocks() -> list[Block]:
    blocks = []
    for readme in READMES:
        text = (REPO / readme).read_text()
        for match in _FENCE.finditer(text):
            language, body = match.group(2).lower(), match.group(3)
            if is_shell(language, body):
                line = text.count("\n", 0, match.start()) + 1
                blocks.append(Block(readme, line, commands_of(body)))
    return blocks


BLOCKS = shell_blocks()


def substitute(command: str, tmp: Path, venv_dir: Path) -> str:
    for old, new in SUBSTITUTIONS.items():
        command = command.replace(old, new)
    return (
        command.replace("{tmp}", str(tmp))
        .replace("{venv}", str(venv_dir))
        .replace("{repo}", str(REPO))
    )


def is_server(command: str) -> bool:
    return any(command.startswith(prefix) for prefix in SERVER_COMMANDS)


def served_socket(command: str, tmp: Path) -> str:
    """The socket a server command listens on: its --socket, or make serve's."""
    match = re.search(r"--socket\s+(\S+)", command)
    return match.group(1) if match else str(tmp / "pixl-ipc.sock")


def accepts(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


@contextlib.contextmanager
def background(command: str, env: dict[str, str], path: str) -> Iterator[None]:
    """Run a server command until the block is done; it must accept on ``path`` first."""
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        if not wait_until(
            lambda: accepts(path) or proc.poll() is not None, timeout=120
        ):
            raise AssertionError(f"{command!r} did not accept connections on {path}")
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise AssertionError(
                f"{command!r} exited {proc.returncode}: {proc.stderr.read().decode()}"
            )
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        # Whatever the shell started and left behind goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def run_block(block: Block, tmp: Path) -> None:
    venv_dir = tmp / "venv"
    env = {**os.environ, "PATH": _search_path(), _NESTED: "1"}
    env.pop("PIXL_IPC_SOCKET", None)
    commands = [
        (original, substitute(original, tmp, venv_dir))
        for original in block.commands
        if original not in SKIPPED
    ]
    served = {served_socket(cmd, tmp) for _, cmd in commands if is_server(cmd)}
    if any(command.endswith("&") for _, command in commands):
        # The block runs its own background jobs: one script, as written.
        script = "set -e\n" + "\n".join(command for _, command in commands)
        commands = [("\n".join(original for original, _ in commands), script)]
    used = {
        path
        for _, cmd in commands
        for path in re.findall(re.escape(str(tmp)) + r"/[\w.-]+\.sock", cmd)
    }
    with contextlib.ExitStack() as stack:
        for path in sorted(used - served):
            # With the limit that the READMEs' commands tell the conformance runner.
            server: Server = start_server(path, "--max-message-bytes", "16777216")
            stack.callback(server.stop)
        for original, command in commands:
            if is_server(command):
                stack.enter_context(
                    background(command, env, served_socket(command, tmp))
                )
                continue
            run_env, cwd = env, REPO
            if command.startswith("npm "):
                cwd = tmp / "app"
                cwd.mkdir(exist_ok=True)
            if _PIP.match(command):
                if not venv_dir.exists():
                    venv.EnvBuilder(with_pip=True).create(venv_dir)
                run_env = {
                    **env,
                    "PATH": os.pathsep.join([str(venv_dir / "bin"), env["PATH"]]),
                }
            proc = subprocess.run(
                ["bash", "-c", command],
                cwd=cwd,
                env=run_env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            expected = EXPECTED_STATUS.get(original, 0)
            assert proc.returncode == expected, (
                f"{block.name}: {original!r} ran as {command!r} and exited {proc.returncode}, "
                f"not {expected}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"
            )


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_readme_block_runs(block: Block) -> None:
    if os.environ.get(_NESTED):
        pytest.skip("run by a README command: the outer run checks the READMEs")
    if all(command in SKIPPED for command in block.commands):
        pytest.skip("; ".join(f"{c}: {SKIPPED[c]}" for c in block.commands))
    tmp = Path(tempfile.mkdtemp(prefix="pxr-"))
    before = untracked_files()
    try:
        run_block(block, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    left = untracked_files() - before
    assert not left, f"{block.name} left files in the checkout: {sorted(left)}"


def untracked_files() -> set[str]:
    """Files in the checkout that git neither tracks nor ignores."""
    proc = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {line[3:] for line in proc.stdout.splitlines() if line.startswith("?? ")}


def test_every_exception_still_names_a_readme_command() -> None:
    written = {command for block in BLOCKS for command in block.commands}
    stale = (set(SKIPPED) | set(EXPECTED_STATUS)) - written
    assert not stale, f"no README has these commands any more: {sorted(stale)}"


def test_what_make_test_is_said_to_run_it_runs() -> None:
    assert "make test" in (REPO / ".ci" / "run").read_text()
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "phpunit -c php/phpunit.xml" in recipe
    assert "conformance-installed" in recipe
    assert "node --test node/test/*.test.js" in recipe
    assert (REPO / "tests" / "bench").is_dir()
    assert (REPO / "php" / "tests" / "ComposerInstallTest.php").is_file()


def test_blocks_are_found_and_split_as_documented() -> None:
    assert is_shell("sh", "anything")
    assert not is_shell("json", "{}")
    assert is_shell("", "pixl-ipc-conformance client --adapter x\n")
    assert not is_shell("", "spec/          PROTOCOL.md\n")
    assert not is_shell("", '> {"id": 0}\n< {"id": 0}\n')
    assert commands_of("# a comment\n$ make x   # why\n\na \\\n  --b \\\n  c\n") == (
        "make x",
        "a --b c",
    )
    assert (
        strip_comment("""send '{"a#": 1}' x#y  # note""") == """send '{"a#": 1}' x#y"""
    )
    assert {block.readme for block in BLOCKS} >= {
        "README.md",
        "python/README.md",
        "conformance/README.md",
    }
