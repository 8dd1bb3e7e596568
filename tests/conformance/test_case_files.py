"""The case files themselves: valid, consistent, and covering the spec's rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from pixl_ipc_conformance.model import (
    Case,
    CaseFileError,
    load_case_file,
    load_cases,
    load_expected_failures,
    select_cases,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = REPO_ROOT / "conformance" / "cases"
CASE_SCHEMA_PATH = CASES_DIR / "case.schema.json"
PROTOCOL = REPO_ROOT / "spec" / "PROTOCOL.md"
CASE_FILES = sorted(CASES_DIR.glob("*/*.json"))
# A rule is defined in the spec as a bold identifier at the start of a list item.
_DEFINED = re.compile(r"^- \*\*([A-Z]+-\d+)\*\*", re.MULTILINE)
_RULE_ID = re.compile(r"\b([A-Z]+-\d+)\b")


def defined_rules() -> set[str]:
    return set(_DEFINED.findall(PROTOCOL.read_text(encoding="utf-8")))


def appendix_a_rules() -> set[str]:
    """The rule IDs in the table of spec/PROTOCOL.md Appendix A."""
    text = PROTOCOL.read_text(encoding="utf-8")
    start = text.index("## Appendix A")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end >= 0 else len(text)]
    rules: set[str] = set()
    for line in section.splitlines():
        if line.startswith("|"):
            first_cell = line.strip("|").split("|")[0]
            rules.update(_RULE_ID.findall(first_cell))
    return rules


def all_cases() -> list[Case]:
    return [*load_cases("server"), *load_cases("client")]


def test_case_schema_is_a_valid_json_schema() -> None:
    schema = json.loads(CASE_SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.name for p in CASE_FILES])
def test_case_file_is_valid_and_named_after_its_id(path: Path) -> None:
    case = load_case_file(path)
    assert path.name == f"{case.id}.json"
    assert path.parent.name == case.kind
    assert case.rules, "a case must cite the rules it checks"


def test_there_are_at_least_35_server_cases() -> None:
    assert len(load_cases("server")) >= 35


def test_every_cited_rule_exists_in_the_spec() -> None:
    defined = defined_rules()
    assert len(defined) > 50, "the spec's rule definitions were not found"
    unknown = {
        case.id: sorted(set(case.rules) - defined)
        for case in all_cases()
        if set(case.rules) - defined
    }
    assert unknown == {}


def test_every_difference_a_case_names_is_a_row_of_the_spec() -> None:
    rows = set(
        re.findall(r'<a id="d(\d+)"></a>D\1 \|', PROTOCOL.read_text(encoding="utf-8"))
    )
    assert rows, "spec/PROTOCOL.md has no table of differences"
    named = {(case.id, row) for case in all_cases() for row in case.differences}
    assert named, "no case names a difference from the original"
    assert {
        (cid, row) for cid, row in named if row.removeprefix("D") not in rows
    } == set()


def test_every_rule_of_appendix_a_is_cited_by_a_case() -> None:
    listed = appendix_a_rules()
    assert listed, "spec/PROTOCOL.md Appendix A lists no rules yet"
    cited = {rule for case in all_cases() for rule in case.rules}
    assert sorted(listed - cited) == []


def test_loader_rejects_a_case_that_breaks_the_schema(tmp_path: Path) -> None:
    bad = tmp_path / "S-BAD.json"
    bad.write_text(
        json.dumps({"id": "S-BAD", "kind": "server", "rules": ["FRAME-1"], "steps": []})
    )
    with pytest.raises(CaseFileError) as info:
        load_case_file(bad)
    assert "level" in str(info.value)


def test_loader_rejects_an_unknown_server_step(tmp_path: Path) -> None:
    document = json.loads(
        (CASES_DIR / "server" / "S-ECHO.json").read_text(encoding="utf-8")
    )
    document["steps"].append({"op": "teleport"})
    bad = tmp_path / "S-ECHO.json"
    bad.write_text(json.dumps(document))
    with pytest.raises(CaseFileError, match="teleport"):
        load_case_file(bad)


def test_loader_rejects_a_server_id_in_a_client_case(tmp_path: Path) -> None:
    document = json.loads(
        (CASES_DIR / "server" / "S-ECHO.json").read_text(encoding="utf-8")
    )
    document["kind"] = "client"
    bad = tmp_path / "S-ECHO.json"
    bad.write_text(json.dumps(document))
    with pytest.raises(CaseFileError):
        load_case_file(bad)


def test_loader_rejects_duplicate_ids(tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    source = (CASES_DIR / "server" / "S-ECHO.json").read_text(encoding="utf-8")
    (tmp_path / "server" / "a.json").write_text(source)
    (tmp_path / "server" / "b.json").write_text(source)
    with pytest.raises(CaseFileError, match="duplicate"):
        load_cases("server", cases_dir=tmp_path)


def test_selection_by_glob_and_level() -> None:
    cases = load_cases("server")
    frames = select_cases(cases, "s-frame-*")
    assert frames and all(c.id.startswith("S-FRAME-") for c in frames)
    assert [c.id for c in select_cases(cases, "S-ECHO,S-DELAY")] == [
        "S-DELAY",
        "S-ECHO",
    ]
    should = load_cases("server", level="should")
    assert should and all(c.level == "SHOULD" for c in should)
    with pytest.raises(ValueError):
        load_cases("server", level="may")


def test_expected_failures_example_loads() -> None:
    known = load_expected_failures(
        REPO_ROOT / "conformance" / "expected-failures.example.json"
    )
    assert known and all(reason.strip() for reason in known.values())


def test_expected_failures_file_needs_reasons(tmp_path: Path) -> None:
    path = tmp_path / "xf.json"
    path.write_text(json.dumps({"expected_failures": [{"case": "S-ECHO"}]}))
    with pytest.raises(CaseFileError, match="reason"):
        load_expected_failures(path)


def test_the_readme_counts_the_cases_there_are() -> None:
    readme = (REPO_ROOT / "conformance" / "README.md").read_text(encoding="utf-8")
    for kind in ("server", "client"):
        said = re.search(rf"^(\d+) {kind} cases \(", readme, re.MULTILINE)
        assert said is not None, kind
        assert int(said.group(1)) == len(load_cases(kind)), kind
