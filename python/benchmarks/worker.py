"""Load processes of the benchmark: each runs apart from the server it measures.

The orchestrator (``bench.py``) starts this script once per measurement so
that the load generator never shares a process (or its GIL) with the server::

    worker.py seq  --client raw|blocking|asyncio|mpc|zmq --socket P --sizes 1,5 ...
    worker.py pipe --client asyncio|raw|zmq --socket P --configs 1x1,1x64,16x64 ...
    worker.py codec --sizes 1,100,1024 --min-time 0.2
    worker.py idle --socket P --count N
    worker.py big  --socket P --kib K

``seq`` and ``pipe`` print one JSON object on stdout. ``idle`` opens N
connections, prints ``open N``, and on each stdin line ``more M`` opens M more;
at end of stdin it closes them all.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, cast

import orjson
from procs import raise_nofile
from workload import (
    ECHO_URI,
    Meter,
    MpcClient,
    RawClient,
    Timings,
    ZmqReqClient,
    codec_candidates,
    make_data,
    request_line,
    time_round_trips,
    warm_heap,
)

# A 16 MiB echo through a loaded machine takes well under a second; the
# timeout only stops a broken run.
_REQUEST_TIMEOUT = 120.0


def _run(main: Coroutine[Any, Any, Any]) -> tuple[Any, str]:
    """Run a coroutine on uvloop when installed; return its result and the loop's name."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main), "asyncio"
    return uvloop.run(main), "uvloop"


def _check_echo(got: Any, data: Any, label: str) -> None:
    if got != data:
        raise RuntimeError(f"{label}: the echo came back different")


# --- sequential round trips ---------------------------------------------------


def _seq_sync(args: argparse.Namespace, sizes: list[int]) -> dict[str, Any]:
    send: Callable[[Any], Any]
    if args.client in ("raw", "mpc", "zmq"):
        peer: RawClient | MpcClient | ZmqReqClient
        if args.client == "raw":
            peer = RawClient(args.socket, timeout=_REQUEST_TIMEOUT)
        elif args.client == "mpc":
            peer = MpcClient(args.socket)
        else:
            peer = ZmqReqClient(args.socket, timeout=_REQUEST_TIMEOUT)
        send, close = peer.send, peer.close
    else:
        from pixl_ipc.client import IPCClient

        client = IPCClient(args.socket, request_timeout=_REQUEST_TIMEOUT)
        client.connect()

        def send(data: Any) -> Any:
            return client.send(ECHO_URI, data)

        close = client.close
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for kib in sizes:
            data = make_data(kib)
            _check_echo(send(data), data, f"{args.client} {kib} KiB")
            call = functools.partial(send, data)
            time_round_trips(call, reps=1, min_time=args.warmup, min_count=2)
            timings = time_round_trips(
                call,
                reps=args.reps,
                min_time=args.min_time,
                min_count=args.min_count,
                server_pid=args.server_pid,
            )
            results[str(kib)] = timings.as_dict()
    finally:
        close()
    return {"client": args.client, "loop": None, "timings": results}


async def _time_async(
    call: Callable[[], Awaitable[object]],
    *,
    reps: int,
    min_time: float,
    min_count: int,
    server_pid: int | None = None,
) -> Timings:
    clock = time.perf_counter
    meter = Meter(server_pid)
    for _ in range(reps):
        count = 0
        meter.start()
        start = clock()
        while True:
            await call()
            count += 1
            if count >= min_count and clock() - start >= min_time:
                break
        meter.stop(count)
    return meter.timings


async def _seq_async(args: argparse.Namespace, sizes: list[int]) -> dict[str, Any]:
    from pixl_ipc.aio_client import AsyncIPCClient

    client = AsyncIPCClient(args.socket, request_timeout=_REQUEST_TIMEOUT)
    await client.connect()
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for kib in sizes:
            data = make_data(kib)

            async def send(data: Any = data) -> Any:
                return await client.send(ECHO_URI, data)

            _check_echo(await send(), data, f"asyncio {kib} KiB")
            await _time_async(send, reps=1, min_time=args.warmup, min_count=2)
            timings = await _time_async(
                send,
                reps=args.reps,
                min_time=args.min_time,
                min_count=args.min_count,
                server_pid=args.server_pid,
            )
            results[str(kib)] = timings.as_dict()
    finally:
        await client.close()
    return {"client": "asyncio", "timings": results}


def cmd_seq(args: argparse.Namespace) -> dict[str, Any]:
    """Sequential echo round trips, one size after the other."""
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.client == "asyncio":
        result, loop = _run(_seq_async(args, sizes))
        result["loop"] = loop
        return dict(result)
    return _seq_sync(args, sizes)


# --- pipelined throughput -----------------------------------------------------


class _Counter:
    __slots__ = ("done", "stop")

    def __init__(self) -> None:
        self.done = 0
        self.stop = False


async def _measure_windows(counter: _Counter, args: argparse.Namespace) -> Timings:
    """Per-message wall time (1 / rate), server CPU and client CPU of each window."""
    await asyncio.sleep(args.warmup)
    meter = Meter(args.server_pid)
    for _ in range(args.reps):
        start_count = counter.done
        meter.start()
        await asyncio.sleep(args.window)
        meter.stop(max(counter.done - start_count, 1))
    counter.stop = True
    return meter.timings


async def _pipe_asyncio(args: argparse.Namespace) -> dict[str, Any]:
    from pixl_ipc.aio_client import AsyncIPCClient

    data = make_data(1)
    counter = _Counter()
    clients = []
    for _ in range(args.connections):
        client = AsyncIPCClient(args.socket, request_timeout=_REQUEST_TIMEOUT)
        await client.connect()
        clients.append(client)
    _check_echo(await clients[0].send(ECHO_URI, data), data, "asyncio pipelined")

    async def keep_sending(client: Any) -> None:
        while not counter.stop:
            await client.send(ECHO_URI, data)
            counter.done += 1

    tasks = [asyncio.create_task(keep_sending(c)) for c in clients for _ in range(args.inflight)]
    try:
        timings = await _measure_windows(counter, args)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        for task in tasks:
            task.cancel()
        for client in clients:
            await client.close()
    return {"client": "asyncio", "timings": timings.as_dict()}


class _PipeProtocol(asyncio.Protocol):
    """Keeps ``inflight`` pre-encoded requests outstanding; counts answer lines."""

    def __init__(
        self, counter: _Counter, request: bytes, inflight: int, first: asyncio.Future[bytes]
    ) -> None:
        self.counter = counter
        self.request = request
        self.inflight = inflight
        self.first = first
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def start(self) -> None:
        """Put the first ``inflight`` requests on the wire."""
        assert self.transport is not None
        self.transport.write(self.request * self.inflight)

    def data_received(self, data: bytes) -> None:
        if not self.first.done():
            self.head += data
            end = self.head.find(b"\n")
            if end >= 0:
                self.first.set_result(self.head[:end])
        answered = data.count(b"\n")
        self.counter.done += answered
        if not self.counter.stop and self.transport is not None:
            self.transport.write(self.request * answered)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _connect_raw(path: str, factory: Callable[[], _PipeProtocol]) -> _PipeProtocol:
    # A non-blocking AF_UNIX connect fails with EAGAIN while the server's
    # accept backlog is full; wait for the server to catch up.
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 30
    while True:
        try:
            _, proto = await loop.create_unix_connection(factory, path)
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)
        else:
            return proto


async def _pipe_raw(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    data = make_data(1)
    request = request_line("rq0", data)
    counter = _Counter()
    protocols: list[_PipeProtocol] = []
    t0 = time.perf_counter()
    for i in range(args.connections):
        first: asyncio.Future[bytes] = loop.create_future()
        factory = functools.partial(_PipeProtocol, counter, request, args.inflight, first)
        proto = await _connect_raw(args.socket, factory)
        protocols.append(proto)
        if i == 0:
            proto.start()
            answer = orjson.loads(await asyncio.wait_for(first, 30))
            _check_echo(answer.get("data"), data, "raw pipelined")
    # Every connection is open before the load starts, so that the figure
    # is not how fast a loaded server accepts.
    for proto in protocols[1:]:
        proto.start()
    t1 = time.perf_counter()
    try:
        timings = await _measure_windows(counter, args)
    finally:
        t2 = time.perf_counter()
        for proto in protocols:
            if proto.transport is not None:
                proto.transport.close()
        await asyncio.wait([p.closed for p in protocols], timeout=10)
    phases = {"connect": t1 - t0, "measure": t2 - t1, "close": time.perf_counter() - t2}
    return {"client": "raw", "timings": timings.as_dict(), "phase_seconds": phases}


def _pipe_zmq(args: argparse.Namespace) -> dict[str, Any]:
    """pyzmq DEALER sockets, each keeping ``inflight`` requests outstanding at a ROUTER."""
    import zmq

    data = make_data(1)
    request = request_line("rq0", data)
    context = zmq.Context()
    socks = []
    for _ in range(args.connections):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"ipc://{args.socket}")
        socks.append(sock)
    poller = zmq.Poller()
    for sock in socks:
        poller.register(sock, zmq.POLLIN)
    socks[0].send(request)
    if not poller.poll(30_000):
        raise RuntimeError("zmq pipelined: no answer")
    _check_echo(orjson.loads(socks[0].recv()).get("data"), data, "zmq pipelined")
    for sock in socks:
        for _ in range(args.inflight):
            sock.send(request)
    clock = time.perf_counter
    meter = Meter(args.server_pid)
    done = 0
    window_end = clock() + args.warmup
    windows = -1  # the warm-up first
    start_count = 0
    try:
        while windows < args.reps:
            for sock, _ in poller.poll(1000):
                answered = 0
                while True:
                    try:
                        sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    answered += 1
                done += answered
                for _ in range(answered):
                    sock.send(request)
            if clock() >= window_end:
                if windows >= 0:
                    meter.stop(max(done - start_count, 1))
                windows += 1
                if windows < args.reps:
                    start_count = done
                    meter.start()
                    window_end = clock() + args.window
    finally:
        for sock in socks:
            sock.close()
        context.term()
    return {"client": "zmq", "timings": meter.timings.as_dict()}


def _configs(text: str) -> list[tuple[int, int]]:
    pairs = []
    for item in text.split(","):
        connections, _, inflight = item.partition("x")
        pairs.append((int(connections), int(inflight)))
    return pairs


async def _pipe_all(args: argparse.Namespace, configs: list[tuple[int, int]]) -> list[dict[str, Any]]:
    runs = []
    for connections, inflight in configs:
        one = argparse.Namespace(**vars(args), connections=connections, inflight=inflight)
        result = await (_pipe_asyncio(one) if args.client == "asyncio" else _pipe_raw(one))
        result.update(connections=connections, inflight=inflight)
        runs.append(result)
    return runs


def cmd_pipe(args: argparse.Namespace) -> dict[str, Any]:
    """Pipelined 1 KiB echoes for each ``CONNECTIONSxINFLIGHT`` configuration, in turn."""
    configs = _configs(args.configs)
    raise_nofile(max(c for c, _ in configs) + 64)
    if args.client == "zmq":
        runs = []
        for connections, inflight in configs:
            one = argparse.Namespace(**vars(args), connections=connections, inflight=inflight)
            result = _pipe_zmq(one)
            result.update(connections=connections, inflight=inflight)
            runs.append(result)
        return {"client": "zmq", "loop": None, "runs": runs}
    runs, loop = _run(_pipe_all(args, configs))
    return {"client": args.client, "loop": loop, "runs": runs}


# --- JSON codecs -------------------------------------------------------------


def _cpu_per_call(call: Callable[[], object], min_time: float) -> float:
    """CPU seconds per call over at least ``min_time`` seconds of CPU."""
    count = 0
    start = time.process_time()
    while True:
        for _ in range(8):
            call()
        count += 8
        spent = time.process_time() - start
        if spent >= min_time:
            return spent / count


def cmd_codec(args: argparse.Namespace) -> dict[str, Any]:
    """CPU time per decode and per encode of a request of each size, for each candidate.

    The kit's own ``decode_json`` and ``encode_line`` are measured beside the
    libraries, so that what the kit adds to them shows too.
    """
    decoders, encoders = codec_candidates()
    from pixl_ipc.framing import decode_json, encode_line

    decoders["pixl_ipc decode_json"] = decode_json
    encoders["pixl_ipc encode_line"] = encode_line
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, dict[str, dict[str, list[float]]]] = {"decode": {}, "encode": {}}
    for _ in range(args.reps):
        for kib in sizes:
            data = make_data(kib)
            line = request_line("rq0", data)[:-1]
            message = orjson.loads(line)
            for name, decode in decoders.items():
                _check_echo(decode(line), message, f"{name} {kib} KiB")
                per_call = _cpu_per_call(functools.partial(decode, line), args.min_time)
                results["decode"].setdefault(name, {}).setdefault(str(kib), []).append(per_call)
            for name, encode in encoders.items():
                _check_echo(orjson.loads(encode(message)), message, f"{name} {kib} KiB")
                per_call = _cpu_per_call(functools.partial(encode, message), args.min_time)
                results["encode"].setdefault(name, {}).setdefault(str(kib), []).append(per_call)
    return {"sizes_kib": sizes, "cpu_seconds": results}


# --- memory -------------------------------------------------------------------


def _open(path: str, count: int, into: list[socket.socket]) -> None:
    for _ in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)  # blocks while the server's backlog is full
        into.append(sock)


def cmd_idle(args: argparse.Namespace) -> None:
    """Hold idle connections open until stdin ends."""
    raise_nofile(args.count + 20_000)
    held: list[socket.socket] = []
    _open(args.socket, args.count, held)
    print(f"open {len(held)}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if len(words) == 2 and words[0] == "more":
            _open(args.socket, int(words[1]), held)
            print(f"open {len(held)}", flush=True)
    for sock in held:
        sock.close()


def cmd_big(args: argparse.Namespace) -> dict[str, Any]:
    """Echo one large message on a fresh connection."""
    data = make_data(args.kib)
    line_bytes = len(request_line("rq0", data))
    client = RawClient(args.socket, timeout=_REQUEST_TIMEOUT)
    try:
        start = time.perf_counter()
        got = client.send(data)
        elapsed = time.perf_counter() - start
    finally:
        client.close()
    _check_echo(got, data, f"{args.kib} KiB echo")
    return {"request_bytes": line_bytes, "seconds": elapsed}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one measurement."""
    parser = argparse.ArgumentParser(description="pixl-ipc benchmark load process")
    sub = parser.add_subparsers(dest="cmd", required=True)
    seq = sub.add_parser("seq")
    seq.add_argument("--client", choices=["raw", "blocking", "asyncio", "mpc", "zmq"], required=True)
    seq.add_argument("--socket", required=True)
    seq.add_argument("--sizes", required=True, help="KiB, comma-separated")
    seq.add_argument("--reps", type=int, default=5)
    seq.add_argument("--min-time", type=float, default=0.2)
    seq.add_argument("--min-count", type=int, default=3)
    seq.add_argument("--warmup", type=float, default=0.1)
    seq.add_argument("--server-pid", type=int, help="also measure this process's CPU time")
    pipe = sub.add_parser("pipe")
    pipe.add_argument("--client", choices=["raw", "asyncio", "zmq"], required=True)
    pipe.add_argument("--socket", required=True)
    pipe.add_argument("--configs", default="1x64", help="CONNECTIONSxINFLIGHT, comma-separated")
    pipe.add_argument("--reps", type=int, default=5)
    pipe.add_argument("--window", type=float, default=0.5)
    pipe.add_argument("--warmup", type=float, default=0.3)
    pipe.add_argument("--server-pid", type=int, help="also measure this process's CPU time")
    idle = sub.add_parser("idle")
    idle.add_argument("--socket", required=True)
    idle.add_argument("--count", type=int, required=True)
    codec = sub.add_parser("codec")
    codec.add_argument("--sizes", default="1,100,1024", help="KiB, comma-separated")
    codec.add_argument("--reps", type=int, default=3)
    codec.add_argument("--min-time", type=float, default=0.2, help="CPU seconds per figure")
    big = sub.add_parser("big")
    big.add_argument("--socket", required=True)
    big.add_argument("--kib", type=int, required=True)
    args = parser.parse_args(argv)
    warm_heap()
    if args.cmd == "idle":
        cmd_idle(args)
        return 0
    commands: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
        "seq": cmd_seq,
        "pipe": cmd_pipe,
        "codec": cmd_codec,
        "big": cmd_big,
    }
    result = commands[args.cmd](args)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
