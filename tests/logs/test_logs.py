"""pixl_ipc.logs: text and JSON lines, files reopened after rotation, set-up only when missing."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pixl_ipc.logs import (
    JsonFormatter,
    configure_logging,
    reopen_log_files,
    stats_message,
)


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    """Each test starts with an unconfigured root logger and gets the old one back."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    for handler in saved_handlers:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


def test_json_lines_hold_time_level_logger_message_extras_and_traceback() -> None:
    out = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=out)
    log = logging.getLogger("pixl_ipc.server")
    log.info("two\nlines and 100%", extra={"peer": {"uid": 0}})
    try:
        raise KeyError("name")
    except KeyError:
        log.exception("handler for %s failed", "/myapp/x")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "INFO"
    assert first["logger"] == "pixl_ipc.server"
    assert first["message"] == "two\nlines and 100%"
    assert first["peer"] == {"uid": 0}
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert "exception" not in first
    assert second["message"] == "handler for /myapp/x failed"
    assert second["level"] == "ERROR"
    assert second["exception"].startswith("Traceback (most recent call last):")
    assert "KeyError: 'name'" in second["exception"]


def test_json_formatter_never_fails_on_values_that_are_not_json() -> None:
    record = logging.LogRecord("x", logging.INFO, "f", 1, "m", None, None)
    record.ids = frozenset({2, 1})
    record.thing = object()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["ids"] == [1, 2]
    assert entry["thing"].startswith("<object object")


def test_text_lines_show_level_logger_and_traceback() -> None:
    out = io.StringIO()
    configure_logging(fmt="text", stream=out)
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logging.getLogger("pixl_ipc.connection").exception("handler for /a failed")
    text = out.getvalue()
    assert " ERROR pixl_ipc.connection: handler for /a failed\nTraceback" in text
    assert text.rstrip().endswith("ZeroDivisionError: division by zero")


def test_the_level_filters_records() -> None:
    out = io.StringIO()
    configure_logging(level="ERROR", stream=out)
    logging.getLogger("pixl_ipc").warning("hidden")
    logging.getLogger("pixl_ipc").error("shown")
    assert "hidden" not in out.getvalue() and "shown" in out.getvalue()


def test_unknown_format_or_level_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging(fmt="xml")
    with pytest.raises(ValueError, match="log level"):
        configure_logging(level="LOUD")


def test_a_log_file_is_reopened_at_its_path_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "pixl-ipc.log"
    configure_logging(level="INFO", fmt="json", file=path)
    log = logging.getLogger("pixl_ipc")
    log.info("before")
    path.rename(tmp_path / "pixl-ipc.log.1")
    log.info("after the move")
    assert reopen_log_files() >= 1
    log.info("after the reopen")
    rotated = (tmp_path / "pixl-ipc.log.1").read_text().splitlines()
    current = path.read_text().splitlines()
    assert [json.loads(line)["message"] for line in rotated] == [
        "before",
        "after the move",
    ]
    assert [json.loads(line)["message"] for line in current] == ["after the reopen"]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter, where nothing configured logging yet."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_ensure_logging_sets_up_stderr_only_when_nothing_is_configured() -> None:
    proc = run_python(
        "import logging; from pixl_ipc.logs import ensure_logging\n"
        "logging.getLogger('pixl_ipc').error('unseen: nothing is configured')\n"
        "print(ensure_logging(), ensure_logging())\n"
        "logging.getLogger('pixl_ipc.connection').error('visible')\n"
    )
    assert proc.stdout == "True False\n"
    assert "unseen" not in proc.stderr
    assert proc.stderr.rstrip().endswith(" ERROR pixl_ipc.connection: visible")


@pytest.mark.parametrize(
    "setup",
    [
        "logging.basicConfig(stream=sys.stdout)",
        "logging.getLogger('pixl_ipc').addHandler(logging.StreamHandler(sys.stdout))",
    ],
)
def test_ensure_logging_leaves_an_application_configuration_alone(setup: str) -> None:
    proc = run_python(
        f"import logging, sys; from pixl_ipc.logs import ensure_logging\n{setup}\n"
        "print(ensure_logging())\n"
        "logging.getLogger('pixl_ipc').error('mine')\n"
    )
    assert proc.stdout.splitlines()[0] == "False"
    assert "mine" in proc.stdout
    assert proc.stderr == ""


def test_stats_are_logged_as_the_object_itself() -> None:
    stats = {"connections": 2, "requests": 10, "statsInterval": "minute"}
    out = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=out)
    message, extra = stats_message(stats)
    logging.getLogger("pixl_ipc.server").info(message, extra=extra)
    entry = json.loads(out.getvalue())
    assert entry["stats"] == stats
    assert json.loads(entry["message"].removeprefix("stats: ")) == stats

    text = io.StringIO()
    configure_logging(level="INFO", fmt="text", stream=text)
    logging.getLogger("pixl_ipc.server").info(message, extra=extra)
    line = text.getvalue().rstrip("\n")
    assert json.loads(line.split(" pixl_ipc.server: stats: ", 1)[1]) == stats
