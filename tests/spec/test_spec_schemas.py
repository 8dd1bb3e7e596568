"""The JSON Schemas of spec/schema/ are valid 2020-12 schemas that resolve among themselves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import referencing.exceptions
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs installed
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
from spec_support import (
    BASE,
    METASCHEMA,
    load_json,
    registry,
    schema_files,
    schemas,
    validator,
)

#: The files the spec promises (spec/README.md lists them).
EXPECTED = {
    "common.schema.json",
    "request.schema.json",
    "response.schema.json",
    "error-response.schema.json",
    "error.schema.json",
    "push.schema.json",
    "message.schema.json",
    "info.schema.json",
    "stats.schema.json",
}

FILES = schema_files()


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object inside a schema, with its JSON Pointer."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}/{index}")


def test_schema_directory_holds_the_promised_files() -> None:
    assert {p.name for p in FILES} == EXPECTED


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_schema_is_valid_against_the_2020_12_metaschema(path: Path) -> None:
    contents = load_json(path)
    try:
        Draft202012Validator.check_schema(contents)
    except SchemaError as exc:
        pytest.fail(
            f"{path.name} is not a valid 2020-12 schema: {exc.message} at {list(exc.path)}"
        )
    assert contents.get("$schema") == METASCHEMA, (
        f"{path.name}: $schema must be {METASCHEMA}"
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_schema_id_is_the_base_plus_its_file_name(path: Path) -> None:
    assert load_json(path).get("$id") == BASE + path.name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_schema_and_each_definition_have_title_and_description(path: Path) -> None:
    contents = load_json(path)
    missing = [k for k in ("title", "description") if not contents.get(k)]
    assert not missing, f"{path.name}: root lacks {missing}"
    for name, definition in contents.get("$defs", {}).items():
        assert definition.get("description"), (
            f"{path.name}: $defs/{name} has no description"
        )
        assert definition.get("title"), f"{path.name}: $defs/{name} has no title"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_ref_resolves_within_the_spec(path: Path) -> None:
    contents = load_json(path)
    resolver = registry().resolver(base_uri=contents["$id"])
    refs = [
        (where, node["$ref"])
        for where, node in walk(contents)
        if isinstance(node.get("$ref"), str)
    ]
    for where, ref in refs:
        if "://" in ref:
            assert ref.startswith(BASE), (
                f"{path.name}{where}: $ref {ref} names a schema outside the spec"
            )
        try:
            resolved = resolver.lookup(ref)
        except referencing.exceptions.Unresolvable as exc:
            pytest.fail(f"{path.name}{where}: $ref {ref} does not resolve: {exc!r}")
        assert isinstance(resolved.contents, dict), (
            f"{path.name}{where}: $ref {ref} is not a schema"
        )


def test_registry_never_retrieves_unknown_uris() -> None:
    # A $ref outside the files must fail, not be fetched from the network.
    with pytest.raises(referencing.exceptions.Unresolvable):
        registry().resolver().lookup(BASE + "missing.schema.json")


def test_every_schema_validates_with_the_registry() -> None:
    # Walking a value through every schema forces each $ref chain to resolve.
    probe: dict[str, Any] = {"ipcReqID": "rq0", "uri": "/x", "data": {}}
    for uri in schemas():
        validator(uri).is_valid(probe)
