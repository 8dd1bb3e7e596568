"""pixl-ipc conformance suite: checks servers and clients against spec/PROTOCOL.md.

It speaks the wire itself and imports nothing from the implementations it
checks. Modules: :mod:`.model` (cases, verdicts, results), :mod:`.resources`
(the data the package carries), :mod:`.schemas` (the spec's JSON Schemas),
:mod:`.report` (table, summary, JSON, JUnit), :mod:`.wirekit` (the I/O-free
wire toolkit every part shares), :mod:`.transcript` (what went over the
wire), :mod:`.wire` (raw client connections), :mod:`.server_runner` (server
cases, with their steps in :mod:`.server_steps`, :mod:`.server_load` and
:mod:`.server_lifecycle` and :mod:`.server_resources`, matchers in :mod:`.matchers`, payloads in
:mod:`.payloads`), :mod:`.server_process` (servers the runner starts),
:mod:`.client_runner` (client cases: :mod:`.client_steps` over
:mod:`.client_context`, :mod:`.client_parts`, :mod:`.scripted_server`,
:mod:`.adapter_driver`), :mod:`.compare` (the same inputs against two servers:
:mod:`.compare_inputs`, :mod:`.compare_replay`, :mod:`.compare_report`),
:mod:`.cli` (the command line).
"""

from __future__ import annotations

from .model import Case, CaseResult, RunOptions, Verdict, load_cases

__all__ = ["Case", "CaseResult", "RunOptions", "Verdict", "__version__", "load_cases"]

__version__ = "1.1.0"
