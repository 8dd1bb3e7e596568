"""The URI-pattern table: which handler answers a request's ``uri`` (ROUTE-1).

Pure: no I/O and no server state. A :class:`Router` holds :class:`Route` rows
in registration order; :meth:`Router.match` returns the first row whose
pattern matches, as the original does.

Patterns follow the original's ``addURIHandler``:

- a compiled regular expression is *searched* in the uri (it matches anywhere
  unless it anchors itself);
- a string ``s`` becomes the anchored expression ``^s$``, so regex characters
  in it still act as regex (``/user/\\d+`` matches ``/user/42``). The end
  anchor is ``\\Z`` rather than ``$`` so that, as in JavaScript, a uri with a
  trailing newline does not match.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Handler", "Route", "Router", "compile_pattern"]

#: A handler takes a :class:`~pixl_ipc.server.Request` and returns the response
#: data or an awaitable of it. Typed loosely here: the router never calls it.
Handler = Callable[[Any], Any]

# Lookups are memoised per uri; a service sees few distinct uris. The caps
# keep a client that invents uris, short or huge, from growing the cache past
# 1024 x 512 characters: longer uris are matched every time.
_CACHE_LIMIT = 1024
_CACHE_URI_LIMIT = 512


def compile_pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    """Turn a handler pattern into a compiled expression (ROUTE-1).

    Args:
        pattern: a compiled expression (used as it is, searched) or a string
            (anchored at both ends, its regex characters kept).

    Returns:
        The compiled expression.

    Raises:
        TypeError: ``pattern`` is neither a string nor a compiled expression.
        ValueError: the string is not a valid regular expression.
    """
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, str):
            raise TypeError("a handler pattern must be a str expression, not bytes")
        return pattern
    if not isinstance(pattern, str):
        raise TypeError(f"a handler pattern must be a str or a compiled regex, not {type(pattern).__name__}")
    try:
        return re.compile("^" + pattern + r"\Z")
    except re.error as exc:
        raise ValueError(f"invalid handler pattern {pattern!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the table.

    Attributes:
        regex: the compiled pattern, searched in the uri.
        name: the handler's name (listed by ``/ipcserver/info``).
        handler: the callable that answers.
        threaded: run the handler in a worker thread instead of on the loop.
    """

    regex: re.Pattern[str]
    name: str
    handler: Handler
    threaded: bool = False


class Router:
    """An ordered table of routes; the first registered match wins (ROUTE-1)."""

    __slots__ = ("_cache", "_routes", "cached")

    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._cache: dict[str, Route | None] = {}
        #: ``cached(uri, default)``: the route memoised for ``uri`` (a Route or
        #: None), or ``default`` if :meth:`match` has not seen it since the
        #: table last changed. A plain dict lookup, for the server's hot path.
        self.cached = self._cache.get

    def add(
        self,
        pattern: str | re.Pattern[str],
        name: str,
        handler: Handler,
        *,
        threaded: bool = False,
    ) -> Route:
        """Append a route after every existing one.

        Args:
            pattern: see :func:`compile_pattern`.
            name: a name for logs and ``/ipcserver/info``.
            handler: a callable taking the request.
            threaded: run the handler in a worker thread.

        Returns:
            The new route.

        Raises:
            TypeError: ``handler`` is not callable, or ``pattern`` has a wrong type.
            ValueError: ``pattern`` is not a valid regular expression.
        """
        if not callable(handler):
            raise TypeError(f"handler for {name!r} is not callable")
        route = Route(compile_pattern(pattern), str(name), handler, bool(threaded))
        self._routes.append(route)
        self._cache.clear()
        return route

    def match(self, uri: str) -> Route | None:
        """The first route whose pattern matches ``uri``, or None (ROUTE-2)."""
        try:
            return self._cache[uri]
        except KeyError:
            pass
        found = None
        for route in self._routes:
            if route.regex.search(uri) is not None:
                found = route
                break
        if len(uri) <= _CACHE_URI_LIMIT:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[uri] = found
        return found

    @property
    def names(self) -> list[str]:
        """The route names, in match order."""
        return [route.name for route in self._routes]

    @property
    def routes(self) -> tuple[Route, ...]:
        """The routes, in match order."""
        return tuple(self._routes)

    def replace(self, routes: tuple[Route, ...]) -> None:
        """Make ``routes`` the whole table, in that order."""
        self._routes = list(routes)
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._routes)
