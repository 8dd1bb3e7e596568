"""The load of the soak test: one worker process runs many asyncio connections.

Each worker opens ``connections`` connections at once; most are well-behaved
:class:`~pixl_ipc.aio_client.AsyncIPCClient` clients, the rest misbehave on
purpose (hang up mid-request, send garbage, stop reading for a while). Every
request embeds a token that is unique in the whole run, and every answer is
checked against it, so an answer delivered to the wrong request is caught
(CORR-2). Misbehaving connections speak raw bytes, which also lets them count
how many times each request is answered (RESP-1: exactly once).

Beside them, hostile peers put the server's budgets to work: floods of tiny
malformed lines, churn of huge distinct uris, connect-send-close storms and
peers that pipeline requests and never read. Their counts are kept apart from
the well-behaved requests.

The worker returns a :class:`WorkerReport` as a plain dict (it crosses a
process boundary).
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pixl_ipc.aio_client import AsyncIPCClient
from pixl_ipc.client import IPCClient
from pixl_ipc.errors import IPCError, RequestTimeout
from soak_handlers import SECRET

KIB = 1024
MIB = 1024 * KIB

ECHO = "/ipcserver/test/echo"
DELAY = "/ipcserver/test/delay"


@dataclass
class WorkerReport:
    """What one worker saw. ``problems`` lists every broken promise, with details."""

    connections: int = 0
    requests: int = 0
    answered: int = 0
    failed_with_error: int = 0
    abandoned: int = 0  # requests whose own client hung up on purpose
    timed_out_on_purpose: int = 0  # requests given a timeout shorter than their delay
    pushes: int = 0
    misdelivered: int = 0
    duplicates: int = 0
    bad_json_answers: int = 0
    bytes_echoed: int = 0
    largest: int = 0
    # The hostile peers' work (not counted in ``requests``).
    flood_lines: int = 0
    flood_answers: int = 0
    churned_uris: int = 0
    storm_cycles: int = 0
    unread_requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    problem_counts: dict[str, int] = field(default_factory=dict)

    def error(self, exc: BaseException) -> None:
        self.failed_with_error += 1
        name = type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1

    def problem(self, text: str, kind: str = "other") -> None:
        """Count a broken promise; keep the first few texts of each kind."""
        seen = self.problem_counts.get(kind, 0)
        self.problem_counts[kind] = seen + 1
        if seen < 10:
            self.problems.append(f"[{kind}] {text}")


def pick_size(rng: random.Random) -> int:
    """A payload size between 1 KiB and 4 MiB, mostly small."""
    roll = rng.random()
    if roll < 0.70:
        return KIB
    if roll < 0.90:
        return 64 * KIB
    if roll < 0.97:
        return 512 * KIB
    if roll < 0.99:
        return rng.choice([1, 2]) * MIB
    return 4 * MIB


async def normal_connection(
    path: str,
    name: str,
    count: int,
    rng: random.Random,
    report: WorkerReport,
    handlers: bool = False,
) -> None:
    """A well-behaved client: ``count`` requests, up to 4 in flight.

    Echoes and delays; with ``handlers`` (the server loaded ``soak_handlers``)
    also threaded, async, failing and pushing handlers.
    """
    pushes: list[Any] = []
    client = AsyncIPCClient(
        path,
        request_timeout=60.0,
        connect_timeout=20.0,
        auto_reconnect=0,
        on_push=lambda message: pushes.append(message.get("data")),
    )
    try:
        await client.connect()
    except IPCError as exc:
        report.requests += count
        for _ in range(count):
            report.error(exc)
        report.problem(
            f"{name}: cannot connect: {exc!r}", f"error:{type(exc).__name__}"
        )
        return
    pushed: list[str] = []

    def wrong(token: str, what: str, result: Any) -> None:
        report.misdelivered += 1
        if isinstance(result, dict) and "pad" in result:
            result = {k: (v if k != "pad" else len(v)) for k, v in result.items()}
        report.problem(f"{token}: {what} answered {str(result)[:200]}", "misdelivered")

    async def one(index: int) -> None:
        token = f"{name}-r{index}"
        report.requests += 1
        roll = rng.random()
        try:
            if roll < 0.15:
                delay = rng.choice([0, 5, 20, 50, 150])
                result = await client.send(DELAY, {"delay": delay, "token": token})
                if result != {"delay": delay}:
                    return wrong(token, f"delay {delay}", result)
            elif handlers and roll < 0.35:
                uri, via = rng.choice(
                    [
                        ("/soak/threaded", "thread"),
                        ("/soak/async", "async"),
                        ("/soak/push", "push"),
                    ]
                )
                sleep = rng.choice([0, 0, 0.005, 0.02])
                result = await client.send(uri, {"token": token, "sleep": sleep})
                if result != {"token": token, "via": via}:
                    return wrong(token, uri, result)
                if via == "push":
                    pushed.append(token)
            elif handlers and roll < 0.40:
                # ERR-5: handler_error in data, without the exception's text.
                result = await client.send("/soak/fail", {"token": token})
                if (
                    not isinstance(result, dict)
                    or result.get("code") != "handler_error"
                ):
                    return wrong(token, "/soak/fail", result)
                if SECRET in json.dumps(result):
                    report.problem(
                        f"{token}: the handler's exception text reached the wire: {result}",
                        "err5_leak",
                    )
                    return
            else:
                size = pick_size(rng)
                result = await client.send(ECHO, {"token": token, "pad": "x" * size})
                if (
                    not isinstance(result, dict)
                    or result.get("token") != token
                    or len(result.get("pad", "")) != size
                ):
                    return wrong(token, f"echo of {size}", result)
                report.bytes_echoed += size
                report.largest = max(report.largest, size)
        except IPCError as exc:
            report.error(exc)
            report.problem(f"{token}: {exc!r}", f"error:{type(exc).__name__}")
            return
        report.answered += 1

    try:
        index = 0
        while index < count:
            batch = min(rng.randint(1, 4), count - index)
            await asyncio.gather(*(one(index + k) for k in range(batch)))
            index += batch
        # PUSH-1, PUSH-2: each push came once, to its own connection, and was
        # never taken for a response. A push is written before its response,
        # so all have arrived by now.
        report.pushes += len(pushes)
        if sorted(
            str(p.get("push") if isinstance(p, dict) else p) for p in pushes
        ) != sorted(pushed):
            report.problem(
                f"{name}: pushes {pushes[:5]} do not match the push requests {pushed[:5]}",
                "push",
            )
    finally:
        await client.close()


async def timeout_connection(
    path: str, name: str, rounds: int, report: WorkerReport
) -> None:
    """Lets requests time out, then checks their late answers reach nobody else (CORR-3, CORR-5)."""
    client = AsyncIPCClient(
        path, request_timeout=60.0, connect_timeout=20.0, auto_reconnect=0
    )
    try:
        await client.connect()
        for index in range(rounds):
            report.requests += 1
            try:
                result = await client.send(DELAY, {"delay": 200}, timeout=0.02)
            except RequestTimeout:
                report.timed_out_on_purpose += 1
            else:
                report.problem(
                    f"{name}: a 200 ms delay answered {result!r} within 20 ms",
                    "timeout_not_enforced",
                )
                report.answered += 1
            # The late {"delay": 200} arrives while these wait: it must not be taken for theirs.
            for sub in range(3):
                token = f"{name}-t{index}-{sub}"
                report.requests += 1
                echo = await client.send(ECHO, {"token": token})
                if echo != {"token": token}:
                    report.misdelivered += 1
                    report.problem(f"{token}: answered {str(echo)[:200]}")
                else:
                    report.answered += 1
                await asyncio.sleep(0.07)
    except IPCError as exc:
        report.error(exc)
        report.problem(f"{name}: {exc!r}", f"error:{type(exc).__name__}")
    finally:
        await client.close()


def _blocking_session(
    path: str, name: str, count: int, seed: float
) -> tuple[int, int, list[str]]:
    rng = random.Random(seed)
    answered = 0
    problems: list[str] = []
    with IPCClient(
        path, request_timeout=60.0, connect_timeout=20.0, auto_reconnect=0
    ) as client:
        for index in range(count):
            token = f"{name}-b{index}"
            size = rng.choice([KIB, KIB, 64 * KIB, 512 * KIB])
            try:
                result = client.send(ECHO, {"token": token, "pad": "b" * size})
            except IPCError as exc:
                problems.append(f"{token}: {exc!r}")
                continue
            if (
                not isinstance(result, dict)
                or result.get("token") != token
                or len(result.get("pad", "")) != size
            ):
                problems.append(f"{token}: misdelivered {str(result)[:100]}")
                continue
            answered += 1
    return count, answered, problems


def _shared_blocking_session(
    path: str, name: str, threads: int, count: int, seed: float
) -> tuple[int, int, list[str]]:
    """One IPCClient shared by several threads (its documented use), each checking its own tokens."""
    answered = 0
    problems: list[str] = []
    lock = threading.Lock()

    def run(thread_no: int, client: IPCClient) -> None:
        nonlocal answered
        rng = random.Random(seed + thread_no)
        for index in range(count):
            token = f"{name}-th{thread_no}-{index}"
            size = rng.choice([KIB, KIB, 16 * KIB, 256 * KIB])
            try:
                if rng.random() < 0.2:
                    delay = rng.choice([1, 10, 40])
                    result: Any = client.send(DELAY, {"delay": delay})
                    good = result == {"delay": delay}
                else:
                    result = client.send(ECHO, {"token": token, "pad": "h" * size})
                    good = (
                        isinstance(result, dict)
                        and result.get("token") == token
                        and len(result.get("pad", "")) == size
                    )
            except IPCError as exc:
                with lock:
                    problems.append(f"{token}: {exc!r}")
                continue
            with lock:
                if good:
                    answered += 1
                else:
                    problems.append(f"{token}: misdelivered {str(result)[:100]}")

    with IPCClient(
        path, request_timeout=60.0, connect_timeout=20.0, auto_reconnect=0
    ) as client:
        workers = [
            threading.Thread(target=run, args=(n, client)) for n in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
    return threads * count, answered, problems


async def shared_blocking_connection(
    path: str, name: str, count: int, rng: random.Random, report: WorkerReport
) -> None:
    """Four threads share one blocking client (FRAME-10, CORR-2)."""
    sent, answered, problems = await asyncio.to_thread(
        _shared_blocking_session, path, name, 4, count, rng.random()
    )
    report.requests += sent
    report.answered += answered
    for text in problems:
        if "misdelivered" in text:
            report.misdelivered += 1
            report.problem(text, "shared-blocking:misdelivered")
        else:
            report.failed_with_error += 1
            report.problem(text, "shared-blocking:error")


async def blocking_connection(
    path: str, name: str, count: int, rng: random.Random, report: WorkerReport
) -> None:
    """The blocking client, in a thread, beside the asyncio ones."""
    try:
        sent, answered, problems = await asyncio.to_thread(
            _blocking_session, path, name, count, rng.random()
        )
    except IPCError as exc:
        report.requests += count
        report.error(exc)
        report.problem(f"{name}: {exc!r}", f"error:{type(exc).__name__}")
        return
    report.requests += sent
    report.answered += answered
    for text in problems:
        if "misdelivered" in text:
            report.misdelivered += 1
        else:
            report.failed_with_error += 1
        report.problem(
            text, "blocking:" + ("misdelivered" if "misdelivered" in text else "error")
        )


async def open_unix(
    path: str, timeout: float = 30.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect like a blocking connect would: wait while the listen backlog is full.

    Linux answers a non-blocking AF_UNIX connect with EAGAIN when the backlog
    is full, and asyncio then hands back a socket that never connected. The
    test's own raw peers must not fail for that reason.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    deadline = loop.time() + timeout
    while True:
        try:
            sock.connect(path)
            break
        except BlockingIOError:
            if loop.time() > deadline:
                sock.close()
                raise TimeoutError(
                    f"the backlog of {path} stayed full for {timeout} s"
                ) from None
            await asyncio.sleep(0.01)
        except OSError:
            sock.close()
            raise
    return await asyncio.open_unix_connection(sock=sock, limit=16 * MIB)


class RawPeer:
    """A connection that speaks bytes; counts the answers to each id it sent."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.answers: dict[Any, list[dict[str, Any]]] = {}

    @classmethod
    async def open(cls, path: str) -> RawPeer:
        reader, writer = await open_unix(path)
        return cls(reader, writer)

    def send_request(self, request_id: str, uri: str, data: Any) -> None:
        line = json.dumps(
            {"ipcReqID": request_id, "uri": uri, "data": data}, separators=(",", ":")
        )
        self.writer.write(line.encode() + b"\n")

    async def read_message(self) -> dict[str, Any]:
        line = await self.reader.readuntil(b"\n")
        message = json.loads(line)
        assert isinstance(message, dict)
        self.answers.setdefault(message.get("ipcReqID"), []).append(message)
        return message

    async def read_until(self, request_id: str) -> dict[str, Any]:
        while True:
            message = await self.read_message()
            if message.get("ipcReqID") == request_id:
                return message

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


async def disconnecting_connection(
    path: str,
    name: str,
    rng: random.Random,
    report: WorkerReport,
    handlers: bool = False,
) -> None:
    """Sends a request and hangs up before the answer (LIFE-5), in one of several ways."""
    peer = await RawPeer.open(path)
    kind = rng.choice(
        ["slow", "partial", "big", "threaded"]
        if handlers
        else ["slow", "partial", "big"]
    )
    token = f"{name}-gone"
    report.requests += 1
    report.abandoned += 1
    if kind == "slow":
        peer.send_request(token, DELAY, {"delay": 300})
    elif kind == "partial":
        line = json.dumps(
            {"ipcReqID": token, "uri": ECHO, "data": {"pad": "y" * MIB}}
        ).encode()
        peer.writer.write(line[: len(line) // 2])
    elif kind == "threaded":
        # The handler is still running in its thread when the client is gone.
        peer.send_request(token, "/soak/threaded", {"token": token, "sleep": 0.2})
    else:
        peer.send_request(token, ECHO, {"pad": "z" * (4 * MIB)})
    try:
        await peer.writer.drain()
    except OSError:
        pass
    await asyncio.sleep(rng.uniform(0.0, 0.1))
    peer.writer.transport.abort()  # RST-like: no goodbye


async def garbage_connection(
    path: str, name: str, rounds: int, rng: random.Random, report: WorkerReport
) -> None:
    """Alternates garbage with good requests on one connection (FRAME-5, FRAME-6, LIMIT-6)."""
    peer = await RawPeer.open(path)
    try:
        for index in range(rounds):
            noise = bytes(
                rng.randrange(256) for _ in range(rng.randint(1, 300))
            ).replace(b"\n", b" ")
            bad_id = f"{name}-bad{index}"
            peer.writer.write(noise + b"\n")
            peer.writer.write(
                b'{"ipcReqID":"'
                + bad_id.encode()
                + b'","uri":'
                + noise[:20].replace(b'"', b"'")
                + b"\n"
            )
            token = f"{name}-g{index}"
            report.requests += 1
            peer.send_request(token, ECHO, {"token": token})
            await peer.writer.drain()
            answer = await asyncio.wait_for(peer.read_until(token), 60)
            if answer.get("data") != {"token": token}:
                report.misdelivered += 1
                report.problem(f"{token}: answered {str(answer)[:200]}")
            else:
                report.answered += 1
            bad = peer.answers.get(bad_id, [])
            if len(bad) != 1 or bad[0].get("code") != "bad_json":
                report.problem(
                    f"{bad_id}: expected one bad_json answer, got {str(bad)[:200]}"
                )
            else:
                report.bad_json_answers += 1
        for request_id, answers in peer.answers.items():
            if request_id is not None and len(answers) != 1:
                report.duplicates += len(answers) - 1
                report.problem(f"{request_id}: answered {len(answers)} times")
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
        report.error(exc)
        report.problem(
            f"{name}: garbage connection failed: {exc!r}", f"error:{type(exc).__name__}"
        )
    finally:
        await peer.close()


async def slow_reader_connection(
    path: str, name: str, count: int, pause: float, report: WorkerReport
) -> None:
    """Pipelines ``count`` 256 KiB echoes, reads nothing for ``pause`` s, then reads all (LIMIT-5)."""
    peer = await RawPeer.open(path)
    tokens = [f"{name}-s{i}" for i in range(count)]
    size = 256 * KIB
    drained: asyncio.Future[None] | None = None
    try:
        for token in tokens:
            report.requests += 1
            peer.send_request(token, ECHO, {"token": token, "pad": "s" * size})
        # The server may stop reading (LIMIT-5), so our writes may not finish while we do not read.
        drained = asyncio.ensure_future(peer.writer.drain())
        await asyncio.sleep(pause)
        got: dict[str, int] = {}
        while len(got) < count:
            message = await asyncio.wait_for(peer.read_message(), 60)
            request_id = message.get("ipcReqID")
            data = message.get("data")
            if (
                request_id not in tokens
                or not isinstance(data, dict)
                or data.get("token") != request_id
            ):
                report.misdelivered += 1
                report.problem(f"{name}: unexpected answer {str(message)[:200]}")
                break
            if request_id in got:
                report.duplicates += 1
                report.problem(f"{request_id}: answered twice")
            got[request_id] = got.get(request_id, 0) + 1
            if len(data.get("pad", "")) == size:
                report.answered += 1
                report.bytes_echoed += size
        await drained
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
        report.error(exc)
        report.problem(
            f"{name}: slow reader failed: {exc!r}", f"error:{type(exc).__name__}"
        )
    finally:
        if drained is not None:
            if drained.done() and not drained.cancelled():
                drained.exception()  # already reported above if it failed
            else:
                drained.cancel()
        await peer.close()


@dataclass(frozen=True)
class WorkerPlan:
    """How much load one worker puts on the server."""

    worker: int
    path: str
    # Clients of every kind below but the shared blocking one (one more).
    connections: int = 50
    requests_per_connection: int = 8
    disconnecting: int = 4
    garbage: int = 3
    slow_readers: int = 3
    slow_count: int = 12
    slow_pause: float = 1.5
    timeouts: int = 2
    blocking: int = 3
    shared_blocking: int = 1
    handlers: bool = True
    # Hostile peers, each on top of ``connections``.
    floods: int = 1
    churners: int = 1
    storms: int = 1
    non_readers: int = 1
    seed: int = 0


# --- hostile peers ---------------------------------------------------------------


async def flood_connection(
    path: str, name: str, lines: int, report: WorkerReport
) -> None:
    """Writes ``lines`` lines of ``{`` in one go: each is a malformed message answered bad_json."""
    reader, writer = await open_unix(path)
    report.flood_lines += lines
    writer.write(b"{\n" * lines)
    # The server may stop reading until its answers are read: drain meanwhile.
    drained = asyncio.ensure_future(writer.drain())
    answers = 0
    try:
        while answers < lines:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), 60)
            message = json.loads(line)
            if message.get("code") != "bad_json" or message.get("ipcReqID") is not None:
                report.problem(f"{name}: a flood line answered {line[:200]!r}", "flood")
                break
            answers += 1
        await drained
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
        report.problem(
            f"{name}: flood failed after {answers} answers: {exc!r}", "flood"
        )
    finally:
        if not drained.done():
            drained.cancel()
        report.flood_answers += answers
        writer.close()


async def churn_connection(
    path: str, name: str, count: int, rng: random.Random, report: WorkerReport
) -> None:
    """Requests ``count`` distinct uris of up to 1 MiB that no handler matches."""
    peer = await RawPeer.open(path)
    try:
        for index in range(count):
            uri = f"/soak/churn/{name}/{index}/" + "c" * rng.choice(
                [KIB, 64 * KIB, MIB]
            )
            peer.send_request(f"{name}-u{index}", uri, None)
            answer = await asyncio.wait_for(peer.read_until(f"{name}-u{index}"), 60)
            data = answer.get("data")
            if (
                not isinstance(data, dict)
                or data.get("code") != "no_handler_found"
                or uri not in data["message"]
            ):
                report.problem(
                    f"{name}: uri {index} answered {str(answer)[:200]}", "churn"
                )
            report.churned_uris += 1
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
        report.problem(f"{name}: churn failed: {exc!r}", "churn")
    finally:
        await peer.close()


async def storm_connection(
    path: str, name: str, cycles: int, report: WorkerReport
) -> None:
    """Connects, sends a minute-long delay request and closes at once, ``cycles`` times."""
    line = json.dumps(
        {"ipcReqID": f"{name}-storm", "uri": DELAY, "data": {"delay": 60_000}}
    ).encode()
    for _ in range(cycles):
        try:
            _, writer = await open_unix(path)
        except (OSError, TimeoutError) as exc:
            report.problem(f"{name}: storm cannot connect: {exc!r}", "storm")
            return
        writer.write(line + b"\n")
        writer.close()
        report.storm_cycles += 1


async def non_reader_connection(
    path: str, name: str, count: int, report: WorkerReport
) -> None:
    """Pipelines ``count`` requests answered by a task each, reads nothing, and hangs up."""
    _, writer = await open_unix(path)
    line = (
        json.dumps(
            {"ipcReqID": f"{name}-nr", "uri": DELAY, "data": {"delay": 1}}
        ).encode()
        + b"\n"
    )
    writer.write(line * count)
    report.unread_requests += count
    await asyncio.sleep(1.5)
    writer.transport.abort()


async def run_worker(plan: WorkerPlan) -> WorkerReport:
    """Open every connection of the plan at once and wait for them all."""
    rng = random.Random(plan.seed * 1000 + plan.worker)
    report = WorkerReport()
    special = (
        plan.disconnecting
        + plan.garbage
        + plan.slow_readers
        + plan.timeouts
        + plan.blocking
    )
    normal = plan.connections - special
    tasks = []
    prefix = f"s{plan.seed}w{plan.worker}"
    for index in range(normal):
        sub = random.Random(rng.random())
        tasks.append(
            normal_connection(
                plan.path,
                f"{prefix}c{index}",
                plan.requests_per_connection,
                sub,
                report,
                plan.handlers,
            )
        )
    for index in range(plan.disconnecting):
        tasks.append(
            disconnecting_connection(
                plan.path,
                f"{prefix}d{index}",
                random.Random(rng.random()),
                report,
                plan.handlers,
            )
        )
    for index in range(plan.garbage):
        tasks.append(
            garbage_connection(
                plan.path, f"{prefix}g{index}", 5, random.Random(rng.random()), report
            )
        )
    for index in range(plan.slow_readers):
        tasks.append(
            slow_reader_connection(
                plan.path, f"{prefix}s{index}", plan.slow_count, plan.slow_pause, report
            )
        )
    for index in range(plan.timeouts):
        tasks.append(timeout_connection(plan.path, f"{prefix}t{index}", 3, report))
    for index in range(plan.blocking):
        sub = random.Random(rng.random())
        tasks.append(
            blocking_connection(
                plan.path,
                f"{prefix}b{index}",
                plan.requests_per_connection,
                sub,
                report,
            )
        )
    for index in range(plan.shared_blocking):
        sub = random.Random(rng.random())
        tasks.append(
            shared_blocking_connection(
                plan.path,
                f"{prefix}h{index}",
                plan.requests_per_connection,
                sub,
                report,
            )
        )
    # The clients, well-behaved or faulty, the shared blocking one included;
    # the hostile peers below are counted apart.
    report.connections = len(tasks)
    for index in range(plan.floods):
        tasks.append(flood_connection(plan.path, f"{prefix}f{index}", 32 * KIB, report))
    for index in range(plan.churners):
        tasks.append(
            churn_connection(
                plan.path, f"{prefix}u{index}", 4, random.Random(rng.random()), report
            )
        )
    for index in range(plan.storms):
        tasks.append(storm_connection(plan.path, f"{prefix}x{index}", 100, report))
    for index in range(plan.non_readers):
        tasks.append(
            non_reader_connection(plan.path, f"{prefix}n{index}", 4_000, report)
        )
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            report.problem(f"connection task raised {result!r}")
    return report


def worker_main(plan: WorkerPlan) -> dict[str, Any]:
    """Entry point of a worker process."""
    started = time.monotonic()
    report = asyncio.run(run_worker(plan))
    result = asdict(report)
    result["seconds"] = round(time.monotonic() - started, 2)
    return result
