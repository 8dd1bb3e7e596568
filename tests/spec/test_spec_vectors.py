"""Every test vector of spec/vectors/ gets its expected verdict from its schema."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs installed
from spec_support import (
    BASE,
    VECTOR_FORMAT,
    Vector,
    load_json,
    schema_files,
    validator,
    vector_files,
    vectors,
)

#: The floor the spec's deliverables promise.
MIN_VECTORS = 60

VECTORS = vectors()


def test_vector_format_is_a_valid_schema() -> None:
    contents = load_json(VECTOR_FORMAT)
    Draft202012Validator.check_schema(contents)
    assert contents["$id"] == BASE + "vectors/vectors.schema.json"


@pytest.mark.parametrize("path", vector_files(), ids=lambda p: p.name)
def test_vector_file_follows_the_vector_format(path: Path) -> None:
    checker = Draft202012Validator(load_json(VECTOR_FORMAT))
    problems = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in checker.iter_errors(load_json(path))
    ]
    assert not problems, f"{path.name} breaks vectors.schema.json: {problems}"


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_vector_gets_its_expected_verdict(vector: Vector) -> None:
    checker = validator(vector.ref)
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in checker.iter_errors(vector.data)
    ]
    if vector.valid:
        assert not errors, (
            f"{vector.name} ({vector.rule}) must be valid, schema says: {errors}"
        )
    else:
        assert errors, (
            f"{vector.name} ({vector.rule}) must be invalid, but {vector.ref} accepts it"
        )


def test_there_are_enough_vectors() -> None:
    assert len(VECTORS) >= MIN_VECTORS


def test_vector_descriptions_are_unique_within_a_group() -> None:
    counts = Counter((v.file, v.group, v.description) for v in VECTORS)
    assert [key for key, n in counts.items() if n > 1] == []


@pytest.mark.parametrize(
    "path",
    [p for p in schema_files() if p.name != "common.schema.json"],
    ids=lambda p: p.name,
)
def test_every_schema_has_valid_and_invalid_vectors(path: Path) -> None:
    uri = BASE + path.name
    verdicts = {v.valid for v in VECTORS if v.ref == uri or v.ref.startswith(uri + "#")}
    assert verdicts == {True, False}, (
        f"{path.name} needs both valid and invalid vectors, has {verdicts}"
    )


@pytest.mark.parametrize("client", ["Node", "PHP"])
def test_the_original_clients_requests_are_valid_vectors(client: str) -> None:
    # The original clients' real messages must stay in the vectors (REQ-1).
    agents = [
        v
        for v in VECTORS
        if v.valid
        and v.ref.startswith(BASE + "request.schema.json")
        and isinstance(v.data, dict)
        and str(v.data.get("userAgent", "")).startswith(client + "/")
    ]
    assert agents, f"no valid request vector from the original {client} client"
    first_keys = {next(iter(v.data)) for v in agents}
    assert first_keys == {"uri" if client == "PHP" else "ipcReqID"}
