"""Every rule of PROTOCOL.md is checked somewhere: by a test vector or, per Appendix A, a conformance case."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from spec_support import (
    SPEC,
    appendix_a,
    defined_rules,
    protocol_text,
    rule_mentions,
    schema_files,
    vectors,
)

TEXT = protocol_text()
DEFINED = defined_rules(TEXT)
RULES = set(DEFINED)
FAMILIES = {rule.split("-")[0] for rule in RULES}
APPENDIX = appendix_a(TEXT)
LISTED = {rule for rule, _ in APPENDIX}
CITED = {v.rule for v in vectors()}


def test_protocol_defines_rules() -> None:
    # Guards the parser: an empty set would make every check below pass.
    assert len(RULES) >= 50
    assert {
        "TRANS",
        "FRAME",
        "REQ",
        "RESP",
        "ERR",
        "CORR",
        "PUSH",
        "LIMIT",
        "LIFE",
        "SEC",
        "VER",
    } <= FAMILIES


def test_each_rule_is_defined_once() -> None:
    twice = sorted(rule for rule, n in Counter(DEFINED).items() if n > 1)
    assert not twice, f"rules defined more than once in PROTOCOL.md: {twice}"


def test_rules_of_a_family_are_numbered_without_gaps() -> None:
    # IDs are never reused or renumbered, so a gap means a definition was lost.
    for family in FAMILIES:
        numbers = sorted(
            int(r.split("-")[1]) for r in RULES if r.startswith(family + "-")
        )
        assert numbers == list(range(1, len(numbers) + 1)), (
            f"{family} numbering has gaps: {numbers}"
        )


def test_every_rule_is_cited_by_a_vector_or_listed_in_appendix_a() -> None:
    unchecked = sorted(RULES - CITED - LISTED)
    assert not unchecked, (
        f"rules cited by no vector and missing from Appendix A: {unchecked}; "
        "add a vector citing each, or an Appendix A row saying which conformance case checks it"
    )


def test_every_rule_a_vector_cites_exists() -> None:
    unknown = sorted(CITED - RULES)
    assert not unknown, f"vectors cite rules PROTOCOL.md does not define: {unknown}"


def test_every_rule_appendix_a_lists_exists() -> None:
    unknown = sorted(LISTED - RULES)
    assert not unknown, f"Appendix A lists rules PROTOCOL.md does not define: {unknown}"


def test_appendix_a_lists_exactly_the_rules_no_vector_cites() -> None:
    both = sorted(LISTED & CITED)
    assert not both, (
        f"Appendix A lists rules that vectors already cite (remove the rows): {both}"
    )


def test_appendix_a_lists_each_rule_once_with_a_description() -> None:
    twice = sorted(rule for rule, n in Counter(r for r, _ in APPENDIX).items() if n > 1)
    assert not twice, f"Appendix A lists these rules more than once: {twice}"
    empty = [rule for rule, checked_by in APPENDIX if len(checked_by) < 20]
    assert not empty, f"Appendix A rows without a 'checked by' description: {empty}"


def test_appendix_a_follows_the_order_of_the_document() -> None:
    order = {rule: index for index, rule in enumerate(DEFINED)}
    listed = [rule for rule, _ in APPENDIX if rule in order]
    assert listed == sorted(listed, key=order.__getitem__)


@pytest.mark.parametrize(
    "path",
    [SPEC / "PROTOCOL.md", SPEC / "README.md", *schema_files()],
    ids=lambda p: p.name,
)
def test_documents_mention_only_defined_rules(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    unknown = sorted(rule_mentions(text, FAMILIES) - RULES)
    assert not unknown, f"{path} mentions undefined rules: {unknown}"
