"""spec/vectors/original-answers.json, replayed against the reference server and the model of the original.

The reference server must answer every entry as the original did (VER-2),
except where the entry names a row of PROTOCOL.md's table "Differences from
the original", and then as the entry's ``kit`` says. The model of the
original (tests/original/original_model.js) must answer every entry as the
original did: that is what makes its derived answers worth recording.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs installed
from pixl_ipc_conformance.server_process import started_server
from replay import (
    ANSWERS_SCHEMA,
    MODEL,
    REPO,
    Outcome,
    exact_json,
    line_bytes,
    load_answers,
    mismatch,
    replay,
    same_value,
)

ENTRIES: list[dict[str, Any]] = load_answers()["entries"]
KIT = f"{sys.executable} -m pixl_ipc serve --socket {{socket}}"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(
    NODE is None, reason="node is not installed: the model of the original needs it"
)


def _replay_all(command: str, entries: list[dict[str, Any]]) -> dict[str, Outcome]:
    """Replay entries side by side on one server; an entry that loses the connection gets a server of its own."""
    results: dict[str, Outcome] = {}
    shared = [e for e in entries if not e["original"].get("connection_lost")]
    with started_server(command) as path, ThreadPoolExecutor(max_workers=8) as pool:
        for entry, outcome in zip(
            shared, pool.map(lambda e: replay(path, e), shared), strict=True
        ):
            results[entry["id"]] = outcome
    for entry in entries:
        if entry["id"] not in results:
            with started_server(command) as path:
                results[entry["id"]] = replay(path, entry)
    return results


@pytest.fixture(scope="module")
def kit_outcomes() -> Iterator[dict[str, Outcome]]:
    yield _replay_all(KIT, ENTRIES)


@pytest.fixture(scope="module")
def model_outcomes() -> Iterator[dict[str, Outcome]]:
    yield _replay_all(f"{NODE} {MODEL} --socket {{socket}}", ENTRIES)


def test_the_file_has_its_shape() -> None:
    schema = json.loads(ANSWERS_SCHEMA.read_text(encoding="utf-8"))
    errors = list(Draft202012Validator(schema).iter_errors(load_answers()))
    assert [e.message for e in errors] == []
    ids = [e["id"] for e in ENTRIES]
    assert len(ids) == len(set(ids)), "entry ids repeat"


def test_every_difference_is_a_row_of_the_table() -> None:
    text = (REPO / "spec" / "PROTOCOL.md").read_text(encoding="utf-8")
    rows = set(re.findall(r'^\| <a id="(d[0-9]+)"></a>', text, re.MULTILINE))
    named = {e["difference"].lower() for e in ENTRIES if "difference" in e}
    assert named and named <= rows, (
        f"rows missing from the table: {sorted(named - rows)}"
    )


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["id"])
def test_reference_server_answers_as_the_original_or_as_its_difference_row(
    entry: dict[str, Any], kit_outcomes: dict[str, Outcome]
) -> None:
    expected = entry.get("kit", entry["original"])
    why = mismatch(expected, kit_outcomes[entry["id"]], free_text="kit" in entry)
    assert why is None, (
        f"{entry['id']} ({entry.get('difference', 'no difference declared')}): {why}"
    )


@needs_node
@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["id"])
def test_model_of_the_original_answers_as_recorded(
    entry: dict[str, Any], model_outcomes: dict[str, Outcome]
) -> None:
    why = mismatch(entry["original"], model_outcomes[entry["id"]])
    assert why is None, f"{entry['id']}: {why}"


def test_declared_differences_are_real() -> None:
    # A row named by an entry whose kit answer equals the original's declares nothing.
    for entry in ENTRIES:
        if "kit" not in entry:
            continue
        kit, original = entry["kit"], entry["original"]
        if (
            "lines" in kit
            and "lines" in original
            and len(kit["lines"]) == len(original["lines"])
        ):
            pairs = zip(kit["lines"], original["lines"], strict=True)
            assert not all(
                same_value(exact_json(line_bytes(a)), exact_json(line_bytes(b)))
                for a, b in pairs
            ), entry["id"]
