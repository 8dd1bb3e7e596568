"""What the benchmark sends and how it counts: payloads, request shapes, statistics.

Shared by the orchestrator (``bench.py``), the load processes (``worker.py``)
and the floor servers (``floors.py``). Imports nothing from ``pixl_ipc`` so
that the floors measure Python, sockets and orjson alone.
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "ECHO_URI",
    "ENTRY_BYTES",
    "LineReader",
    "MpcClient",
    "RawClient",
    "ZmqReqClient",
    "codec_candidates",
    "Stats",
    "make_data",
    "request_line",
    "stats",
    "Meter",
    "Timings",
    "cpu_seconds",
    "time_round_trips",
    "warm_heap",
]

#: The built-in echo handler of the reference server (BUILTIN-1).
ECHO_URI = "/ipcserver/test/echo"
#: Each entry of a payload serializes to exactly this many bytes, as in the
#: original's table ("echo of N x 1 KiB entries").
ENTRY_BYTES = 1024
# '"e000000":"' + value + '",' is 13 bytes of key, quotes, colon and comma.
_ENTRY_OVERHEAD = 13
_RECV_BYTES = 256 * 1024


def warm_heap() -> None:
    """Raise glibc's dynamic mmap and trim thresholds, as the kit's processes do.

    Allocating and freeing one 4 MiB block keeps later buffers of up to a few
    MiB on the heap instead of mapping (and faulting in) fresh pages for each
    message; without it a floor would pay page faults the reference server
    does not, and stop being a floor.
    """
    bytes(4 * 1024 * 1024)


def make_data(kib: int) -> dict[str, str]:
    """An object of ``kib`` string entries of 1 KiB each, as JSON.

    Args:
        kib: the number of entries (the message size in KiB).

    Returns:
        ``{"e000000": "xxx...", ...}``; ``orjson.dumps`` of it is
        ``kib * 1024 + 1`` bytes long.
    """
    value = "x" * (ENTRY_BYTES - _ENTRY_OVERHEAD)
    return {f"e{i:06d}": value for i in range(kib)}


def request_line(request_id: str, data: Any) -> bytes:
    """A request shaped like the kit's clients write it (REQ-1), with its LF."""
    message = {
        "ipcReqID": request_id,
        "uri": ECHO_URI,
        "data": data,
        "pid": os.getpid(),
        "userAgent": "Python/bench",
    }
    return orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE)


class LineReader:
    """Read LF-terminated lines from a blocking socket into a reused buffer.

    A line that spans many reads is joined once, when its LF arrives, so a
    16 MiB line costs O(size). Receiving into one preallocated buffer avoids
    allocating a large ``bytes`` for every ``recv`` of a small message.
    """

    __slots__ = ("_buffer", "_chunks", "_rest", "_sock", "_view")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray(_RECV_BYTES)
        self._view = memoryview(self._buffer)
        self._rest = b""
        self._chunks: list[bytes] = []

    def readline(self) -> bytes | None:
        """The next line without its LF, or None at end of stream."""
        rest = self._rest
        end = rest.find(b"\n")
        if end >= 0:
            self._rest = rest[end + 1 :]
            return rest[:end]
        chunks = self._chunks
        if rest:
            chunks.append(rest)
        while True:
            n = self._sock.recv_into(self._buffer)
            if n == 0:
                self._rest = b""
                chunks.clear()
                return None
            data = bytes(self._view[:n])
            end = data.find(b"\n")
            if end >= 0:
                if chunks:
                    chunks.append(data[:end])
                    line = b"".join(chunks)
                    chunks.clear()
                else:
                    line = data[:end]
                self._rest = data[end + 1 :]
                return line
            chunks.append(data)


class RawClient:
    """The client side of floor (a): a blocking socket, orjson, no library.

    It writes requests shaped like a pixl-ipc client's and reads one line per
    answer, which is the least any blocking client has to do.
    """

    def __init__(self, path: str, *, timeout: float | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A timeout turns a server that never answers into an error, not a hang.
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.reader = LineReader(self.sock)
        self.counter = 0

    def send(self, data: Any) -> Any:
        """Send one echo request and return the answer's ``data``."""
        request_id = f"rq{self.counter}"
        self.counter += 1
        self.sock.sendall(request_line(request_id, data))
        line = self.reader.readline()
        if line is None:
            raise ConnectionError("server closed the connection")
        return _answer_data(line, request_id)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def _answer_data(raw: bytes, request_id: str) -> Any:
    answer = orjson.loads(raw)
    if answer.get("ipcReqID") != request_id:
        raise RuntimeError(f"answer to {answer.get('ipcReqID')!r}, expected {request_id!r}")
    return answer.get("data")


class MpcClient:
    """A peer's client: multiprocessing.connection over AF_UNIX, the same request bytes."""

    def __init__(self, path: str) -> None:
        from multiprocessing.connection import Client

        self.conn = Client(path, family="AF_UNIX")
        self.counter = 0

    def send(self, data: Any) -> Any:
        """Send one echo request and return the answer's ``data``."""
        request_id = f"rq{self.counter}"
        self.counter += 1
        self.conn.send_bytes(request_line(request_id, data))
        return _answer_data(self.conn.recv_bytes(), request_id)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class ZmqReqClient:
    """A peer's client: a pyzmq REQ socket over ipc://, the same request bytes."""

    def __init__(self, path: str, *, timeout: float) -> None:
        import zmq

        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
        self.sock.connect(f"ipc://{path}")
        self.counter = 0

    def send(self, data: Any) -> Any:
        """Send one echo request and return the answer's ``data``."""
        request_id = f"rq{self.counter}"
        self.counter += 1
        self.sock.send(request_line(request_id, data))
        return _answer_data(self.sock.recv(), request_id)

    def close(self) -> None:
        """Close the socket and its context."""
        self.sock.close()
        self.context.term()


# --- JSON codecs ---------------------------------------------------------------

# The kit's decoder before msgspec: orjson, then an exactness scan of the line
# for a run of 19 digits (orjson reads integers past 64 bits as floats), by a
# sample of every 9th byte and, only where that shows two digits in a row, a
# scan of the whole line. Kept here to measure what the scan cost.
_DIGITS_TO_ZERO = bytes(0x30 if 0x30 <= i <= 0x39 else 0x78 for i in range(256))


def _has_long_digit_run(line: bytes) -> bool:
    if b"00" not in line[::9].translate(_DIGITS_TO_ZERO):
        return False
    return b"0" * 19 in line.translate(_DIGITS_TO_ZERO)


def _orjson_exact_loads(line: bytes) -> Any:
    value = orjson.loads(line)
    if _has_long_digit_run(line):
        import json

        return json.loads(line)
    return value


def codec_candidates() -> tuple[dict[str, Callable[[bytes], Any]], dict[str, Callable[[Any], bytes]]]:
    """The decoders and encoders the benchmark compares, by name (those importable here)."""
    import json

    decoders: dict[str, Callable[[bytes], Any]] = {
        "orjson (integers past 64 bits become floats)": orjson.loads,
        "orjson + exactness scan (the kit's former decoder)": _orjson_exact_loads,
        "stdlib json": json.loads,
    }
    encoders: dict[str, Callable[[Any], bytes]] = {
        "orjson": lambda value: orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE),
        "stdlib json": lambda value: json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(),
    }
    try:
        import msgspec
    except ImportError:
        return decoders, encoders
    decoders["msgspec"] = msgspec.json.Decoder().decode
    encode_into = msgspec.json.Encoder().encode_into

    def msgspec_encode(value: Any) -> bytes:
        buffer = bytearray()
        encode_into(value, buffer)
        buffer += b"\n"
        return bytes(buffer)

    encoders["msgspec (into a bytearray, survives allocation failure)"] = msgspec_encode
    return decoders, encoders


@dataclass(frozen=True)
class Stats:
    """Median, minimum and maximum of repeated measurements."""

    median: float
    min: float
    max: float
    samples: list[float]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"median": self.median, "min": self.min, "max": self.max, "samples": self.samples}


def stats(samples: list[float]) -> Stats:
    """Summarize repetitions (at least one)."""
    if not samples:
        raise ValueError("no samples")
    return Stats(statistics.median(samples), min(samples), max(samples), list(samples))


def cpu_seconds(pid: int | None) -> float:
    """CPU time used so far by every thread of process ``pid``, in seconds (0.0 if None).

    Read from ``/proc/PID/task/*/schedstat`` (nanoseconds), far finer than
    the 10 ms ticks of ``/proc/PID/stat``.
    """
    if pid is None:
        return 0.0
    total = 0
    base = f"/proc/{pid}/task"
    for task in os.listdir(base):
        try:
            with open(f"{base}/{task}/schedstat", encoding="ascii") as schedstat:
                total += int(schedstat.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return total / 1e9


@dataclass
class Timings:
    """Per-call means of each repetition: wall time, and CPU time of server and client.

    CPU time per call barely depends on what else runs on the machine, so it
    shows where the time goes even when wall times are noisy.
    """

    wall: list[float]
    server_cpu: list[float]
    client_cpu: list[float]

    def as_dict(self) -> dict[str, list[float]]:
        """A JSON-ready view."""
        return {"wall": self.wall, "server_cpu": self.server_cpu, "client_cpu": self.client_cpu}


class Meter:
    """Wall, server CPU and own CPU between :meth:`start` and :meth:`stop`."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.timings = Timings([], [], [])
        self._start = (0.0, 0.0, 0.0)

    def start(self) -> None:
        """Mark the beginning of a repetition."""
        self._start = (time.perf_counter(), cpu_seconds(self.server_pid), time.process_time())

    def stop(self, calls: int) -> None:
        """Record a repetition of ``calls`` calls as per-call means."""
        wall0, server0, client0 = self._start
        wall = time.perf_counter() - wall0
        server = cpu_seconds(self.server_pid) - server0
        client = time.process_time() - client0
        self.timings.wall.append(wall / calls)
        self.timings.server_cpu.append(server / calls)
        self.timings.client_cpu.append(client / calls)


def time_round_trips(
    call: Callable[[], object],
    *,
    reps: int,
    min_time: float,
    min_count: int,
    server_pid: int | None = None,
) -> Timings:
    """Time repetitions of sequential round trips.

    Each repetition calls ``call`` at least ``min_count`` times and for at
    least ``min_time`` seconds.

    Returns:
        For each repetition, the mean wall time per call and the server's and
        this process's CPU time per call.
    """
    clock = time.perf_counter
    meter = Meter(server_pid)
    for _ in range(reps):
        count = 0
        meter.start()
        start = clock()
        while True:
            call()
            count += 1
            if count >= min_count and clock() - start >= min_time:
                break
        meter.stop(count)
    return meter.timings
