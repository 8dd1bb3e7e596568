"""The conformance cases that encode the original's behaviour pass against the model of the original.

They carry the tag ``original``; a server that behaves as the measurements of
the original describe (tests/original/original_model.js) must pass each of
them, or they claim something of the original that is not so.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from pixl_ipc_conformance.model import Case, CaseResult, RunOptions, Verdict, load_cases
from pixl_ipc_conformance.schemas import SpecSchemas
from pixl_ipc_conformance.server_process import started_server
from pixl_ipc_conformance.server_runner import run_server_cases
from replay import MODEL

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not installed: the model of the original needs it"
)
COMMAND = f"{NODE} {MODEL} --socket {{socket}} --chmod {{chmod}} --app-handlers"
CASES = [case for case in load_cases("server") if "original" in case.tags]


def test_there_are_cases_of_the_original() -> None:
    assert len(CASES) >= 10


def _run(case: Case) -> CaseResult:
    options = RunOptions(
        schemas=SpecSchemas(),
        max_message_bytes=16 * 1024 * 1024,
        start_command=COMMAND,
        server_capabilities=["app_handlers"],
    )
    # A fresh model each time: a case that fails may have killed it.
    with started_server(COMMAND) as path:
        (result,) = run_server_cases([case], path, options)
    return result


@pytest.fixture(scope="module")
def results() -> Iterator[dict[str, CaseResult]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield {result.case_id: result for result in pool.map(_run, CASES)}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case_passes_against_the_model_of_the_original(
    case: Case, results: dict[str, CaseResult]
) -> None:
    result = results[case.id]
    assert result.verdict is Verdict.PASS, (
        f"{result.expected}; got {result.got} ({result.detail})"
    )
