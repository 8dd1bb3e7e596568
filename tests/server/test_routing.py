"""The URI-pattern table on its own (ROUTE-1, ROUTE-2), no sockets."""

from __future__ import annotations

import re

import pytest
from pixl_ipc.routing import Router, compile_pattern


def handler(request: object) -> None:
    return None


def test_string_pattern_matches_the_whole_uri_only() -> None:
    router = Router()
    router.add("/api/status", "status", handler)
    assert router.match("/api/status") is not None
    assert router.match("/api/status/extra") is None
    assert router.match("/prefix/api/status") is None


def test_string_pattern_keeps_regex_characters_as_regex() -> None:
    router = Router()
    router.add(r"/user/\d+", "user", handler)
    assert router.match("/user/42") is not None
    assert router.match("/user/abc") is None


def test_string_pattern_does_not_match_before_a_trailing_newline() -> None:
    # JavaScript's $ (no m flag) only matches at the very end.
    assert compile_pattern("/a").search("/a\n") is None


def test_string_pattern_with_alternation_behaves_like_the_originals_anchored_regex() -> (
    None
):
    # The original builds ^a|b$: "starts with /a" or "ends with /b".
    regex = compile_pattern("/a|/b")
    assert regex.search("/a/anything")
    assert regex.search("/anything/b")
    assert not regex.search("/c")


def test_compiled_pattern_is_searched_anywhere_in_the_uri() -> None:
    router = Router()
    router.add(re.compile(r"/files/"), "files", handler)
    assert router.match("/v2/files/readme") is not None
    assert router.match("/v2/other") is None


def test_first_registered_match_wins() -> None:
    router = Router()
    first = router.add(re.compile("^/a"), "first", handler)
    router.add("/a/b", "second", handler)
    assert router.match("/a/b") is first


def test_no_match_returns_none() -> None:
    router = Router()
    router.add("/a", "a", handler)
    assert router.match("/b") is None


def test_a_route_added_later_is_found_for_a_uri_looked_up_before() -> None:
    router = Router()
    assert router.match("/late") is None
    router.add("/late", "late", handler)
    route = router.match("/late")
    assert route is not None and route.name == "late"


def test_names_are_listed_in_match_order() -> None:
    router = Router()
    router.add("/a", "a", handler)
    router.add("/b", "b", handler, threaded=True)
    assert router.names == ["a", "b"]
    assert len(router) == 2
    route = router.match("/b")
    assert route is not None and route.threaded


def test_many_distinct_uris_do_not_break_matching() -> None:
    router = Router()
    router.add(r"/n/\d+", "n", handler)
    for i in range(3000):
        assert router.match(f"/n/{i}") is not None
        assert router.match(f"/x/{i}") is None


@pytest.mark.parametrize("bad", [b"/bytes", 42, None])
def test_pattern_of_a_wrong_type_is_refused(bad: object) -> None:
    with pytest.raises(TypeError):
        Router().add(bad, "bad", handler)  # type: ignore[arg-type]


def test_invalid_regex_string_is_refused_with_its_text() -> None:
    with pytest.raises(ValueError, match=r"\(unclosed"):
        Router().add("(unclosed", "bad", handler)


def test_handler_that_is_not_callable_is_refused() -> None:
    with pytest.raises(TypeError):
        Router().add("/a", "a", "not callable")  # type: ignore[arg-type]


def test_cached_lookup_agrees_with_match_and_forgets_on_change() -> None:
    router = Router()
    missing = object()
    router.add("/a", "a", handler)
    assert router.cached("/a", missing) is missing
    route = router.match("/a")
    assert router.cached("/a", missing) is route
    assert router.match("/b") is None
    assert router.cached("/b", missing) is None
    router.add("/b", "b", handler)
    assert router.cached("/b", missing) is missing
    assert router.match("/b") is not None


def test_long_uris_are_matched_but_not_kept() -> None:
    # A peer inventing huge uris must not grow the cache by their size.
    router = Router()
    route = router.add(re.compile("^/long/"), "long", lambda r: r)
    missing = object()
    uri = "/long/" + "x" * 100_000
    assert router.match(uri) is route
    assert router.cached(uri, missing) is missing
    short = "/long/y"
    assert router.match(short) is route
    assert router.cached(short, missing) is route
