"""LineDecoder as the server uses it: lines a batch at a time (LIMIT-5), unfinished lines in a byte budget (LIMIT-7).

Every stream is checked against the same stream fed whole, as the core
tests feed theirs whole, one byte at a time and with trailing data.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from pixl_ipc.framing import LineDecoder, OversizeLine, RefusedLine

PIECES = [b"{}", b"", b"\r", b"a" * 50, b"b" * 1500, b"c" * 5000, b"x\r", b'{"k":1}']


def _same(got: list[Any], want: list[Any]) -> None:
    assert [type(e) for e in got] == [type(e) for e in want]
    for g, w in zip(got, want, strict=True):
        if isinstance(g, bytes):
            assert g == w
        else:
            # An oversize line's head is what was seen when it passed the limit.
            assert g.head.startswith(w.head[: len(g.head)]) or w.head.startswith(g.head)


@pytest.mark.parametrize("seed", range(40))
def test_lines_taken_in_batches_are_the_lines_fed_whole(seed: int) -> None:
    rng = random.Random(seed)
    stream = b"".join(
        rng.choice(PIECES) + rng.choice([b"\n", b"\r\n", b""])
        for _ in range(rng.randint(1, 60))
    )
    limit = rng.choice([8, 100, 2000, 10_000])
    want = LineDecoder(limit).feed(stream)
    decoder = LineDecoder(limit)
    got: list[Any] = []
    pos = 0
    while pos < len(stream):
        size = rng.randint(1, 3000)
        decoder.push(stream[pos : pos + size])
        pos += size
        while decoder.has_unread and rng.random() < 0.7:
            batch = decoder.next_lines(rng.randint(1, 5))
            got.extend(batch)
    while decoder.has_unread:
        got.extend(decoder.next_lines(3))
    _same(got, want)


def test_next_lines_takes_no_more_than_asked_and_keeps_the_rest() -> None:
    decoder = LineDecoder(100)
    decoder.push(b"{\n" * 1000 + b'{"partial"')
    assert decoder.next_lines(256) == [b"{"] * 256
    assert decoder.has_unread
    assert len(decoder.next_lines(1000)) == 744
    assert not decoder.has_unread
    assert decoder.buffered == len(b'{"partial"')
    assert decoder.next_lines(5) == []


class CountingBudget:
    def __init__(self, room: int) -> None:
        self.room = room
        self.held = 0

    def reserve(self, size: int) -> bool:
        if self.held + size > self.room:
            return False
        self.held += size
        return True

    def release(self, size: int) -> None:
        self.held -= size


def test_an_unfinished_line_that_does_not_fit_the_budget_is_refused_and_the_next_served() -> (
    None
):
    budget = CountingBudget(1000)
    decoder = LineDecoder(10_000, budget=budget)
    assert decoder.feed(b'{"ipcReqID":"big","d":"' + b"x" * 600) == []
    assert budget.held == decoder.buffered > 0
    events = decoder.feed(b"y" * 600)
    assert len(events) == 1 and isinstance(events[0], RefusedLine)
    assert events[0].head.startswith(b'{"ipcReqID":"big"')
    assert budget.held == 0 and decoder.buffered == 0
    # The rest of that line is dropped; the next line is served.
    assert decoder.feed(b"z" * 5000 + b"\nok\n") == [b"ok"]
    assert budget.held == 0


def test_a_finished_or_closed_line_gives_its_bytes_back() -> None:
    budget = CountingBudget(10_000)
    decoder = LineDecoder(10_000, budget=budget)
    decoder.feed(b"abc")
    decoder.feed(b"def")
    assert budget.held == 6
    assert decoder.feed(b"g\n") == [b"abcdefg"]
    assert budget.held == 0
    decoder.feed(b"unfinished")
    decoder.close()
    assert budget.held == 0 and decoder.buffered == 0


def test_an_oversize_line_gives_back_what_it_held() -> None:
    budget = CountingBudget(10_000)
    decoder = LineDecoder(100, budget=budget)
    decoder.feed(b"x" * 80)
    assert isinstance(decoder.feed(b"x" * 80)[0], OversizeLine)
    assert budget.held == 0
