"""The data the suite carries: its cases, the spec's schemas and vectors, the default matrix.

The package holds them under ``data/`` and reads them through
:mod:`importlib.resources`, so that an installed wheel runs every case from
any directory. In the kit's source tree ``data/`` holds symbolic links to
``conformance/cases``, ``spec/schema``, ``spec/vectors``,
``conformance/matrix.json`` and ``conformance/examples``: one copy of each,
which the wheel build copies in.

Every function returns a :class:`~importlib.resources.abc.Traversable`
(a :class:`pathlib.Path` for a package on disk), except :func:`default_matrix`,
whose directory matters (the matrix's paths are relative to it).
"""

from __future__ import annotations

import contextlib
from importlib.resources import as_file, files
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = [
    "case_schema",
    "cases_root",
    "data_root",
    "default_matrix",
    "example",
    "schema_root",
    "vectors_root",
]


def data_root() -> Traversable:
    """The package's ``data/`` directory."""
    return files(__package__ or "pixl_ipc_conformance") / "data"


def cases_root() -> Traversable:
    """The directory holding ``server/`` and ``client/`` case files and ``case.schema.json``."""
    return data_root() / "cases"


def case_schema() -> Traversable:
    """The JSON Schema of a case file."""
    return cases_root() / "case.schema.json"


def schema_root() -> Traversable:
    """The spec's JSON Schemas (``spec/schema/``)."""
    return data_root() / "schema"


def vectors_root() -> Traversable:
    """The spec's test vectors (``spec/vectors/``)."""
    return data_root() / "vectors"


def example(name: str) -> Traversable:
    """One file of ``conformance/examples/`` (``node-adapter.js``)."""
    return data_root() / "examples" / name


_stack = contextlib.ExitStack()


def default_matrix() -> Path:
    """The kit's own ``matrix.json``, as a real file path (links resolved).

    In the kit's source tree this is ``conformance/matrix.json`` itself, so its
    relative paths (``../python/adapters/adapter.py``) name the kit's files.
    """
    # as_file() only copies when the package is not on disk (a zip import);
    # the copy then lives until the interpreter exits.
    return _stack.enter_context(as_file(data_root() / "matrix.json")).resolve()
