"""The stats counter ``requests`` counts requests received, as the original counts records (BUILTIN-5)."""

from __future__ import annotations

from typing import Any

from support import RawClient, Server


def _total_requests(conn: RawClient, request_id: str) -> Any:
    return conn.request({"ipcReqID": request_id, "uri": "/ipcserver/stats"})["data"][
        "totalRequests"
    ]


def test_requests_without_a_uri_count_and_lines_that_are_not_messages_do_not(
    server: Server,
) -> None:
    with RawClient(server.path) as conn:
        before = _total_requests(conn, "s1")
        conn.send(
            b'{"ipcReqID":"a"}\n'  # no_uri: a request received
            b'{"ipcReqID":"b","uri":""}\n'  # no_uri
            b'{"ipcReqID":"c","uri":"/nowhere"}\n'  # no_handler_found
            b'{"ipcReqID":"d","uri":\n'  # malformed: not a request
            b"[1]\n"  # not a message
        )
        for _ in range(4):
            conn.read_json()
        after = _total_requests(conn, "s2")
    # The three requests and the first stats request itself.
    assert after - before == 4
