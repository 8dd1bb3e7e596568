"""The pixl-ipc benchmark: the reference server and clients against floors, in one run.

Usage::

    python python/benchmarks/bench.py --out build/bench [--quick]

Measures, on this machine and in this run (so that ratios compare like with
like):

* sequential echo round trips of 1 KiB to 16 MiB for the blocking, asyncio,
  PHP and Node clients against the reference server, the blocking client
  against floor (b), floor (a), and the peers a Python user would pick
  instead (multiprocessing.connection, pyzmq REQ/REP);
* pipelined 1 KiB echo throughput for several in-flight depths and
  connection counts, against the reference server and floor (b), of the
  Node client with 500 in flight against the reference server, and of pyzmq
  DEALER/ROUTER;
* the JSON codecs the kit could use: CPU time per decode and encode;
* server memory with idle connections, and its peak while echoing one large
  message.

Every server and every load generator runs in its own process. Each figure is
the median of several repetitions, after a warm-up, with min and max. Prints
a Markdown table, writes ``results.json`` and ``latency.png`` to ``--out``.
See README.md next to this file.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import report
from plot import plot_latency
from procs import HERE, CPUs, Server, fd_count, process_setup, raise_nofile, run_json_worker, wait_stable
from workload import RawClient, make_data, stats

REPO = HERE.parent.parent
PHP_CLIENT = REPO / "php" / "src" / "PixlIPCClient.php"
PHP_BENCH = HERE / "bench_client.php"
NODE_BENCH = REPO / "node" / "bench" / "bench_client.js"
#: Requests the Node client keeps in flight in the pipelined section.
NODE_INFLIGHT = 500


@dataclass
class Plan:
    """How much of everything to measure."""

    mode: str
    sizes_kib: list[int]
    seq_reps: int
    seq_min_time: float
    seq_min_count: int
    seq_warmup: float
    pipe_configs: list[tuple[int, int]]
    pipe_rounds: int
    pipe_reps: int
    pipe_window: float
    pipe_warmup: float
    idle_counts: list[int]
    memory_reps: int
    big_kib: int
    codec_sizes_kib: list[int]
    codec_reps: int
    codec_min_time: float


FULL = Plan(
    mode="full",
    sizes_kib=[1, 5, 10, 20, 100, 1000, 16384],
    seq_reps=7,
    seq_min_time=0.25,
    seq_min_count=3,
    seq_warmup=0.15,
    # (connections, in flight on each)
    pipe_configs=[(1, 1), (1, 64), (1, 512), (16, 64), (256, 64)],
    pipe_rounds=5,
    pipe_reps=1,
    pipe_window=0.5,
    pipe_warmup=0.3,
    idle_counts=[1000, 10_000],
    memory_reps=3,
    big_kib=64 * 1024,
    codec_sizes_kib=[1, 100, 1024],
    codec_reps=3,
    codec_min_time=0.2,
)

QUICK = Plan(
    mode="quick",
    sizes_kib=[1, 5, 10, 20, 100, 1000],
    seq_reps=2,
    seq_min_time=0.02,
    seq_min_count=2,
    seq_warmup=0.01,
    pipe_configs=FULL.pipe_configs,
    pipe_rounds=1,
    pipe_reps=2,
    pipe_window=0.1,
    pipe_warmup=0.05,
    idle_counts=[1000],
    memory_reps=1,
    big_kib=4 * 1024,
    codec_sizes_kib=[1, 100, 1024],
    codec_reps=1,
    codec_min_time=0.01,
)

#: Servers other than the reference one: key, floors.py kind, label.
HELPER_SERVERS = {
    "floor_a": ("blocking", "floor (a)"),
    "floor_b": ("asyncio", "floor (b)"),
    "peer_mpc": ("mpc", "multiprocessing.connection peer"),
    "peer_zmq_rep": ("zmq-rep", "pyzmq REP peer"),
    "peer_zmq_router": ("zmq-router", "pyzmq ROUTER peer"),
}


def sequential_cpus(pin: bool) -> CPUs:
    """The CPU the sequential section runs on: its servers and load processes together.

    One request at a time gains nothing from a second CPU, and on the 2-vCPU
    machines this project runs on, a round trip between two CPUs costs about
    50 us more than on one; left to itself, the scheduler picks either from
    one run to the next. None (the scheduler decides) when ``pin`` is False.
    """
    if not pin:
        return None
    return frozenset(sorted(os.sched_getaffinity(0))[:1])


#: Connections the reference server accepts: more than the memory section
#: opens (the default, 10,000, is exactly its largest count), so that the
#: connection budget never refuses the benchmark's own load.
MAX_CONNECTIONS = 20_000


class Run:
    """One benchmark run: where sockets live, what was measured, what went wrong."""

    def __init__(self, plan: Plan, out: Path, seq_cpus: CPUs) -> None:
        self.plan = plan
        self.out = out
        self.seq_cpus = seq_cpus
        self.tmp = Path(tempfile.mkdtemp(prefix="pxb-"))
        self.counter = 0
        self.errors: list[str] = []
        self.notes: list[str] = []

    def socket_path(self) -> str:
        self.counter += 1
        return str(self.tmp / f"s{self.counter}.sock")

    def reference_server(self, *extra: str, cpus: CPUs = None) -> Server:
        """``pixl-ipc serve`` with budgets that leave the benchmark's load alone."""
        path = self.socket_path()
        argv = [sys.executable, "-m", "pixl_ipc", "serve", "--socket", path, "--log-level", "WARNING"]
        argv += ["--max-connections", str(MAX_CONNECTIONS), *extra]
        return Server("reference server", argv, path, cpus=cpus)

    def helper_server(self, key: str, cpus: CPUs = None) -> Server:
        """A floor or peer server (see HELPER_SERVERS)."""
        kind, label = HELPER_SERVERS[key]
        path = self.socket_path()
        argv = [sys.executable, str(HERE / "floors.py"), kind, "--socket", path]
        return Server(label, argv, path, cpus=cpus)

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Run one measurement; a failure is recorded and the run goes on."""
        start = time.monotonic()
        try:
            yield
        except Exception as exc:  # any failure is reported, the other parts still run
            self.errors.append(f"{name}: {exc}")
            log(f"{name} FAILED: {exc}")
            traceback.print_exc(file=sys.stderr)
        else:
            log(f"{name} done in {time.monotonic() - start:.1f} s")

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def log(text: str) -> None:
    """Progress goes to stderr; stdout carries only the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- environment ---------------------------------------------------------------


def _php_version() -> str | None:
    php = shutil.which("php")
    if php is None:
        return None
    done = subprocess.run([php, "-r", "echo PHP_VERSION;"], capture_output=True, timeout=30, check=False)
    return done.stdout.decode().strip() or None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    """What the figures were measured on."""
    try:
        import uvloop

        uvloop_version: str | None = str(getattr(uvloop, "__version__", "unknown"))
    except ImportError:
        uvloop_version = None
    kit_version = _version_of("pixl_ipc")
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "load_average_at_start": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "orjson": _version_of("orjson"),
        "msgspec": _version_of("msgspec"),
        "pyzmq": _version_of("zmq"),
        "uvloop": uvloop_version is not None,
        "uvloop_version": uvloop_version,
        "php": _php_version(),
        "pixl_ipc": kit_version,
    }


def _version_of(module: str) -> str | None:
    try:
        mod = __import__(module)
    except ImportError:
        return None
    return str(getattr(mod, "__version__", "unknown"))


# --- sequential round trips ------------------------------------------------------

#: Series of the sequential section, in table order: key, label, client, server.
SEQ_SERIES = [
    ("blocking_ref", "IPCClient (blocking) -> reference server", "blocking", "reference"),
    ("asyncio_ref", "AsyncIPCClient -> reference server", "asyncio", "reference"),
    ("php_ref", "PHP PixlIPCClient -> reference server", "php", "reference"),
    ("node_ref", "Node IPCClient -> reference server", "node", "reference"),
    ("blocking_floor_b", "IPCClient (blocking) -> floor (b) asyncio echo", "blocking", "floor_b"),
    ("floor_a", "floor (a): blocking sockets + orjson, 2 processes", "raw", "floor_a"),
    ("mpc_peer", "peer: multiprocessing.connection, orjson payloads", "mpc", "peer_mpc"),
    ("zmq_peer", "peer: pyzmq REQ/REP over ipc://", "zmq", "peer_zmq_rep"),
]


def _seq_args(plan: Plan, client: str, path: str) -> list[str]:
    return [
        "seq",
        "--client",
        client,
        "--socket",
        path,
        "--sizes",
        ",".join(str(s) for s in plan.sizes_kib),
        "--reps",
        "1",
        "--min-time",
        str(plan.seq_min_time),
        "--min-count",
        str(plan.seq_min_count),
        "--warmup",
        str(plan.seq_warmup),
    ]


def _script_seq(plan: Plan, client: str, path: str, cpus: CPUs) -> dict[str, Any]:
    """Run the PHP or the Node benchmark client: the same arguments, the same JSON."""
    program = shutil.which(client)
    assert program is not None
    argv = [
        program,
        str(PHP_BENCH if client == "php" else NODE_BENCH),
        path,
        ",".join(str(s) for s in plan.sizes_kib),
        "1",
        str(plan.seq_min_time),
        str(plan.seq_min_count),
        str(plan.seq_warmup),
    ]
    done = subprocess.run(argv, capture_output=True, timeout=600, check=False, preexec_fn=process_setup(cpus))
    if done.returncode != 0:
        text = (done.stderr.decode() + done.stdout.decode())[-2000:]
        raise RuntimeError(f"{client} bench failed ({done.returncode}):\n{text}")
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


def _available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@contextmanager
def _servers(run: Run, wanted: Sequence[str], cpus: CPUs = None) -> Iterator[dict[str, Server]]:
    """Start the servers named in ``wanted`` (reference, or a HELPER_SERVERS key); stop them after."""
    started: dict[str, Server] = {}
    try:
        for key in wanted:
            with run.part(f"start {key}"):
                if key == "reference":
                    started[key] = run.reference_server(cpus=cpus)
                else:
                    started[key] = run.helper_server(key, cpus=cpus)
        yield started
    finally:
        for server in started.values():
            server.stop()


#: Names of the measures in results.json: the round trip (or 1 / rate) and the
#: CPU time the server process and the client process spent per message.
_MEASURES = {
    "wall": "rtt_seconds",
    "server_cpu": "server_cpu_seconds",
    "client_cpu": "client_cpu_seconds",
}


def sequential(run: Run) -> dict[str, Any]:
    """The sequential section: every series over every size.

    The repetitions are interleaved: each round runs every series once, so a
    burst of load from elsewhere on the machine hits all series alike instead
    of skewing one of them.
    """
    plan = run.plan
    section: dict[str, Any] = {"sizes_kib": plan.sizes_kib, "series": {}, "skipped": {}}
    timeout = 600.0 if plan.mode == "full" else 60.0
    wanted: list[tuple[str, str, str, str]] = []
    for key, label, client, server in SEQ_SERIES:
        why = None
        if server == "reference" and not _available("pixl_ipc.server"):
            why = "pixl_ipc.server is not available"
        elif client == "blocking" and not _available("pixl_ipc.client"):
            why = "pixl_ipc.client is not available"
        elif client == "asyncio" and not _available("pixl_ipc.aio_client"):
            why = "pixl_ipc.aio_client is not available"
        elif client == "php" and shutil.which("php") is None:
            why = "php is not installed"
        elif client == "php" and not PHP_CLIENT.exists():
            why = f"{PHP_CLIENT.relative_to(REPO)} does not exist"
        elif client == "node" and shutil.which("node") is None:
            why = "node is not installed"
        elif client == "zmq" and not _available("zmq"):
            why = "pyzmq is not installed (pip install 'pixl-ipc[bench]')"
        if why is None:
            wanted.append((key, label, client, server))
        else:
            section["skipped"][key] = why
    needed = sorted({server_key for *_, server_key in wanted})
    # samples[series][measure][kib]: measure is wall, server_cpu or client_cpu.
    samples: dict[str, dict[str, dict[str, list[float]]]] = {key: {} for key, *_ in wanted}
    loops: dict[str, Any] = {}
    with _servers(run, needed, run.seq_cpus) as servers:
        for round_no in range(plan.seq_reps):
            for key, _label, client, server_key in wanted:
                target = servers.get(server_key)
                if target is None:
                    continue
                with run.part(f"sequential round {round_no + 1}/{plan.seq_reps}: {key}"):
                    cpus = run.seq_cpus
                    if client in ("php", "node"):
                        raw = _script_seq(plan, client, target.path, cpus)
                        timings = {kib: {"wall": wall} for kib, wall in raw["rtt_seconds"].items()}
                    else:
                        args = [*_seq_args(plan, client, target.path), "--server-pid", str(target.pid)]
                        raw = orjson.loads(run_json_worker(args, timeout=timeout, cpus=cpus))
                        timings = raw["timings"]
                    loops[key] = raw.get("loop")
                    for kib, measures in timings.items():
                        for measure, values in measures.items():
                            samples[key].setdefault(measure, {}).setdefault(kib, []).extend(values)
    for key, label, client, server_key in wanted:
        if not samples[key].get("wall"):
            continue
        entry = {
            "key": key,
            "label": label,
            "client": client,
            "server": server_key,
            "floor": key == "floor_a",
            "peer": server_key.startswith("peer_"),
            "loop": loops.get(key),
        }
        for measure, name in _MEASURES.items():
            if measure in samples[key]:
                entry[name] = {kib: stats(values).as_dict() for kib, values in samples[key][measure].items()}
        section["series"][key] = entry
    for key, why in section["skipped"].items():
        run.notes.append(f"sequential {key} skipped: {why}")
    return section


# --- pipelined throughput ----------------------------------------------------------


def _pipe_args(plan: Plan, client: str, path: str) -> list[str]:
    return [
        "pipe",
        "--client",
        client,
        "--socket",
        path,
        "--configs",
        ",".join(f"{c}x{d}" for c, d in plan.pipe_configs),
        "--reps",
        str(plan.pipe_reps),
        "--window",
        str(plan.pipe_window),
        "--warmup",
        str(plan.pipe_warmup),
    ]


def _node_pipe(node: str, plan: Plan, server: Server) -> bytes:
    argv = [node, str(NODE_BENCH), "--pipelined", server.path, str(NODE_INFLIGHT)]
    argv += [str(plan.pipe_reps), str(plan.pipe_window), str(plan.pipe_warmup), str(server.pid)]
    done = subprocess.run(argv, capture_output=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"node bench failed ({done.returncode}):\n{done.stderr.decode()[-2000:]}")
    return done.stdout


def pipelined(run: Run) -> dict[str, Any]:
    """The pipelined section: msg/s for each client, server and configuration.

    Interleaved like the sequential section: each round measures every
    combination once, one load process per client and server.
    """
    plan = run.plan
    section: dict[str, Any] = {"message_kib": 1, "runs": [], "skipped": {}}
    servers_of = {"raw": ["floor_b"], "asyncio": ["floor_b"], "zmq": ["peer_zmq_router"]}
    if _available("pixl_ipc.server"):
        servers_of["raw"].insert(0, "reference")
        servers_of["asyncio"].insert(0, "reference")
    else:
        section["skipped"]["reference"] = "pixl_ipc.server is not available"
    if not _available("pixl_ipc.aio_client"):
        del servers_of["asyncio"]
        section["skipped"]["asyncio"] = "pixl_ipc.aio_client is not available"
    if not _available("zmq"):
        del servers_of["zmq"]
        section["skipped"]["zmq"] = "pyzmq is not installed (pip install 'pixl-ipc[bench]')"
    samples: dict[tuple[str, str, int, int], dict[str, list[float]]] = {}
    loops: dict[str, Any] = {}
    node = shutil.which("node")
    if node is None:
        section["skipped"]["node"] = "node is not installed"
    needed = sorted({key for keys in servers_of.values() for key in keys})
    with _servers(run, needed) as servers:
        for round_no in range(plan.pipe_rounds):
            reference = servers.get("reference")
            if node is not None and reference is not None:
                with run.part(f"pipelined round {round_no + 1}/{plan.pipe_rounds}: node -> reference"):
                    raw = orjson.loads(_node_pipe(node, plan, reference))
                    into = samples.setdefault(("node", "reference", 1, NODE_INFLIGHT), {})
                    for measure, values in raw["timings"].items():
                        into.setdefault(measure, []).extend(values)
            for client, server_keys in servers_of.items():
                for server_key in server_keys:
                    target = servers.get(server_key)
                    if target is None:
                        continue
                    name = f"pipelined round {round_no + 1}/{plan.pipe_rounds}: {client} -> {server_key}"
                    with run.part(name):
                        args = [*_pipe_args(plan, client, target.path), "--server-pid", str(target.pid)]
                        raw = orjson.loads(run_json_worker(args, timeout=600))
                        loops[client] = raw.get("loop")
                        for one in raw["runs"]:
                            combo = (client, server_key, one["connections"], one["inflight"])
                            into = samples.setdefault(combo, {})
                            for measure, values in one["timings"].items():
                                into.setdefault(measure, []).extend(values)
    for (client, server_key, connections, inflight), measures in samples.items():
        section["runs"].append(
            {
                "client": client,
                "server": server_key,
                "connections": connections,
                "inflight": inflight,
                "loop": loops.get(client),
                "msgs_per_second": stats([1 / wall for wall in measures["wall"]]).as_dict(),
                "server_cpu_seconds": stats(measures["server_cpu"]).as_dict(),
                "client_cpu_seconds": stats(measures["client_cpu"]).as_dict(),
            }
        )
    for key, why in section["skipped"].items():
        run.notes.append(f"pipelined {key} skipped: {why}")
    return section


# --- memory --------------------------------------------------------------------------


def _warm(server: Server) -> int:
    """One small echo (so lazy imports are done), then the settled RSS in KiB."""
    client = RawClient(server.path, timeout=30)
    try:
        client.send(make_data(1))
    finally:
        client.close()
    return wait_stable(server.pid)


def _wait_accepted(server: Server, fds: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while fd_count(server.pid) < fds:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} accepted only {fd_count(server.pid)} of {fds} descriptors")
        time.sleep(0.05)


def _idle_once(server: Server, counts: list[int]) -> dict[str, Any]:
    base_rss = _warm(server)
    base_fds = fd_count(server.pid)
    rss: dict[str, int] = {"0": base_rss}
    argv = [
        sys.executable,
        str(HERE / "worker.py"),
        "idle",
        "--socket",
        server.path,
        "--count",
        str(counts[0]),
    ]
    holder = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdin is not None and holder.stdout is not None
    try:
        opened = 0
        for i, count in enumerate(counts):
            if i > 0:
                holder.stdin.write(f"more {count - opened}\n")
                holder.stdin.flush()
            line = holder.stdout.readline()
            if line.split() != ["open", str(count)]:
                raise RuntimeError(f"idle connection holder said {line!r}")
            opened = count
            _wait_accepted(server, base_fds + count)
            rss[str(count)] = wait_stable(server.pid)
    finally:
        holder.stdin.close()
        holder.wait(30)
    return {
        "rss_kib": rss,
        "per_connection_kib": {str(n): (rss[str(n)] - base_rss) / n for n in counts},
    }


def _big_once(server: Server, kib: int) -> dict[str, Any]:
    base_rss = _warm(server)
    raw = orjson.loads(run_json_worker(["big", "--socket", server.path, "--kib", str(kib)], timeout=300))
    peak = server.hwm_kib()
    above = (peak - base_rss) * 1024
    return {
        "baseline_rss_kib": base_rss,
        "hwm_kib": peak,
        "peak_above_baseline_bytes": above,
        "message_bytes": raw["request_bytes"],
        "ratio_to_message": above / raw["request_bytes"],
        "echo_seconds": raw["seconds"],
    }


def memory(run: Run) -> dict[str, Any]:
    """The memory section: idle connections and one large echo, reference server and floor (b)."""
    plan = run.plan
    raise_nofile()
    section: dict[str, Any] = {"idle": {}, "big_echo": {}, "skipped": {}}
    big_max = str(max(2 * plan.big_kib * 1024 + (1 << 20), 64 << 20))
    servers: list[tuple[str, Callable[..., Server]]] = [("floor_b", lambda *_: run.helper_server("floor_b"))]
    if _available("pixl_ipc.server"):
        servers.insert(0, ("reference", run.reference_server))
    else:
        section["skipped"]["reference"] = "pixl_ipc.server is not available"
    for key, start in servers:
        with run.part(f"memory: idle connections, {key}"):
            reps = []
            for _ in range(plan.memory_reps):
                with start() as server:
                    reps.append(_idle_once(server, plan.idle_counts))
            section["idle"][key] = {
                "counts": plan.idle_counts,
                "rss_kib": {
                    n: stats([float(r["rss_kib"][n]) for r in reps]).as_dict()
                    for n in ["0", *map(str, plan.idle_counts)]
                },
                "per_connection_kib": {
                    str(n): stats([r["per_connection_kib"][str(n)] for r in reps]).as_dict()
                    for n in plan.idle_counts
                },
            }
        with run.part(f"memory: {plan.big_kib} KiB echo, {key}"):
            reps = []
            for _ in range(plan.memory_reps):
                # A fresh process each time: VmHWM cannot be reset.
                with start("--max-message-bytes", big_max) as server:
                    reps.append(_big_once(server, plan.big_kib))
            section["big_echo"][key] = {
                "message_kib": plan.big_kib,
                "message_bytes": reps[0]["message_bytes"],
                "peak_above_baseline_bytes": stats(
                    [float(r["peak_above_baseline_bytes"]) for r in reps]
                ).as_dict(),
                "ratio_to_message": stats([r["ratio_to_message"] for r in reps]).as_dict(),
                "baseline_rss_kib": stats([float(r["baseline_rss_kib"]) for r in reps]).as_dict(),
                "echo_seconds": stats([r["echo_seconds"] for r in reps]).as_dict(),
            }
    for name, why in section["skipped"].items():
        run.notes.append(f"memory {name} skipped: {why}")
    return section


# --- JSON codecs ---------------------------------------------------------------------


def codecs(run: Run) -> dict[str, Any]:
    """The codec section: CPU time per decode and encode of each candidate library.

    Measured in a load process of its own, as every other figure; CPU time
    rather than wall time, so that other work on the machine moves it little.
    """
    plan = run.plan
    args = [
        "codec",
        "--sizes",
        ",".join(map(str, plan.codec_sizes_kib)),
        "--reps",
        str(plan.codec_reps),
        "--min-time",
        str(plan.codec_min_time),
    ]
    raw = orjson.loads(run_json_worker(args, timeout=600))
    section: dict[str, Any] = {"sizes_kib": raw["sizes_kib"], "cpu_seconds": {}}
    for kind, candidates in raw["cpu_seconds"].items():
        section["cpu_seconds"][kind] = {
            name: {kib: stats(values).as_dict() for kib, values in by_size.items()}
            for name, by_size in candidates.items()
        }
    return section


# --- main ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return 0 when every part ran, 1 when one failed."""
    parser = argparse.ArgumentParser(description="pixl-ipc benchmark against floors")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench", help="output directory")
    parser.add_argument("--quick", action="store_true", help="small counts, every part, well under a minute")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="leave the sequential section to the scheduler instead of pinning it to one CPU",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    run = Run(plan, args.out, sequential_cpus(args.pin))
    started = time.monotonic()
    results: dict[str, Any] = {"environment": environment(), "mode": plan.mode, "plan": asdict(plan)}
    results["environment"]["sequential_cpus"] = None if run.seq_cpus is None else sorted(run.seq_cpus)
    log(f"{plan.mode} run, {results['environment']['cpu_count']} CPUs, writing to {args.out}")
    try:
        results["sequential"] = sequential(run)
        results["pipelined"] = pipelined(run)
        results["memory"] = memory(run)
        with run.part("JSON codecs"):
            results["codec"] = codecs(run)
    finally:
        run.close()
    results["environment"]["load_average_at_end"] = list(os.getloadavg())
    results["environment"]["duration_seconds"] = round(time.monotonic() - started, 1)
    plot_note = plot_latency(results["sequential"], args.out / "latency.png")
    if plot_note is not None:
        run.notes.append(plot_note)
    results["rows"] = report.rows(results)
    results["targets"] = report.targets(results["rows"])
    results["cpu_rows"] = report.cpu_rows(results)
    results["notes"] = run.notes
    results["errors"] = run.errors
    (args.out / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    sys.stdout.write(report.markdown(results))
    sys.stdout.flush()
    log(f"wrote {args.out / 'results.json'} in {results['environment']['duration_seconds']} s")
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
