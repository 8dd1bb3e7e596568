"""pixl-ipc conformance suite: checks servers and clients against spec/PROTOCOL.md.

It speaks the wire itself and imports nothing from the implementations it
checks. Modules: :mod:`.model` (cases, verdicts, results), :mod:`.schemas`
(the spec's JSON Schemas), :mod:`.report` (table, summary, JSON, JUnit),
:mod:`.wire` (raw client connections), :mod:`.server_runner` (server cases),
:mod:`.client_runner` (client cases), :mod:`.cli` (the command line).
"""

from __future__ import annotations

from .model import Case, CaseResult, RunOptions, Verdict, load_cases

__all__ = ["Case", "CaseResult", "RunOptions", "Verdict", "__version__", "load_cases"]

__version__ = "1.1.0"
