"""Logging that people can read and programs can parse.

The library logs under the ``pixl_ipc`` logger and configures nothing on
import. :func:`configure_logging` is what ``pixl-ipc serve`` uses: a text
line per record (``time LEVEL logger: message``) or, with ``fmt="json"``, one
JSON object per line, on stderr or in a file that :func:`reopen_log_files`
reopens (after logrotate moved it; ``pixl-ipc serve`` calls it on SIGHUP).
:func:`ensure_logging` is what ``IPCServer.run()`` uses: the same setup, only
when the application has configured none, so that a failing handler's
traceback is never lost.

A record's extra fields (``logger.info("...", extra={"stats": {...}})``) become
members of its JSON object; :func:`stats_message` logs the server's statistics
that way, as the same object ``/ipcserver/stats`` answers.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
import threading
import weakref
from collections.abc import Mapping
from typing import IO, Any, Final

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "JsonFormatter",
    "ReopenableFileHandler",
    "configure_logging",
    "ensure_logging",
    "logging_configured",
    "reopen_log_files",
    "stats_message",
]

#: The names ``--log-format`` takes.
LOG_FORMATS: Final = ("text", "json")
#: The names ``--log-level`` takes.
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: The text format: local time, level, logger, message.
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

LIBRARY_LOGGER: Final = "pixl_ipc"

# Attributes every LogRecord has: whatever else a record carries came from `extra`.
_RECORD_ATTRIBUTES: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

_file_handlers: weakref.WeakSet[ReopenableFileHandler] = weakref.WeakSet()
_registry_lock = threading.Lock()


def _json_default(value: Any) -> Any:
    # Sets, tuples of sets and objects that are not JSON: their text, never a failure to log.
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON.

    Members, in order: ``time`` (ISO 8601, UTC, milliseconds), ``level``,
    ``logger``, ``message``, each extra field of the record, and
    ``exception`` (the traceback text) or ``stack`` when the record has one.
    Newlines inside values are escaped, so a record is always one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line."""
        created = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        entry: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=_json_default)


class ReopenableFileHandler(logging.FileHandler):
    """A file handler that :func:`reopen_log_files` reopens at the same path.

    After logrotate renames the file, the next records still go to the renamed
    file until the handler is reopened; then a new file is created at the path.
    """

    def __init__(self, filename: str | os.PathLike[str], encoding: str = "utf-8") -> None:
        super().__init__(filename, mode="a", encoding=encoding)
        with _registry_lock:
            _file_handlers.add(self)

    def reopen(self) -> None:
        """Close the file and open the path again (creating it if it was moved away)."""
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.flush()
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


def reopen_log_files() -> int:
    """Reopen every :class:`ReopenableFileHandler`; return how many were reopened."""
    with _registry_lock:
        handlers = list(_file_handlers)
    for handler in handlers:
        handler.reopen()
    return len(handlers)


def _formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")


def configure_logging(
    *,
    level: str | int = "WARNING",
    fmt: str = "text",
    file: str | os.PathLike[str] | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send every logger's records to stderr or a file, replacing the root logger's handlers.

    Args:
        level: the root logger's level, a name from :data:`LOG_LEVELS` or a number.
        fmt: ``"text"`` or ``"json"`` (:data:`LOG_FORMATS`).
        file: append to this file (reopened by :func:`reopen_log_files`)
            instead of writing to ``stream``.
        stream: where to write without ``file``; ``sys.stderr`` if None.

    Returns:
        The handler installed on the root logger.

    Raises:
        ValueError: an unknown level or format.
        OSError: the file cannot be opened.
    """
    formatter = _formatter(fmt)
    if isinstance(level, str) and level.upper() not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    handler: logging.Handler
    if file is not None:
        handler = ReopenableFileHandler(file)
    else:
        handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


def logging_configured() -> bool:
    """Has the application configured logging for the library's records?

    True when the root logger or the ``pixl_ipc`` logger has a handler of
    its own (the library's do-nothing handler does not count).
    """
    if logging.getLogger().handlers:
        return True
    library = logging.getLogger(LIBRARY_LOGGER)
    return any(not isinstance(h, logging.NullHandler) for h in library.handlers)


def ensure_logging() -> bool:
    """Configure text logging of warnings and errors to stderr, unless the application did.

    Returns:
        True if it configured logging, False if the application had.
    """
    if logging_configured():
        return False
    configure_logging(level="WARNING", fmt="text")
    return True


def stats_message(stats: Mapping[str, Any], prefix: str = "stats: ") -> tuple[str, dict[str, Any]]:
    """The message and extra fields that log the server's statistics.

    Use as ``msg, extra = stats_message(stats); logger.info(msg, extra=extra)``:
    the text line reads ``stats: {...}`` with the statistics as compact JSON,
    and a JSON line carries them as its ``stats`` member, the same object
    ``/ipcserver/stats`` answers.

    Args:
        stats: the statistics (``IPCServer.get_stats()``).
        prefix: the text before the JSON.
    """
    text = json.dumps(dict(stats), ensure_ascii=False, separators=(",", ":"), default=_json_default)
    # Logged without arguments, so a "%" in it is never taken for a format.
    return prefix + text, {"stats": dict(stats)}
