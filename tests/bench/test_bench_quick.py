"""The benchmark's quick mode runs every part and writes complete results.

Timing is never asserted: the figures depend on the machine and its load.
What is checked is that ``bench.py --quick`` exits 0, prints the table and
writes a ``results.json`` with every section (the peers and the JSON codecs
included), the environment and a row for each target.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
BENCH = REPO / "python" / "benchmarks" / "bench.py"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    return done, out


def test_quick_run_exits_zero_and_prints_the_table(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    done, _ = quick_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| figure | median | min to max | vs floor | target |" in done.stdout
    assert "Errors" not in done.stdout


def test_results_json_has_every_section(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = quick_run
    results = json.loads((out / "results.json").read_text())
    assert results["mode"] == "quick"
    env = results["environment"]
    for key in ("cpu_count", "python", "php", "uvloop", "date"):
        assert key in env
    # The sequential section runs on one CPU, the first this process may use.
    assert env["sequential_cpus"] == sorted(os.sched_getaffinity(0))[:1]
    assert results["errors"] == []

    sequential = results["sequential"]
    assert sequential["sizes_kib"] == [1, 5, 10, 20, 100, 1000]
    expected_series = {
        "blocking_ref",
        "asyncio_ref",
        "blocking_floor_b",
        "floor_a",
        "mpc_peer",
        "zmq_peer",
    }
    if env["php"]:
        expected_series.add("php_ref")
    assert expected_series <= set(sequential["series"])
    for series in sequential["series"].values():
        assert set(series["rtt_seconds"]) == {"1", "5", "10", "20", "100", "1000"}
        for figure in series["rtt_seconds"].values():
            assert 0 < figure["min"] <= figure["median"] <= figure["max"]

    pipelined = results["pipelined"]["runs"]
    seen = {
        (r["client"], r["server"], r["connections"], r["inflight"]) for r in pipelined
    }
    configs = ((1, 1), (1, 64), (1, 512), (16, 64), (256, 64))
    for client in ("asyncio", "raw"):
        for server in ("reference", "floor_b"):
            for config in configs:
                assert (client, server, *config) in seen
    for config in configs:
        assert ("zmq", "peer_zmq_router", *config) in seen
    assert all(r["msgs_per_second"]["median"] > 0 for r in pipelined)

    memory = results["memory"]
    for server in ("reference", "floor_b"):
        idle = memory["idle"][server]
        assert idle["counts"] == [1000]
        assert set(idle["rss_kib"]) == {"0", "1000"}
        big = memory["big_echo"][server]
        assert big["message_kib"] == 4096
        assert big["message_bytes"] > 4096 * 1024
        assert big["peak_above_baseline_bytes"]["median"] > 0

    codec = results["codec"]
    assert codec["sizes_kib"] == [1, 100, 1024]
    for kind in ("decode", "encode"):
        candidates = codec["cpu_seconds"][kind]
        assert any(name.startswith("msgspec") for name in candidates)
        assert any(name.startswith("orjson") for name in candidates)
        for by_size in candidates.values():
            assert set(by_size) == {"1", "100", "1024"}
            assert all(figure["median"] > 0 for figure in by_size.values())

    targets = {t["target"] for t in results["targets"]}
    assert {
        "<= 1.2x floor (a)",
        "<= 1.3x multiprocessing.connection",
        ">= 0.8x floor (b)",
        ">= 100,000 msg/s",
        ">= 1.0x pyzmq DEALER/ROUTER",
        "<= 10 KiB",
        "<= 4x the message",
    } <= targets
    if env["php"]:
        assert "<= 1.6x floor (a)" in targets
    assert all(isinstance(t["met"], bool) for t in results["targets"])


def test_latency_plot_is_written(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = quick_run
    pytest.importorskip("matplotlib")
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reference_server_admits_more_connections_than_the_memory_section_opens(
    tmp_path: Path,
) -> None:
    # The full run opens 10,000 idle connections: the server's own budget
    # (default 10,000) must not refuse the benchmark's load.
    sys.path.insert(0, str(BENCH.parent))
    try:
        import bench
    finally:
        sys.path.remove(str(BENCH.parent))
    run = bench.Run(bench.FULL, tmp_path, None)
    with run.reference_server() as server:
        argv = server.proc.args
        budget = int(argv[argv.index("--max-connections") + 1])
        assert budget > max(bench.FULL.idle_counts)
    run.close()


def test_sequential_section_is_pinned_only_when_asked() -> None:
    sys.path.insert(0, str(BENCH.parent))
    try:
        import bench
    finally:
        sys.path.remove(str(BENCH.parent))
    assert bench.sequential_cpus(pin=False) is None
    pinned = bench.sequential_cpus(pin=True)
    assert pinned is not None and len(pinned) == 1
    assert pinned <= os.sched_getaffinity(0)
