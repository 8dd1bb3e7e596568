"""Processes of the benchmark: servers and load generators, and their memory.

Every server (the reference server and the floors) runs in its own process,
started here and ready when it prints ``listening on PATH`` to stderr. Memory
is read from ``/proc/PID/status`` (VmRSS now, VmHWM the peak so far).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "HERE",
    "CPUs",
    "Server",
    "fd_count",
    "process_setup",
    "raise_nofile",
    "read_status_kib",
    "run_json_worker",
    "wait_stable",
]

#: The CPUs a process may run on, or None to leave it to the scheduler.
CPUs = frozenset[int] | None

HERE = Path(__file__).resolve().parent


def raise_nofile(wanted: int | None = None) -> int:
    """Raise this process's RLIMIT_NOFILE towards ``wanted`` (default: the hard limit).

    Returns:
        The soft limit in force afterwards.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        target = wanted if wanted is not None else 1 << 20
    else:
        target = hard if wanted is None else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def read_status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``), in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(f"{field} not in /proc/{pid}/status")


def fd_count(pid: int) -> int:
    """How many file descriptors the process has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_stable(pid: int, *, settle: float = 0.3, timeout: float = 10.0) -> int:
    """Wait until VmRSS stops moving for ``settle`` seconds; return it in KiB."""
    deadline = time.monotonic() + timeout
    last = read_status_kib(pid, "VmRSS")
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = read_status_kib(pid, "VmRSS")
        if now != last:
            last = now
            still_since = time.monotonic()
        elif time.monotonic() - still_since >= settle:
            break
    return last


def process_setup(cpus: CPUs = None) -> Callable[[], None]:
    """What a child process does before it starts: more descriptors, and its CPUs.

    Args:
        cpus: the CPUs it may run on (``sched_setaffinity``), or None.

    Returns:
        A function for ``subprocess.Popen(preexec_fn=...)``.
    """

    def setup() -> None:
        # Idle-connection runs need more descriptors than the default soft
        # limit; the limit is inherited across exec.
        raise_nofile()
        if cpus:
            os.sched_setaffinity(0, cpus)

    return setup


class Server:
    """A server process (reference or floor) on a socket path.

    Args:
        name: a label for messages.
        argv: the command; it must print ``listening on PATH`` to stderr.
        path: the socket path it serves.
        cpus: the CPUs it runs on (None: any).
        timeout: how long to wait for the ready line.

    Raises:
        RuntimeError: the process exited or did not get ready in time.
    """

    def __init__(
        self, name: str, argv: Sequence[str], path: str, *, cpus: CPUs = None, timeout: float = 20.0
    ) -> None:
        self.name = name
        self.path = path
        self.stderr_tail: list[str] = []
        self.ready = False
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=process_setup(cpus),
        )
        assert self.proc.stderr is not None
        ready = threading.Event()
        self._reader = threading.Thread(target=self._drain, args=(ready,), daemon=True)
        self._reader.start()
        ready.wait(timeout)
        if not self.ready or self.proc.poll() is not None:
            self.stop()
            tail = "\n".join(self.stderr_tail[-20:])
            raise RuntimeError(f"{name} did not start on {path}:\n{tail}")

    def _drain(self, ready: threading.Event) -> None:
        # Keep reading stderr after the ready line so a chatty server never
        # blocks on a full pipe.
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.stderr_tail.append(line)
            del self.stderr_tail[:-200]
            if line == f"listening on {self.path}":
                self.ready = True
                ready.set()
        ready.set()

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def rss_kib(self) -> int:
        """Resident memory now, KiB."""
        return read_status_kib(self.pid, "VmRSS")

    def hwm_kib(self) -> int:
        """Peak resident memory since start, KiB."""
        return read_status_kib(self.pid, "VmHWM")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(2)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_json_worker(args: Sequence[str], *, timeout: float, cpus: CPUs = None) -> str:
    """Run ``worker.py ARGS`` in its own process (on ``cpus``) and return its stdout.

    Raises:
        RuntimeError: it failed or timed out (its stderr is in the message).
    """
    argv = [sys.executable, str(HERE / "worker.py"), *args]
    try:
        done = subprocess.run(
            argv, capture_output=True, timeout=timeout, check=False, preexec_fn=process_setup(cpus)
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"worker {' '.join(args)} timed out after {timeout} s") from exc
    if done.returncode != 0:
        raise RuntimeError(
            f"worker {' '.join(args)} failed ({done.returncode}):\n{done.stderr.decode()[-2000:]}"
        )
    return done.stdout.decode()
