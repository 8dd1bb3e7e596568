"""Command line: ``pixl-ipc-conformance server|client|matrix|compare|list|example``.

``server --socket PATH`` checks a server already listening on PATH;
``server --start "CMD {socket}"`` starts one on a temporary socket first and
stops it afterwards. ``client --adapter "CMD"`` checks a client through its
adapter (spec/ADAPTER.md). ``matrix --out DIR`` runs both sides against every
implementation listed in ``conformance/matrix.json``. ``compare`` replays the
same inputs against two servers (each ``--socket`` or ``--start``) and shows
where their answers differ (:mod:`.compare`). ``list`` prints the cases;
``example NAME`` prints a file of ``conformance/examples/`` (the example adapter).

Exit status (the tables are in conformance/README.md): 0 when no MUST case
failed, 1 when one did (with ``--strict``, a SHOULD case too) or a case could
not run, 2 when the command cannot run as given (a selection of nothing
included), 130 when interrupted, 141 when the output was closed early
(``list | head``); for ``compare``, 0 when no input differs but as a declared
row says, 1 when one does or could not be compared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__, resources
from .model import (
    Case,
    CaseFileError,
    CaseResult,
    RunOptions,
    apply_expected_failures,
    exit_status,
    load_cases,
    load_expected_failures,
    not_run,
    select_cases,
    unmatched_patterns,
)
from .report import Reporter, summary_counts, write_json, write_junit
from .schemas import SchemaError, SpecSchemas
from .server_process import ServerStartError

__all__ = ["UsageError", "main"]


class UsageError(Exception):
    """A command line that cannot run as given (exit status 2); the text says why."""


class _ServerAction(argparse.Action):
    """``--socket`` and ``--start`` of ``compare``: each adds a server, in the order given."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        servers = list(getattr(namespace, self.dest, None) or [])
        servers.append((str(option_string).lstrip("-"), values))
        setattr(namespace, self.dest, servers)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--case",
        action="append",
        metavar="ID_OR_GLOB",
        help="run only these cases (repeatable, comma-separated, globs allowed)",
    )
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    parser.add_argument("--level", choices=["must", "should"], type=str.lower, help="run only this level")
    parser.add_argument(
        "--strict", action="store_true", help="a WARN (a failed SHOULD case) fails the run too"
    )
    parser.add_argument("--expect-fail", metavar="FILE", type=Path, help="JSON file of known failures")
    parser.add_argument("--report-json", metavar="FILE", type=Path, help="write a JSON report")
    parser.add_argument("--junit", metavar="FILE", type=Path, help="write a JUnit XML report")
    _add_paths(parser)
    parser.add_argument(
        "--timeout-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="multiply every case's time bound by X (slow machines)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.add_argument(
        "--transcript",
        action="store_true",
        help="show the wire transcript of each failed case (the JSON report always has it)",
    )
    parser.add_argument(
        "--cwd",
        type=Path,
        default=None,
        metavar="DIR",
        help="run the --start or --adapter command in DIR (default: the current directory)",
    )


def _add_paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--spec-dir", type=Path, default=None, help="read the spec's schemas from DIR/schema instead"
    )
    parser.add_argument(
        "--cases-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="further case files (DIR/server, DIR/client or DIR): added, or replacing a case of the same id",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command line."""
    parser = argparse.ArgumentParser(
        prog="pixl-ipc-conformance",
        description="Conformance suite for pixl-ipc 1.1 servers and clients.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    server = sub.add_parser("server", help="check a server")
    where = server.add_mutually_exclusive_group(required=False)
    where.add_argument("--socket", help="the socket path of a running server")
    where.add_argument(
        "--start", metavar="COMMAND", help="start this server command; {socket} is substituted"
    )
    server.add_argument(
        "--max-message-bytes",
        type=int,
        metavar="N",
        help="the server's message limit (enables the over-limit cases)",
    )
    server.add_argument("--start-timeout", type=float, default=15.0, help="seconds to wait for --start")
    server.add_argument(
        "--capability",
        action="append",
        default=[],
        choices=["app_handlers"],
        help="the server offers this (app_handlers: the conformance application handlers)",
    )
    _add_common(server)

    client = sub.add_parser("client", help="check a client through its adapter")
    client.add_argument("--adapter", metavar="COMMAND", help="the adapter command (spec/ADAPTER.md)")
    _add_common(client)

    matrix = sub.add_parser("matrix", help="every implementation in conformance/matrix.json")
    matrix.add_argument(
        "--out", type=Path, required=True, help="directory for the per-implementation reports"
    )
    matrix.add_argument(
        "--matrix-file", type=Path, default=None, help="the implementations to run (default: the kit's)"
    )
    matrix.add_argument("--only", action="append", metavar="NAME", help="run only these implementations")
    matrix.add_argument("--timeout-scale", type=float, default=1.0, metavar="X")
    matrix.add_argument("--quiet", action="store_true", help="no progress line")
    matrix.add_argument("--strict", action="store_true", help="a WARN fails the run too")
    _add_paths(matrix)

    compare = sub.add_parser(
        "compare", help="replay the same inputs against two servers and show where their answers differ"
    )
    compare.add_argument(
        "--socket",
        dest="servers",
        action=_ServerAction,
        metavar="PATH",
        help="a server listening on PATH (give two servers, each --socket or --start: A, then B)",
    )
    compare.add_argument(
        "--start",
        dest="servers",
        action=_ServerAction,
        metavar="COMMAND",
        help="start this server command; {socket} is substituted",
    )
    compare.add_argument(
        "--inputs",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="inputs of your own, in the format of spec/vectors/original-answers.json (repeatable)",
    )
    compare.add_argument(
        "--case",
        action="append",
        metavar="ID_OR_GLOB",
        help="replay only these inputs (entry ids, case ids; repeatable, comma-separated, globs allowed)",
    )
    compare.add_argument("--list", action="store_true", help="list the selected inputs and exit")
    compare.add_argument(
        "--only-differences", action="store_true", help="show only the inputs whose answers differ"
    )
    compare.add_argument(
        "--json", metavar="FILE", type=Path, help="write every input, both answers and the verdict"
    )
    compare.add_argument(
        "--answer-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds each server has to answer an input (default 5): past it, 'no answer'",
    )
    compare.add_argument(
        "--settle-ms",
        type=float,
        default=100.0,
        metavar="MS",
        help="how long to keep reading after a server answered an input (default 100)",
    )
    compare.add_argument(
        "--exact-messages",
        action="store_true",
        help="compare the free-text messages of bad_json, message_too_large, ... exactly too",
    )
    compare.add_argument("--start-timeout", type=float, default=15.0, help="seconds to wait for each --start")
    compare.add_argument(
        "--cwd", type=Path, default=None, metavar="DIR", help="run the --start commands in DIR"
    )
    compare.add_argument(
        "--cases-dir", type=Path, default=None, metavar="DIR", help="further server case files"
    )
    compare.add_argument("--quiet", action="store_true", help="no progress line")

    example = sub.add_parser("example", help="print an example the package carries (the Node adapter)")
    example.add_argument("name", nargs="?", help="the file (default: list them)")

    listing = sub.add_parser("list", help="list the cases")
    listing.add_argument("kind", nargs="?", choices=["server", "client"], help="only this kind")
    listing.add_argument("--case", action="append", metavar="ID_OR_GLOB")
    listing.add_argument("--level", choices=["must", "should"], type=str.lower)
    listing.add_argument("--cases-dir", type=Path, default=None, metavar="DIR")
    return parser


def _selected(kinds: Sequence[str], args: argparse.Namespace) -> list[Case]:
    """The cases a ``--case``/``--level`` selection names; a selection of nothing is a usage error."""
    everything = [case for kind in kinds for case in load_cases(kind, cases_dir=args.cases_dir)]
    where = " or ".join(kinds)
    unmatched = unmatched_patterns(everything, args.case)
    if unmatched:
        names = ", ".join(repr(p) for p in unmatched)
        hint = "pixl-ipc-conformance list" + (f" {kinds[0]}" if len(kinds) == 1 else "")
        raise UsageError(f"--case {names} matches no {where} case (see: {hint})")
    chosen = select_cases(everything, args.case, args.level)
    if not chosen:
        selection = " ".join(
            ([f"--level {args.level}"] if args.level else []) + [f"--case {p!r}" for p in args.case or []]
        )
        raise UsageError(f"no {where} case is selected by {selection}")
    return chosen


def _print_cases(cases: Sequence[Case]) -> None:
    width = max([4, *(len(c.id) for c in cases)])
    for case in cases:
        print(f"{case.id:<{width}}  {case.level:<6}  {', '.join(case.rules):<24}  {case.title}")
    print(f"{len(cases)} cases")


def _finish(
    results: list[CaseResult],
    args: argparse.Namespace,
    reporter: Reporter,
    meta: dict[str, Any],
) -> int:
    if args.expect_fail is not None:
        results = apply_expected_failures(results, load_expected_failures(args.expect_fail))
    reporter.finish(results)
    for result in results:
        if result.unexpected_pass:
            print(f"note: {result.case_id} is listed as a known failure but passed", file=sys.stderr)
    status = exit_status(results, strict=args.strict)
    if args.report_json is not None:
        meta = {**meta, "strict": args.strict, "exit_status": status}
        write_json(results, args.report_json, meta=meta, notes=reporter.notes)
    if args.junit is not None:
        write_junit(results, args.junit)
    return status


def _print_example(name: str | None) -> int:
    examples = resources.data_root() / "examples"
    names = sorted(item.name for item in examples.iterdir() if item.is_file())
    if name is None:
        print("\n".join(names))
        return 0
    if name not in names:
        raise UsageError(f"no example {name!r}; there are: {', '.join(names)}")
    sys.stdout.write(resources.example(name).read_text(encoding="utf-8"))
    return 0


def _check_cwd(args: argparse.Namespace) -> None:
    if args.cwd is not None and not args.cwd.is_dir():
        raise UsageError(f"--cwd {args.cwd}: not a directory")


def _run_server(args: argparse.Namespace) -> int:
    from .server_process import running_server
    from .server_runner import run_server_cases

    cases = _selected(["server"], args)
    if args.list:
        _print_cases(cases)
        return 0
    if args.socket is None and args.start is None:
        raise UsageError("server: give --socket PATH or --start COMMAND")
    _check_cwd(args)
    if args.expect_fail is not None:
        load_expected_failures(args.expect_fail)  # a bad file is a usage error, before any run
    schemas = SpecSchemas(args.spec_dir)
    reporter = Reporter(progress=not args.quiet, transcripts=args.transcript)
    options = RunOptions(
        schemas=schemas,
        reporter=reporter,
        timeout_scale=args.timeout_scale,
        max_message_bytes=args.max_message_bytes,
        cwd=args.cwd,
        start_command=args.start,
        server_capabilities=list(args.capability),
    )
    meta: dict[str, Any] = {"kind": "server", "socket": args.socket, "start": args.start}
    if args.start is not None:
        with running_server(args.start, cwd=args.cwd, timeout=args.start_timeout) as server:
            results = run_server_cases(cases, server, options)
    else:
        results = run_server_cases(cases, args.socket, options)
    return _finish(results, args, reporter, meta)


def _run_client(args: argparse.Namespace) -> int:
    cases = _selected(["client"], args)
    if args.list:
        _print_cases(cases)
        return 0
    if not args.adapter:
        raise UsageError("client: give --adapter COMMAND")
    _check_cwd(args)
    if args.expect_fail is not None:
        load_expected_failures(args.expect_fail)
    from .client_runner import run_client_cases

    reporter = Reporter(progress=not args.quiet, transcripts=args.transcript)
    options = RunOptions(
        schemas=SpecSchemas(args.spec_dir),
        reporter=reporter,
        timeout_scale=args.timeout_scale,
        cwd=args.cwd,
    )
    results = run_client_cases(cases, args.adapter, options)
    return _finish(results, args, reporter, {"kind": "client", "adapter": args.adapter})


def _load_matrix(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaseFileError(path, [str(exc)]) from exc
    entries = document.get("implementations") if isinstance(document, dict) else None
    problems = []
    if not isinstance(entries, list) or not entries:
        problems.append("expected an object with a non-empty 'implementations' array")
        entries = []
    for index, entry in enumerate(entries):
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and entry.get("kind") in ("server", "client")
            and isinstance(entry.get("command"), str)
        )
        if not ok:
            problems.append(f"entry {index}: needs name, kind (server|client) and command")
    if problems:
        raise CaseFileError(path, problems)
    return list(entries)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


def _run_matrix(args: argparse.Namespace) -> int:
    matrix_file = args.matrix_file.absolute() if args.matrix_file else resources.default_matrix()
    entries = _load_matrix(matrix_file)
    if args.only:
        entries = [e for e in entries if e["name"] in args.only]
    schemas = SpecSchemas(args.spec_dir)
    server_cases = load_cases("server", cases_dir=args.cases_dir)
    client_cases = load_cases("client", cases_dir=args.cases_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, dict[str, int], int]] = []
    status = 0
    for entry in entries:
        name, kind = entry["name"], entry["kind"]
        reporter = Reporter(progress=not args.quiet, title=f"== {name} ({kind})")
        options = RunOptions(
            schemas=schemas,
            reporter=reporter,
            timeout_scale=args.timeout_scale,
            max_message_bytes=entry.get("max_message_bytes"),
            cwd=matrix_file.parent,
            start_command=entry["command"] if kind == "server" else None,
            server_capabilities=list(entry.get("capabilities", [])),
        )
        results: list[CaseResult]
        if kind == "server":
            from .server_process import running_server
            from .server_runner import run_server_cases

            try:
                with running_server(entry["command"], cwd=matrix_file.parent) as server:
                    results = run_server_cases(server_cases, server, options)
            except ServerStartError as exc:
                reporter.note(f"the server did not start: {exc}")
                results = [not_run(case, "the server did not start") for case in server_cases]
        else:
            from .client_runner import run_client_cases

            results = run_client_cases(client_cases, entry["command"], options)
        if entry.get("expect_fail"):
            results = apply_expected_failures(
                results, load_expected_failures(matrix_file.parent / entry["expect_fail"])
            )
        reporter.finish(results)
        print()
        slug = _slug(name)
        code = exit_status(results, strict=args.strict)
        meta = {"name": name, "kind": kind, "command": entry["command"], "exit_status": code}
        write_json(results, args.out / f"{slug}.json", meta=meta, notes=reporter.notes)
        write_junit(results, args.out / f"{slug}.junit.xml", suite=f"pixl-ipc-conformance.{slug}")
        status = max(status, code)
        rows.append((name, kind, summary_counts(results), code))
    width = max([len("implementation"), *(len(r[0]) for r in rows)])
    columns = [("passed", "passed"), ("warned", "warned"), ("failed", "failed"), ("not_run", "not run")]
    columns += [("skipped", "not verified"), ("xfailed", "xfail")]
    print(f"{'implementation':<{width}}  kind    " + "  ".join(title for _, title in columns) + "  conforms")
    for name, kind, counts, code in rows:
        cells = "  ".join(f"{counts[key]:>{len(title)}}" for key, title in columns)
        print(f"{name:<{width}}  {kind:<6}  {cells}  {'yes' if code == 0 else 'NO'}")
    total = {key: sum(r[2][key] for r in rows) for key, _ in columns}
    line = f"{total['passed']} passed, {total['warned']} warned, {total['failed']} failed"
    if total["not_run"]:
        line += f", {total['not_run']} not run"
    if total["skipped"]:
        line += f", {total['skipped']} not verified"
    print(line)
    return status


def _run_compare(args: argparse.Namespace) -> int:
    from .compare import exit_status as compare_status
    from .compare import run_compare
    from .compare_inputs import case_inputs, load_inputs_file, recorded_inputs, select_inputs
    from .compare_inputs import unmatched_patterns as unmatched_inputs
    from .compare_replay import Bounds, Side
    from .compare_report import Progress, format_skipped, format_table, summary_line, write_json

    inputs = {item.id: item for item in recorded_inputs()}
    replayed, skipped = case_inputs(load_cases("server", cases_dir=args.cases_dir))
    inputs.update((item.id, item) for item in replayed)
    for path in args.inputs:
        # An input of the user's own replaces a carried one of the same id.
        inputs.update((item.id, item) for item in load_inputs_file(path))
    unmatched = unmatched_inputs(list(inputs.values()), args.case)
    if unmatched:
        names = ", ".join(repr(p) for p in unmatched)
        raise UsageError(f"--case {names} matches no input (see: pixl-ipc-conformance compare --list)")
    chosen = select_inputs(list(inputs.values()), args.case)
    if args.case:
        wanted = {item.group for item in chosen}
        skipped = [(case_id, reason) for case_id, reason in skipped if case_id in wanted]
    if args.list:
        width = max(len(item.id) for item in chosen)
        for item in chosen:
            print(f"{item.id:<{width}}  {item.source:<28}  {item.title}")
        print(f"{len(chosen)} inputs")
        if skipped:
            print(format_skipped(skipped))
        return 0
    servers = args.servers or []
    if len(servers) != 2:
        raise UsageError(
            f"compare: give two servers, each --socket PATH or --start COMMAND (got {len(servers)})"
        )
    if args.answer_timeout <= 0 or args.settle_ms < 0:
        raise UsageError("compare: --answer-timeout must be positive and --settle-ms not negative")
    _check_cwd(args)
    sides = tuple(
        Side(
            label,
            socket=value if kind == "socket" else None,
            start=value if kind == "start" else None,
            cwd=args.cwd,
            start_timeout=args.start_timeout,
        )
        for label, (kind, value) in zip("AB", servers, strict=True)
    )
    bounds = Bounds(answer_s=args.answer_timeout, settle_s=args.settle_ms / 1000.0)
    progress = Progress(len(chosen), None if args.quiet else sys.stderr)
    try:
        for side in sides:
            side.open()
        comparisons = run_compare(
            chosen,
            sides,
            bounds,
            exact_messages=args.exact_messages,
            schemas=SpecSchemas(),
            progress=progress,
        )
    finally:
        progress.done()
        for side in sides:
            side.close()
    status = compare_status(comparisons)
    for side in sides:
        print(f"{side.label}: {side.description}")
    print(format_table(comparisons, only_differences=args.only_differences))
    if skipped:
        print(format_skipped(skipped))
    for side in sides:
        for note in side.notes:
            print(f"note: {note}")
    print(summary_line(comparisons, skipped))
    if args.json is not None:
        write_json(comparisons, skipped, sides, args.json, status=status)
    return status


#: The exit status when the reader of the output went away (as a process killed by SIGPIPE).
EXIT_OUTPUT_CLOSED = 141


def _tolerant_output() -> None:
    """Let stdout and stderr write any text: a lone surrogate a server sent
    (valid JSON, FRAME-8) is written as its escape, never an encoding error."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    _tolerant_output()
    try:
        return _main(argv)
    except BrokenPipeError:
        # The output was closed early (``list | head``): stop quietly. Later
        # writes, and the flush at exit, go nowhere instead of failing again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OUTPUT_CLOSED


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            _print_cases(_selected([args.kind] if args.kind else ["server", "client"], args))
            return 0
        if args.command == "example":
            return _print_example(args.name)
        if args.command == "server":
            return _run_server(args)
        if args.command == "client":
            return _run_client(args)
        if args.command == "compare":
            return _run_compare(args)
        return _run_matrix(args)
    except (UsageError, CaseFileError, SchemaError, ServerStartError) as exc:
        print(f"pixl-ipc-conformance: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pixl-ipc-conformance: interrupted", file=sys.stderr)
        return 130
