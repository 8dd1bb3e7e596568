"""A hostile local peer against a real server process: budgets, and ways to hold or crash a server.

The socket's default mode lets any local user talk to the server, so none of
these may take it down or hold it: each test runs ``pixl-ipc serve`` in its
own process, attacks it the way a peer on the machine could, and checks what
every other client sees, the server's memory and descriptors, and its log.
The attacks themselves are in ``hostile_probes.py`` (standard library only,
usable against any server).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hostile_probes import (
    DELAY,
    ECHO,
    LineReader,
    connect,
    connect_send_close_storm,
    echo_round_trip,
    partial_lines,
    pipelined_without_reading,
    request_line,
    straddling_id_line,
    tiny_line_flood,
    watching_latency,
)
from support import Server, start_server, wait_until

MIB = 1024 * 1024
# The start of a log record of pixl-ipc serve: "2026-12-07 11:18:21,804 ERROR ...".
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")
HERE = Path(__file__).resolve().parent
HANDLERS = str(HERE / "hostile_handlers.py")


def serve(
    servers: list[Server], path: Path, *args: str, prefix: tuple[str, ...] = ()
) -> Server:
    server = start_server(str(path), *args, prefix=prefix)
    servers.append(server)
    return server


def stats(path: str) -> dict[str, Any]:
    with connect(path) as sock:
        sock.sendall(request_line("stats", "/ipcserver/stats"))
        answer, _ = LineReader(sock).until("stats")
    data = answer["data"]
    assert isinstance(data, dict)
    return data


def settled(read: Any, timeout: float = 10.0) -> Any:
    """A reading (RSS, descriptors) once it has stopped changing for 0.3 s."""
    last = read()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = read()
        if now == last:
            return now
        last = now
    return last


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise RuntimeError(key)


# --- 1. the socket's mode and a symlink swapped in while starting (SEC-1, LIFE-6) ---------------


needs_inotify = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="needs inotify (Linux)"
)


@needs_inotify
def test_the_socket_mode_never_reaches_a_file_behind_a_symlink_swapped_in_while_starting(
    short_tmp: Path,
) -> None:
    # An attacker who can write the socket's directory renames a symlink to a
    # victim file over the socket the moment bind creates it. A server that
    # then chmods the path changes the victim's mode (as root, any file's).
    victim = short_tmp / "victim"
    victim.write_text("secret\n")
    victim.chmod(0o600)
    path = str(short_tmp / "s.sock")
    race = str(HERE / "socket_race.py")
    seconds = 3.0
    attacker = subprocess.Popen(
        [sys.executable, race, "attack", path, str(victim), str(seconds + 1)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.2)
        starts = subprocess.run(
            [sys.executable, race, "start", path, str(victim), str(seconds)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        swaps = attacker.communicate(timeout=30)[0].strip()
    assert starts.returncode == 0, starts.stderr[-2000:]
    result = json.loads(starts.stdout)
    print(f"\nsocket race: {result} attacker_swaps={swaps}")
    assert int(swaps) > 0, "the attacker never swapped: the test proves nothing"
    assert result["victim_changed"] == 0, result
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    # A start that lost the race says so (it does not serve on an unlinked socket).
    assert all(
        "while starting" in m or "symbolic link" in m for m in result["messages"]
    ), result


# --- 2. the routing cache and huge distinct uris ---------------------------------------------------


def test_distinct_huge_uris_are_not_kept_once_answered(
    short_tmp: Path, servers: list[Server]
) -> None:
    # The original measurement: 16 distinct 60 MiB uris took RSS from 26 to
    # 986 MiB, never given back (the routing cache kept every uri).
    path = short_tmp / "u.sock"
    server = serve(servers, path)
    echo_round_trip(str(path), "warm")
    baseline = settled(server.rss)
    size = 24 * MIB
    with connect(str(path), 60) as sock:
        reader = LineReader(sock)
        for n in range(8):
            uri = f"/nothing/{n}/" + "u" * size
            sock.sendall(request_line(f"u{n}", uri))
            answer = reader.message(60)
            assert answer["ipcReqID"] == f"u{n}"
            assert answer["data"]["code"] == "no_handler_found"
    after = settled(server.rss, 15)
    growth = (after - baseline) / MIB
    print(
        f"\nuri churn: 8 uris of {size // MIB} MiB, rss growth after {growth:.1f} MiB"
    )
    assert growth < 48, (
        f"RSS stayed {growth:.0f} MiB above its start after 8 uris of 24 MiB"
    )
    assert echo_round_trip(str(path), "after") < 10


# --- 3. a closed connection is not a half-closed one (LIFE-2, LIFE-5) ------------------------------


def test_connect_send_close_storms_do_not_use_up_descriptors(
    short_tmp: Path, servers: list[Server]
) -> None:
    # Each cycle leaves a year-long delay request behind and closes at once.
    # A server that keeps such connections until their handlers finish runs
    # out of descriptors (here 512) and refuses everyone after.
    path = short_tmp / "storm.sock"
    server = serve(servers, path, prefix=("prlimit", "--nofile=512:512", "--"))
    echo_round_trip(str(path), "warm")
    fds_before = settled(server.fds)
    connected = connect_send_close_storm(str(path), 3000)
    assert connected == 3000
    assert echo_round_trip(str(path), "after-storm", timeout=10) < 10
    assert wait_until(lambda: server.fds() <= fds_before + 2, 15), (
        f"{server.fds()} fds, {fds_before} before"
    )
    # Their handlers were cancelled: nothing is left in progress.
    assert wait_until(lambda: stats(str(path))["inflight"] == 0, 15), stats(str(path))
    print(f"\nstorm: cycles=3000 fds_before={fds_before} fds_after={server.fds()}")


def test_a_peer_gone_for_good_is_let_go_and_a_half_closed_one_is_answered(
    short_tmp: Path, servers: list[Server]
) -> None:
    path = short_tmp / "gone.sock"
    server = serve(servers, path)
    echo_round_trip(str(path), "warm")
    fds_before = settled(server.fds)
    # Half-closed (LIFE-2): the delay is answered, then the server closes.
    half = connect(str(path), 30)
    half.sendall(request_line("h1", DELAY, {"delay": 800}))
    half.shutdown(socket.SHUT_WR)
    # Gone for good: the descriptor is freed at once, the task cancelled.
    gone = connect(str(path), 30)
    gone.sendall(request_line("g1", DELAY, {"delay": 600_000}))
    echo_round_trip(str(path), "mark")  # both requests are read by now
    gone.close()
    assert wait_until(lambda: server.fds() <= fds_before + 1, 10), server.fds()
    assert wait_until(lambda: stats(str(path))["inflight"] <= 1, 10)
    reader = LineReader(half)
    assert reader.message(10) == {"ipcReqID": "h1", "data": {"delay": 800}}
    with pytest.raises(EOFError):
        reader.message(10)
    half.close()
    assert wait_until(lambda: server.fds() <= fds_before, 10)


def test_a_half_closed_connection_waits_for_its_answers_no_longer_than_the_grace_period(
    short_tmp: Path, servers: list[Server]
) -> None:
    # LIFE-2 with a bound: a minute-long request from a peer that half-closed
    # does not keep its connection past close_grace.
    path = short_tmp / "grace.sock"
    server = serve(servers, path, "--close-grace-ms", "1000")
    echo_round_trip(str(path), "warm")
    fds_before = settled(server.fds)
    with connect(str(path), 30) as sock:
        sock.sendall(request_line("long", DELAY, {"delay": 60_000}))
        sock.sendall(request_line("short", ECHO, "s"))
        sock.shutdown(socket.SHUT_WR)
        reader = LineReader(sock)
        started = time.monotonic()
        assert reader.message(10) == {"ipcReqID": "short", "data": "s"}
        with pytest.raises(EOFError):
            reader.message(30)
        waited = time.monotonic() - started
    assert 0.5 < waited < 20, waited
    assert wait_until(lambda: server.fds() <= fds_before, 10)
    assert wait_until(lambda: stats(str(path))["inflight"] == 0, 10)


# --- 4. a peer that never reads, with async handlers (LIMIT-5) -------------------------------------


def test_a_peer_that_never_reads_costs_what_its_answers_weigh_with_async_handlers(
    short_tmp: Path, servers: list[Server]
) -> None:
    # The delay built-in answers from a task: each answer is a small write of
    # its own. The original measurement: about 134 MiB per such connection.
    path = short_tmp / "noread.sock"
    server = serve(servers, path)
    echo_round_trip(str(path), "warm")
    baseline = settled(server.rss)
    count = 100_000
    sock = pipelined_without_reading(
        str(path), count, request_line("d", DELAY, {"delay": 1})
    )
    try:
        peak = baseline
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            peak = max(peak, server.rss())
            time.sleep(0.05)
        assert echo_round_trip(str(path), "others", timeout=10) < 10  # LIMIT-6
        growth = (peak - baseline) / MIB
        print(
            f"\nnon-reading peer, async answers: requests={count} rss_growth_mib={growth:.1f}"
        )
        assert growth < 16, f"RSS grew {growth:.0f} MiB for a peer that does not read"
        reader = LineReader(sock)
        for _ in range(count):
            assert reader.message(60) == {"ipcReqID": "d", "data": {"delay": 1}}
    finally:
        sock.close()


# --- 5. floods of tiny lines ----------------------------------------------------------------------------


def test_a_flood_of_tiny_lines_neither_balloons_the_server_nor_stalls_the_others(
    short_tmp: Path, servers: list[Server]
) -> None:
    # One 256 KiB write of "{\n" lines: 131,072 malformed messages, each
    # answered bad_json. The original measurement: peak RSS about 550 MiB and
    # every other client stalled for the whole flood (1.2 to 1.5 s).
    path = short_tmp / "flood.sock"
    server = serve(servers, path)
    echo_round_trip(str(path), "warm")
    baseline = status_kib(server.pid, "VmRSS:")
    with watching_latency(str(path)) as watch:
        time.sleep(0.2)
        answered, seconds = tiny_line_flood(str(path), 256 * 1024)
        time.sleep(0.2)
    peak = status_kib(server.pid, "VmHWM:")
    growth = (peak - baseline) / 1024
    worst = max(watch.samples, default=float("nan"))
    print(
        f"\ntiny-line flood: lines=131072 answered={answered} flood_seconds={seconds:.2f} "
        f"peak_growth_mib={growth:.1f} other_client: samples={len(watch.samples)} "
        f"p99_ms={watch.percentile(0.99) * 1000:.1f} max_ms={worst * 1000:.1f}"
    )
    assert watch.errors == []
    assert answered == 131_072
    assert growth < 64, f"peak RSS {growth:.0f} MiB above the start"
    # The other client is served while the flood is: its slowest round trip is
    # a small part of the flood's duration (measured in the same run, so the
    # machine's load counts on both sides).
    assert worst < seconds / 4, (worst, seconds)


def test_a_flood_of_tiny_lines_whose_sender_never_reads_stays_bounded(
    short_tmp: Path, servers: list[Server]
) -> None:
    # The answers are 50 times the input: the server stops taking lines while
    # the unsent ones pass the mark.
    path = short_tmp / "flood2.sock"
    server = serve(servers, path)
    echo_round_trip(str(path), "warm")
    baseline = status_kib(server.pid, "VmRSS:")
    sock = pipelined_without_reading(str(path), 2 * MIB, b"{\n")
    try:
        time.sleep(3)
        assert echo_round_trip(str(path), "others", timeout=10) < 10
        growth = (status_kib(server.pid, "VmHWM:") - baseline) / 1024
        print(f"\nnon-reading flood: lines={2 * MIB} peak_growth_mib={growth:.1f}")
        assert growth < 32, growth
    finally:
        sock.close()
    assert echo_round_trip(str(path), "after") < 10


# --- 6. server-wide budgets (LIMIT-7) -----------------------------------------------------------------


def test_unfinished_lines_of_many_peers_stay_within_the_byte_budget(
    short_tmp: Path, servers: list[Server]
) -> None:
    # Six peers each hold 48 MiB of an unfinished line: 288 MiB, past the
    # default budget of 192 MiB. Those that do not fit get server_busy with
    # their id, and their connection goes on.
    path = short_tmp / "bytes.sock"
    server = serve(servers, path)
    echo_round_trip(str(path), "warm")
    baseline = settled(server.rss)
    size = 48 * MIB
    socks = partial_lines(str(path), 6, size, uri="/nothing")
    try:
        time.sleep(1.0)
        growth = (server.rss() - baseline) / MIB
        outcomes: dict[str, str] = {}
        for index, sock in enumerate(socks):
            sock.sendall(b'"}\n' + request_line(f"next{index}", ECHO, index))
            reader = LineReader(sock)
            answer, before = reader.until(f"next{index}", 60)
            assert answer == {"ipcReqID": f"next{index}", "data": index}
            assert len(before) == 1, before
            reply = before[0]
            assert reply["ipcReqID"] == f"hoard{index}"
            outcomes[reply["ipcReqID"]] = reply.get("code") or reply["data"]["code"]
        print(
            f"\nbyte budget: 6 x 48 MiB unfinished lines, rss_growth_mib={growth:.1f}, outcomes={outcomes}"
        )
        busy = [k for k, v in outcomes.items() if v == "server_busy"]
        assert 2 <= len(busy) <= 3, outcomes
        assert all(
            v in ("server_busy", "no_handler_found") for v in outcomes.values()
        ), outcomes
        assert growth < 192 + 48, f"{growth:.0f} MiB held for unfinished lines"
        assert stats(str(path))["serverBusy"] == len(busy)
    finally:
        for sock in socks:
            sock.close()


def test_the_connection_budget_closes_half_closed_connections_first_then_answers_server_busy(
    short_tmp: Path, servers: list[Server]
) -> None:
    path = short_tmp / "conns.sock"
    serve(servers, path, "--max-connections", "40")
    idle = [connect(str(path)) for _ in range(30)]
    half = []
    for n in range(10):
        sock = connect(str(path))
        sock.sendall(request_line(f"half{n}", DELAY, {"delay": 60_000}))
        sock.shutdown(socket.SHUT_WR)
        half.append(sock)
    try:
        assert wait_until(lambda: stats_via(idle[0])["connections"] == 40, 10)
        # Ten newcomers: each takes the place of the oldest half-closed connection.
        newcomers = [connect(str(path)) for _ in range(10)]
        for n, sock in enumerate(newcomers):
            sock.sendall(request_line(f"new{n}", ECHO, n))
            assert LineReader(sock).message(10) == {"ipcReqID": f"new{n}", "data": n}
        for sock in half:
            with pytest.raises(EOFError):
                LineReader(sock).message(10)
        # Nothing half-closed is left: the next one is refused.
        with connect(str(path)) as extra:
            reader = LineReader(extra)
            refusal = reader.message(10)
            assert refusal["ipcReqID"] is None and refusal["code"] == "server_busy"
            assert "data" not in refusal and isinstance(refusal["message"], str)
            with pytest.raises(EOFError):
                reader.message(10)
        # Room again once a client leaves.
        idle.pop().close()
        assert wait_until(lambda: _served(str(path)), 10)
        for sock in newcomers:
            sock.close()
    finally:
        for sock in idle + half:
            sock.close()


def stats_via(sock: socket.socket) -> dict[str, Any]:
    sock.sendall(request_line("stats", "/ipcserver/stats"))
    answer, _ = LineReader(sock).until("stats")
    data = answer["data"]
    assert isinstance(data, dict)
    return data


def _served(path: str) -> bool:
    try:
        echo_round_trip(path, "room", timeout=5)
    except (OSError, EOFError, KeyError, AssertionError):
        return False
    return True


def _limits(pid: int) -> str:
    return next(
        line
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
        if "open files" in line
    )


def test_the_soft_descriptor_limit_is_raised_at_start(
    short_tmp: Path, servers: list[Server]
) -> None:
    server = serve(
        servers,
        short_tmp / "nofile.sock",
        prefix=("prlimit", "--nofile=256:20000", "--"),
    )
    soft = int(_limits(server.pid).split()[3])
    assert soft >= 10_000 + 64, _limits(server.pid)


def test_running_out_of_descriptors_is_logged_once_a_second_and_accepting_resumes(
    short_tmp: Path, servers: list[Server]
) -> None:
    path = short_tmp / "emfile.sock"
    server = serve(
        servers,
        path,
        "--handlers",
        HANDLERS,
        "--log-level",
        "INFO",
        prefix=("prlimit", "--nofile=256:256", "--"),
    )
    keeper = connect(str(path))
    keeper.sendall(request_line("hog", "/hostile/hog", {}))
    reader = LineReader(keeper)
    assert reader.message(10)["ipcReqID"] == "hog"
    # No descriptor left: connections wait in the backlog, unaccepted.
    started = time.monotonic()
    waiting = []
    while time.monotonic() < started + 3.2:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(request_line("w", ECHO, "waited"))
        waiting.append(sock)
        time.sleep(0.1)
    logged = [
        line for line in server.stderr_lines if "cannot accept connections" in line
    ]
    assert 1 <= len(logged) <= 5, logged
    keeper.sendall(request_line("unhog", "/hostile/unhog", {}))
    assert reader.until("unhog")[0]["data"] == 0
    # Descriptors are back: every waiting connection is accepted and served.
    for sock in waiting:
        assert LineReader(sock).message(10) == {"ipcReqID": "w", "data": "waited"}
        sock.close()
    print(
        f"\nEMFILE: {len(waiting)} connections waited {time.monotonic() - started:.1f} s; {len(logged)} log lines"
    )
    keeper.close()


# --- 7. allocation failures (ulimit -v) -------------------------------------------------------------


def test_running_out_of_memory_costs_one_connection_not_the_server(
    short_tmp: Path, servers: list[Server]
) -> None:
    # Under a 300 MiB address-space limit, four 60 MiB echoes at once cannot
    # all fit. Each may be answered, refused server_busy or closed; the
    # server stays up, says so in one line, and serves the next client.
    path = short_tmp / "mem.sock"
    server = serve(
        servers,
        path,
        "--log-level",
        "INFO",
        prefix=("prlimit", f"--as={300 * MIB}", "--"),
    )
    size = 60 * MIB
    outcomes: list[str] = []

    def big(index: int) -> None:
        try:
            with connect(str(path), 60) as sock:
                token = f"big{index}"
                sock.sendall(request_line(token, ECHO, "x" * size))
                answer = LineReader(sock).message(60)
        except (OSError, EOFError) as exc:
            outcomes.append(f"closed ({type(exc).__name__})")
            return
        if answer.get("code") == "server_busy":
            outcomes.append("server_busy")
        else:
            assert answer == {"ipcReqID": token, "data": "x" * size}
            outcomes.append("answered")

    threads = [threading.Thread(target=big, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert server.proc.poll() is None, (
        f"the server died with status {server.proc.returncode}\n{server.log()}"
    )
    assert echo_round_trip(str(path), "after", timeout=10) < 10
    log = "\n".join(server.stderr_lines)
    print(
        f"\nout of memory: outcomes={sorted(outcomes)} outOfMemory={stats(str(path)).get('outOfMemory')}"
    )
    assert len(outcomes) == 4
    assert "Traceback" not in log and "Fatal error" not in log, log[-3000:]
    if any(o.startswith("closed") for o in outcomes):
        assert "out of memory while serving the connection" in log
        assert stats(str(path))["outOfMemory"] >= 1


# --- 8. CORR-6: an id cut at byte 4096 ----------------------------------------------------------------


@pytest.mark.parametrize(
    "oversize", [False, True], ids=["bad-json", "message-too-large"]
)
def test_an_id_cut_at_byte_4096_is_never_taken_for_another_requests_id(
    short_tmp: Path, servers: list[Server], oversize: bool
) -> None:
    # "ipcReqID":12345 straddles byte 4096: recovering "12" would fail the
    # unrelated pending request 12. The whole id or none.
    path = short_tmp / "corr6.sock"
    serve(servers, path, "--max-message-bytes", str(16 * MIB))
    line = straddling_id_line(12345)
    if oversize:
        line = line[:-1] + b" " * (16 * MIB) + b"\n"
    with connect(str(path), 60) as sock:
        reader = LineReader(sock)
        sock.sendall(request_line(12, DELAY, {"delay": 1500}))
        sock.sendall(line)
        error = reader.message(30)
        assert error["code"] == ("message_too_large" if oversize else "bad_json"), error
        assert error["ipcReqID"] is None, error
        assert reader.message(30) == {"ipcReqID": 12, "data": {"delay": 1500}}


# --- 9. signals ------------------------------------------------------------------------------------------


def test_sighup_and_sigusr1_are_logged_and_the_server_keeps_serving(
    short_tmp: Path, servers: list[Server]
) -> None:
    path = short_tmp / "sig.sock"
    server = serve(servers, path)  # the default log level: WARNING
    echo_round_trip(str(path), "one")
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(
        lambda: any("received SIGHUP" in line for line in server.stderr_lines), 10
    ), server.log()
    assert server.proc.poll() is None
    assert echo_round_trip(str(path), "after-hup") < 10
    server.proc.send_signal(signal.SIGUSR1)
    assert wait_until(
        lambda: any("received SIGUSR1" in line for line in server.stderr_lines), 10
    ), server.log()
    line = next(line for line in server.stderr_lines if "received SIGUSR1" in line)
    # The statistics as JSON, the object /ipcserver/stats answers.
    stats = json.loads(line.split("received SIGUSR1: stats: ", 1)[1])
    assert stats["totalRequests"] in (2, 3), line
    assert echo_round_trip(str(path), "after-usr1") < 10
    assert len([line for line in server.stderr_lines if "SIGHUP" in line]) == 1
    assert server.stop(signal.SIGTERM) == 0
    assert not os.path.lexists(path)


def test_sigquit_drains_like_sigterm(short_tmp: Path, servers: list[Server]) -> None:
    path = short_tmp / "quit.sock"
    server = serve(servers, path)
    with connect(str(path)) as sock:
        reader = LineReader(sock)
        sock.sendall(request_line("slow", DELAY, {"delay": 500}))
        sock.sendall(request_line("mark", ECHO, 1))
        assert reader.message(10) == {"ipcReqID": "mark", "data": 1}
        server.proc.send_signal(signal.SIGQUIT)
        assert reader.message(10) == {"ipcReqID": "slow", "data": {"delay": 500}}
        with pytest.raises(EOFError):
            reader.message(10)
    assert server.proc.wait(10) == 0
    assert not os.path.lexists(path)


# --- 10. log forging ----------------------------------------------------------------------------------


def test_a_uri_with_newlines_cannot_write_lines_of_its_own_into_the_log(
    short_tmp: Path, servers: list[Server]
) -> None:
    path = short_tmp / "log.sock"
    server = serve(servers, path, "--handlers", HANDLERS)
    forged = "2026-01-01 00:00:00,000 CRITICAL pixl_ipc.server: forged"
    for n, uri in enumerate(
        [
            f"/hostile/fail\n{forged} by newline",
            f"/hostile/fail\r\n{forged} by CRLF",
            f"/hostile/fail\u2028{forged}",
        ]
    ):
        with connect(str(path)) as sock:
            sock.sendall(request_line(f"f{n}", uri))
            answer = LineReader(sock).message(10)
        assert answer["data"]["code"] == "handler_error"

    # Three failures, three records; the peer's text is escaped or indented
    # under its record, never at the start of a line.
    def records() -> list[str]:
        return [x for x in server.stderr_lines if RECORD.match(x)]

    assert wait_until(lambda: len(records()) >= 3, 10), server.log()
    time.sleep(0.2)
    assert len(records()) == 3, server.log()
    assert all(
        " ERROR pixl_ipc.server: handler for /hostile/fail" in x for x in records()
    ), server.log()
    assert all(
        RECORD.match(x) or x.startswith(("    | ", "listening on"))
        for x in server.stderr_lines
    )


# --- LIFE-8: the server's close is a half-close, as the original's socket.end() -------------------------


def test_close_connections_half_closes_and_lets_go_after_the_grace_period(
    short_tmp: Path, servers: list[Server]
) -> None:
    path = short_tmp / "end.sock"
    server = serve(servers, path, "--handlers", HANDLERS, "--close-grace-ms", "1500")
    echo_round_trip(str(path), "warm")
    fds_idle = settled(server.fds)
    client = connect(str(path))
    client.sendall(request_line("one", ECHO, 1))
    reader = LineReader(client)
    assert reader.message(10) == {"ipcReqID": "one", "data": 1}
    with connect(str(path)) as other:
        # Its own connection is closed too, before its answer: no answer.
        other.sendall(request_line("bye", "/hostile/close-all"))
        with pytest.raises(EOFError):
            LineReader(other).message(10)
    # What the original PHP client depends on: its next write succeeds, and
    # its read then sees end of stream (it reports 5005 and reconnects).
    client.sendall(request_line("two", ECHO, 2))
    with pytest.raises(EOFError):
        reader.message(10)
    client.sendall(request_line("three", ECHO, 3))  # still accepted, and discarded
    assert server.fds() > fds_idle
    # After the grace period the server closes its side for good.
    assert wait_until(lambda: server.fds() <= fds_idle, 10), server.fds()
    with pytest.raises(OSError):
        for _ in range(3):
            client.sendall(request_line("four", ECHO, 4))
            time.sleep(0.05)
    client.close()
    assert echo_round_trip(str(path), "fresh") < 10
