"""Loading the spec for its tests: PROTOCOL.md rule IDs, the JSON Schemas and the vectors.

Everything is read from the kit's ``spec/`` directory; nothing is fetched over
the network. The schema registry has no retrieval function, so a ``$ref`` to a
URI that is not one of the files fails instead of being downloaded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import referencing
import referencing.jsonschema
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs installed

REPO = Path(__file__).resolve().parent.parent.parent
SPEC = REPO / "spec"
PROTOCOL = SPEC / "PROTOCOL.md"
SCHEMA_DIR = SPEC / "schema"
VECTOR_DIR = SPEC / "vectors"
VECTOR_FORMAT = VECTOR_DIR / "vectors.schema.json"
#: The recorded answers of the original and their schema: not schema vectors.
ORIGINAL_ANSWERS = (
    VECTOR_DIR / "original-answers.json",
    VECTOR_DIR / "original-answers.schema.json",
)
#: The base of every schema's ``$id``; ``.example`` is reserved, so no host answers it.
BASE = "https://pixl-ipc.example/spec/1.1/"
METASCHEMA = "https://json-schema.org/draft/2020-12/schema"

# A rule is defined where its ID is set in bold: "- **FRAME-3** Receivers MUST ...".
_DEFINITION = re.compile(r"\*\*([A-Z]+-[0-9]+)\*\*")
# An Appendix A row: "| `FRAME-3` | what a conformance case does |".
_APPENDIX_ROW = re.compile(r"^\|\s*`([A-Z]+-[0-9]+)`\s*\|(.*)\|\s*$")


def protocol_text() -> str:
    """The text of PROTOCOL.md."""
    return PROTOCOL.read_text(encoding="utf-8")


def defined_rules(text: str) -> list[str]:
    """Every rule ID defined in ``text``, in order, duplicates kept."""
    return _DEFINITION.findall(text)


def appendix_a(text: str) -> list[tuple[str, str]]:
    """The rows of Appendix A: (rule ID, "checked by" text), in order.

    Raises:
        AssertionError: the document has no Appendix A.
    """
    start = text.find("## Appendix A")
    assert start >= 0, "PROTOCOL.md has no '## Appendix A' section"
    end = text.find("\n## ", start + 1)
    section = text[start : end if end >= 0 else len(text)]
    rows = []
    for line in section.splitlines():
        match = _APPENDIX_ROW.match(line.strip())
        if match:
            rows.append((match.group(1), match.group(2).strip()))
    return rows


def rule_mentions(text: str, families: set[str]) -> set[str]:
    """Rule IDs mentioned anywhere in ``text`` whose family (``FRAME``) is known.

    Restricting to known families keeps "UTF-8" from reading as a rule.
    """
    found = re.findall(r"\b([A-Z]+)-([0-9]+)\b", text)
    return {f"{family}-{number}" for family, number in found if family in families}


@cache
def schema_files() -> tuple[Path, ...]:
    """The schema files of spec/schema/, sorted."""
    return tuple(sorted(SCHEMA_DIR.glob("*.json")))


def load_json(path: Path) -> Any:
    """Parse one JSON file."""
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def schemas() -> dict[str, dict[str, Any]]:
    """Every schema by its ``$id``."""
    result: dict[str, dict[str, Any]] = {}
    for path in schema_files():
        contents = load_json(path)
        result[contents["$id"]] = contents
    return result


@cache
def registry() -> referencing.Registry[Any]:
    """A registry of the spec's schemas, by ``$id``, that never retrieves anything else."""
    resources = [
        (
            uri,
            referencing.Resource.from_contents(
                contents, referencing.jsonschema.DRAFT202012
            ),
        )
        for uri, contents in schemas().items()
    ]
    return referencing.Registry().with_resources(resources)


def validator(ref: str) -> Draft202012Validator:
    """A validator of the schema at ``ref`` (an ``$id``, optionally with a fragment)."""
    return Draft202012Validator({"$ref": ref}, registry=registry())


@dataclass(frozen=True)
class Vector:
    """One test of a vector file.

    Attributes:
        file: the vector file's name.
        group: the description of its group.
        ref: the ``$ref`` of the schema under test.
        description: the test's description.
        data: the JSON value tested.
        valid: whether the schema must accept it.
        rule: the rule ID it exercises.
    """

    file: str
    group: str
    ref: str
    description: str
    data: Any
    valid: bool
    rule: str

    @property
    def name(self) -> str:
        """A readable test id."""
        return f"{self.file}: {self.group}: {self.description}"


@cache
def vector_files() -> tuple[Path, ...]:
    """The vector files of spec/vectors/ (the vector format's schema and the original's answers excluded)."""
    return tuple(
        sorted(
            p
            for p in VECTOR_DIR.glob("*.json")
            if p != VECTOR_FORMAT and p not in ORIGINAL_ANSWERS
        )
    )


@cache
def vectors() -> tuple[Vector, ...]:
    """Every test of every vector file, in file order."""
    result = []
    for path in vector_files():
        for group in load_json(path):
            for test in group["tests"]:
                result.append(
                    Vector(
                        file=path.name,
                        group=group["description"],
                        ref=group["schema"]["$ref"],
                        description=test["description"],
                        data=test["data"],
                        valid=test["valid"],
                        rule=test["rule"],
                    )
                )
    return tuple(result)
