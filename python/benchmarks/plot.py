"""The latency plot: round trip against message size, log-log, floors drawn in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_latency"]


def plot_latency(sequential: dict[str, Any], out: Path) -> str | None:
    """Draw ``latency.png`` from the ``sequential`` section of the results.

    The kit's series are solid lines, the floors dashed, the peers
    (multiprocessing.connection, pyzmq) dotted.

    Args:
        sequential: the results' ``sequential`` section.
        out: the PNG file to write.

    Returns:
        None when written, else why not (matplotlib missing, nothing to draw).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'pixl-ipc[bench]'): latency.png skipped"
    series: dict[str, Any] = sequential.get("series", {})
    if not series:
        return "no sequential figures: latency.png skipped"
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    for entry in series.values():
        points = sorted((int(kib), figure) for kib, figure in entry["rtt_seconds"].items())
        if not points:
            continue
        sizes = [kib for kib, _ in points]
        medians = [figure["median"] * 1e3 for _, figure in points]
        lower = [(figure["median"] - figure["min"]) * 1e3 for _, figure in points]
        upper = [(figure["max"] - figure["median"]) * 1e3 for _, figure in points]
        is_floor = entry.get("floor", False)
        is_peer = entry.get("peer", False)
        ax.errorbar(
            sizes,
            medians,
            yerr=[lower, upper],
            label=entry["label"],
            linestyle="--" if is_floor else (":" if is_peer else "-"),
            linewidth=2.5 if is_floor else 1.5,
            color="0.35" if entry.get("key") == "floor_a" else ("0.65" if is_floor else None),
            marker="s" if is_floor else ("^" if is_peer else "o"),
            markersize=4,
            capsize=2,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("message size (KiB, N x 1 KiB entries)")
    ax.set_ylabel("sequential round trip (ms, median; bars: min to max)")
    ax.set_title("pixl-ipc echo round trip (one connection, one request at a time)")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return None
