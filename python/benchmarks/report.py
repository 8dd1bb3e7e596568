"""Turn measurements into rows: each figure, its floor, its ratio, its target.

Targets are reported, never asserted: a figure that misses its target is
marked "not met" and the run still succeeds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["TARGETS", "cpu_rows", "markdown", "rows", "targets"]

#: The targets the figures are held to, as (short name, text), for the README.
TARGETS = {
    "seq": "1 KiB, 100 KiB and 1 MiB sequential, IPCClient -> reference server: within 1.2x of floor (a)",
    "seq_mpc": "1 KiB sequential, IPCClient -> reference server: within 1.3x of multiprocessing.connection",
    "pipe_server": "pipelined 1 KiB, 64 in flight on 1 and on 16 connections, raw generator -> "
    "reference server (the server alone): at least 0.8x of floor (b)",
    "pipe_abs": "AsyncIPCClient -> reference server, pipelined 1 KiB, 64 in flight: at least 100,000 msg/s",
    "pipe_zmq": "the same: at least the throughput of pyzmq DEALER/ROUTER with 64 in flight",
    "php_1m": "PHP client, 1 MiB sequential: within 1.6x of floor (a)",
    "idle": "memory per idle connection: at most 10 KiB",
    "big": "large echo, peak RSS above baseline: at most 4x the message",
}

SERIES_ORDER = [
    "blocking_ref",
    "asyncio_ref",
    "php_ref",
    "node_ref",
    "blocking_floor_b",
    "floor_a",
    "mpc_peer",
    "zmq_peer",
]


def _time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _cpu(seconds: float) -> str:
    # Codec figures of a few microseconds need their decimals.
    return f"{seconds * 1e6:.2f} us" if seconds < 1e-5 else _time(seconds)


def _rate(value: float) -> str:
    return f"{value:,.0f} msg/s"


def _kib(value: float) -> str:
    return f"{value:.2f} KiB"


def _mib_from_kib(value: float) -> str:
    return f"{value / 1024:.1f} MiB"


def _mib_from_bytes(value: float) -> str:
    return f"{value / (1 << 20):.1f} MiB"


def _size(kib: int) -> str:
    return f"{kib // 1024} MiB" if kib >= 1024 and kib % 1024 == 0 else f"{kib:,} KiB"


def _row(
    section: str,
    figure: str,
    stat: dict[str, float],
    fmt: Callable[[float], str],
    *,
    floor: tuple[str, float] | None = None,
    target: str | None = None,
    target_ratio: float | None = None,
    met: bool | None = None,
) -> dict[str, Any]:
    ratio = None if floor is None or floor[1] == 0 else stat["median"] / floor[1]
    return {
        "section": section,
        "figure": figure,
        "median": stat["median"],
        "min": stat["min"],
        "max": stat["max"],
        "text": fmt(stat["median"]),
        "range_text": f"{fmt(stat['min'])} to {fmt(stat['max'])}",
        "floor": None if floor is None else floor[0],
        "floor_median": None if floor is None else floor[1],
        "ratio": ratio,
        "target": target,
        "target_ratio": target_ratio,
        "met": met,
    }


def _sequential_rows(section: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    series = section.get("series", {})
    floor_a = series.get("floor_a", {}).get("rtt_seconds", {})
    mpc = series.get("mpc_peer", {}).get("rtt_seconds", {})
    for kib in section.get("sizes_kib", []):
        key_kib = str(kib)
        floor = floor_a.get(key_kib)
        for key in SERIES_ORDER:
            entry = series.get(key)
            if entry is None or key_kib not in entry["rtt_seconds"]:
                continue
            stat = entry["rtt_seconds"][key_kib]
            figure = f"sequential {_size(kib)}: {entry['label']}"
            base = None if floor is None or key == "floor_a" else ("floor (a)", floor["median"])
            target = target_ratio = met = None
            ratio = None if base is None else stat["median"] / base[1]
            if key == "blocking_ref" and ratio is not None and kib in (1, 100, 1000, 1024):
                target, target_ratio, met = "<= 1.2x floor (a)", ratio, ratio <= 1.2
            elif key == "php_ref" and ratio is not None and kib in (1000, 1024):
                target, target_ratio, met = "<= 1.6x floor (a)", ratio, ratio <= 1.6
            out.append(
                _row(
                    "sequential",
                    figure,
                    stat,
                    _time,
                    floor=base,
                    target=target,
                    target_ratio=target_ratio,
                    met=met,
                )
            )
            if key == "blocking_ref" and kib == 1 and key_kib in mpc:
                peer = mpc[key_kib]["median"]
                ratio = stat["median"] / peer
                out.append(
                    _row(
                        "sequential",
                        f"sequential {_size(kib)}: {entry['label']}, against multiprocessing.connection",
                        stat,
                        _time,
                        floor=("multiprocessing.connection", peer),
                        target="<= 1.3x multiprocessing.connection",
                        target_ratio=ratio,
                        met=ratio <= 1.3,
                    )
                )
    return out


_CLIENT_LABELS = {
    "asyncio": "AsyncIPCClient",
    "raw": "raw pipelining load generator",
    "node": "Node IPCClient",
    "zmq": "pyzmq DEALER (peer)",
}
_SERVER_LABELS = {"reference": "reference server", "floor_b": "floor (b)", "peer_zmq_router": "pyzmq ROUTER"}


def _pipelined_rows(section: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    runs = section.get("runs", [])
    floors = {(r["client"], r["connections"], r["inflight"]): r for r in runs if r["server"] == "floor_b"}
    zmq = {(r["connections"], r["inflight"]): r for r in runs if r["client"] == "zmq"}
    order = {"asyncio": 0, "raw": 1, "node": 2, "zmq": 3}
    ordered = sorted(runs, key=lambda r: (order[r["client"]], r["connections"], r["inflight"], r["server"]))
    for run in ordered:
        stat = run["msgs_per_second"]
        config = f"{run['connections']} conn x {run['inflight']} in flight"
        figure = (
            f"pipelined 1 KiB, {config}: {_CLIENT_LABELS[run['client']]} -> {_SERVER_LABELS[run['server']]}"
        )
        floor_run = floors.get((run["client"], run["connections"], run["inflight"]))
        base = None
        if run["server"] == "reference" and floor_run is not None:
            base = ("floor (b)", floor_run["msgs_per_second"]["median"])
        target = target_ratio = met = None
        shape = (run["connections"], run["inflight"])
        if run["server"] == "reference" and run["client"] == "raw" and shape in ((1, 64), (16, 64)):
            if base is not None:
                target_ratio = stat["median"] / base[1]
                target, met = ">= 0.8x floor (b)", target_ratio >= 0.8
        elif run["server"] == "reference" and run["client"] == "asyncio" and shape == (1, 64):
            target, target_ratio = ">= 100,000 msg/s", stat["median"] / 100_000
            met = stat["median"] >= 100_000
        out.append(
            _row(
                "pipelined",
                figure,
                stat,
                _rate,
                floor=base,
                target=target,
                target_ratio=target_ratio,
                met=met,
            )
        )
        if target == ">= 100,000 msg/s" and (1, 64) in zmq:
            peer = zmq[(1, 64)]["msgs_per_second"]["median"]
            ratio = stat["median"] / peer
            out.append(
                _row(
                    "pipelined",
                    f"{figure}, against pyzmq DEALER/ROUTER",
                    stat,
                    _rate,
                    floor=("pyzmq DEALER/ROUTER", peer),
                    target=">= 1.0x pyzmq DEALER/ROUTER",
                    target_ratio=ratio,
                    met=ratio >= 1.0,
                )
            )
    return out


def _codec_rows(section: dict[str, Any]) -> list[dict[str, Any]]:
    """CPU time per decode and encode of a request, each against orjson's."""
    out: list[dict[str, Any]] = []
    for kind, candidates in section.get("cpu_seconds", {}).items():
        orjson_name = next((name for name in candidates if name.startswith("orjson")), None)
        for kib in section.get("sizes_kib", []):
            base_stat = candidates.get(orjson_name, {}).get(str(kib)) if orjson_name else None
            for name, by_size in candidates.items():
                stat = by_size.get(str(kib))
                if stat is None:
                    continue
                base = None
                if base_stat is not None and name != orjson_name:
                    base = ("orjson", base_stat["median"])
                figure = f"{kind} a {_size(kib)} request, CPU: {name}"
                out.append(_row("codec", figure, stat, _cpu, floor=base))
    return out


def _memory_rows(section: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    idle = section.get("idle", {})
    floor_idle = idle.get("floor_b")
    for key in ("reference", "floor_b"):
        entry = idle.get(key)
        if entry is None:
            continue
        name = _SERVER_LABELS[key]
        out.append(_row("memory", f"server RSS, no connection: {name}", entry["rss_kib"]["0"], _mib_from_kib))
        for n in entry["counts"]:
            out.append(
                _row(
                    "memory",
                    f"server RSS, {n:,} idle connections: {name}",
                    entry["rss_kib"][str(n)],
                    _mib_from_kib,
                )
            )
            stat = entry["per_connection_kib"][str(n)]
            base = None
            if key != "floor_b" and floor_idle is not None and str(n) in floor_idle["per_connection_kib"]:
                base = ("floor (b)", floor_idle["per_connection_kib"][str(n)]["median"])
            target = met = None
            if key == "reference":
                target, met = "<= 10 KiB", stat["median"] <= 10
            figure = f"RSS per idle connection ({n:,} open, delta / N): {name}"
            out.append(_row("memory", figure, stat, _kib, floor=base, target=target, met=met))
    big = section.get("big_echo", {})
    floor_big = big.get("floor_b")
    for key in ("reference", "floor_b"):
        entry = big.get(key)
        if entry is None:
            continue
        stat = entry["peak_above_baseline_bytes"]
        ratio = entry["ratio_to_message"]["median"]
        figure = (
            f"peak RSS above baseline, one {_size(entry['message_kib'])} echo "
            f"({ratio:.2f}x the message): {_SERVER_LABELS[key]}"
        )
        base = None
        if key != "floor_b" and floor_big is not None:
            base = ("floor (b)", floor_big["peak_above_baseline_bytes"]["median"])
        target = met = None
        if key == "reference":
            target, met = "<= 4x the message", ratio <= 4
        out.append(
            _row(
                "memory",
                figure,
                stat,
                _mib_from_bytes,
                floor=base,
                target=target,
                target_ratio=ratio,
                met=met,
            )
        )
    return out


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every figure of a run as a row, in table order."""
    return [
        *_sequential_rows(results.get("sequential", {})),
        *_pipelined_rows(results.get("pipelined", {})),
        *_memory_rows(results.get("memory", {})),
        *_codec_rows(results.get("codec", {})),
    ]


_CPU_SIZES = (1, 100, 1000)
_CPU_CONFIGS = ((1, 64), (16, 64))


def cpu_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """CPU time per message of the server and the client process, medians.

    Unlike wall times these barely move when other processes load the
    machine, so they show which side limits a figure.
    """
    out: list[dict[str, Any]] = []
    series = results.get("sequential", {}).get("series", {})
    for kib in _CPU_SIZES:
        for key in SERIES_ORDER:
            entry = series.get(key)
            if entry is None or str(kib) not in entry.get("server_cpu_seconds", {}):
                continue
            out.append(
                {
                    "figure": f"sequential {_size(kib)}: {entry['label']}",
                    "server_cpu_seconds": entry["server_cpu_seconds"][str(kib)]["median"],
                    "client_cpu_seconds": entry["client_cpu_seconds"][str(kib)]["median"],
                    "wall_seconds": entry["rtt_seconds"][str(kib)]["median"],
                }
            )
    for run in results.get("pipelined", {}).get("runs", []):
        if (run["connections"], run["inflight"]) not in _CPU_CONFIGS or "server_cpu_seconds" not in run:
            continue
        config = f"{run['connections']} conn x {run['inflight']} in flight"
        out.append(
            {
                "figure": f"pipelined 1 KiB, {config}: "
                f"{_CLIENT_LABELS[run['client']]} -> {_SERVER_LABELS[run['server']]}",
                "server_cpu_seconds": run["server_cpu_seconds"]["median"],
                "client_cpu_seconds": run["client_cpu_seconds"]["median"],
                "wall_seconds": 1 / run["msgs_per_second"]["median"],
            }
        )
    return out


def targets(all_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows held to a target, with whether each was met."""
    return [
        {
            "figure": r["figure"],
            "value": r["text"],
            "target": r["target"],
            "target_ratio": r["target_ratio"],
            "met": r["met"],
        }
        for r in all_rows
        if r["target"] is not None
    ]


def _status(row: dict[str, Any]) -> str:
    if row["target"] is None:
        return ""
    verdict = "**met**" if row["met"] else "**not met**"
    shown = row["target_ratio"]
    suffix = ""
    if shown is not None and "msg/s" not in row["target"]:
        suffix = f" ({shown:.2f}x)"
    return f"{row['target']}: {verdict}{suffix}"


def _first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) <= 1:
        return text.strip()
    return f"{lines[0]} ... {lines[-1].strip()}"


def _placement_text(cpus: list[int] | None) -> str:
    if not cpus:
        return "Sequential round trips not pinned: the scheduler placed their processes."
    return (
        f"Sequential round trips: server and load process pinned to CPU {cpus[0]}; "
        "the other sections left to the scheduler."
    )


def markdown(results: dict[str, Any]) -> str:
    """The table of figures, with the environment, notes and errors, as Markdown."""
    env = results["environment"]
    lines = [
        f"## pixl-ipc benchmark ({results['mode']} run)",
        "",
        f"{env['date']}, {env['cpu_count']} CPUs ({env['cpu_model']}), Python {env['python']}, "
        f"PHP {env['php'] or 'missing'}, uvloop {'on' if env['uvloop'] else 'off'}, "
        f"load average {env['load_average_at_start'][0]:.2f} at start, "
        f"{env.get('load_average_at_end', [0.0])[0]:.2f} at end, {env.get('duration_seconds', 0)} s.",
        _placement_text(env.get("sequential_cpus")),
        "Each figure: median of several repetitions after a warm-up (min to max in the third column).",
        "",
        "| figure | median | min to max | vs floor | target |",
        "|---|---:|---|---|---|",
    ]
    for row in results["rows"]:
        vs = "" if row["ratio"] is None else f"{row['ratio']:.2f}x {row['floor']}"
        lines.append(f"| {row['figure']} | {row['text']} | {row['range_text']} | {vs} | {_status(row)} |")
    if results.get("cpu_rows"):
        lines += [
            "",
            "CPU time per message (medians; the server process, the load process), against wall time",
            "per message. On a machine shared with other work these move far less than wall times.",
            "",
            "| figure | server CPU | client CPU | wall |",
            "|---|---:|---:|---:|",
        ]
        for row in results["cpu_rows"]:
            lines.append(
                f"| {row['figure']} | {_time(row['server_cpu_seconds'])} | "
                f"{_time(row['client_cpu_seconds'])} | {_time(row['wall_seconds'])} |"
            )
    met = [t for t in results["targets"] if t["met"]]
    lines += ["", f"Targets met: {len(met)} of {len(results['targets'])}."]
    for target in results["targets"]:
        if not target["met"]:
            lines.append(f"- not met: {target['figure']}: {target['value']} ({target['target']})")
    if results.get("notes"):
        lines += ["", "Notes:", *(f"- {note}" for note in results["notes"])]
    if results.get("errors"):
        # One line each here; results.json keeps the whole text.
        lines += [
            "",
            "Errors (these parts did not run):",
            *(f"- {_first_line(err)}" for err in results["errors"]),
        ]
    return "\n".join(lines) + "\n"
