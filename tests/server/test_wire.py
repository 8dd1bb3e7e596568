"""What the original clients see on the wire from the reference server (subprocess, raw sockets)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from server_helpers import RawClient, echo
from support import Server, serve_in_tempdir


@pytest.fixture(scope="module")
def shared_server() -> Iterator[Server]:
    """One server for the tests of this module: each test uses its own connections."""
    with serve_in_tempdir() as server:
        yield server


@pytest.fixture
def client(shared_server: Server) -> Iterator[RawClient]:
    with RawClient(shared_server.path) as raw:
        yield raw


def test_node_client_echo_gets_the_originals_exact_bytes(client: RawClient) -> None:
    # BUILTIN-1, RESP-3: the Node client's request, key order and all.
    client.send(
        b'{"ipcReqID":"rq0","uri":"/ipcserver/test/echo","data":{"hello":"there","n":[1,2.5,null,true]},'
        b'"pid":1,"userAgent":"Node/IPCClient/x"}\n'
    )
    assert (
        client.read_line()
        == b'{"ipcReqID":"rq0","data":{"hello":"there","n":[1,2.5,null,true]}}'
    )


def test_php_client_request_with_uri_first_and_empty_array_data(
    client: RawClient,
) -> None:
    # REQ-1, REQ-4: uri first, data [] as the PHP client writes an empty array.
    client.send(
        b'{"uri":"/ipcserver/test/echo","data":[],"ipcReqID":"rq0","pid":7,"userAgent":"PHP/PixlIPCClient/y"}\n'
    )
    assert client.read_line() == b'{"ipcReqID":"rq0","data":[]}'


def test_php_client_json_and_newline_in_two_writes(client: RawClient) -> None:
    # FRAME-3: the original PHP client writes the JSON and the LF separately.
    client.send(b'{"uri":"/ipcserver/test/echo","data":{"a":1},"ipcReqID":"rq5"}')
    client.send(b"\n")
    assert client.read_line() == b'{"ipcReqID":"rq5","data":{"a":1}}'


def test_request_split_into_single_bytes_is_reassembled(client: RawClient) -> None:
    # FRAME-3
    for byte in b'{"ipcReqID":"rq1","uri":"/ipcserver/test/echo","data":"x"}\n':
        client.send(bytes([byte]))
    assert client.read_line() == b'{"ipcReqID":"rq1","data":"x"}'


def test_several_requests_in_one_write_are_all_answered(client: RawClient) -> None:
    lines = b"".join(
        b'{"ipcReqID":"rq%d","uri":"/ipcserver/test/echo","data":%d}\n' % (i, i)
        for i in range(50)
    )
    client.send(lines)
    answers = {json.loads(client.read_line())["ipcReqID"] for _ in range(50)}
    assert answers == {f"rq{i}" for i in range(50)}


def test_no_handler_found_is_the_originals_error_in_data(client: RawClient) -> None:
    # ROUTE-2, ERR-3
    client.send(b'{"ipcReqID":"rq0","uri":"/no/such/thing","data":{}}\n')
    assert client.read_line() == (
        b'{"ipcReqID":"rq0","data":{"code":"no_handler_found","message":"No handler found for /no/such/thing"}}'
    )


@pytest.mark.parametrize("uri", ["absent", None, "", 0, False])
def test_missing_or_falsy_uri_is_the_originals_top_level_no_uri(
    client: RawClient, uri: Any
) -> None:
    # REQ-2, ERR-3
    message: dict[str, Any] = {"ipcReqID": "rq3", "data": {}}
    if uri != "absent":
        message["uri"] = uri
    client.send_json(message)
    assert client.read_line() == (
        b'{"ipcReqID":"rq3","code":"no_uri","message":"Missing required uri parameter from request"}'
    )


@pytest.mark.parametrize(
    ("uri", "text"),
    [
        (42, "42"),
        (["/a", "b"], "/a,b"),
        ({"p": "/a"}, "[object Object]"),
        (True, "true"),
    ],
)
def test_uri_of_another_type_is_routed_as_its_javascript_text(
    client: RawClient, uri: Any, text: str
) -> None:
    # REQ-2: as the original, String(uri)
    answer = client.request({"ipcReqID": "rq1", "uri": uri})
    assert answer == {
        "ipcReqID": "rq1",
        "data": {"code": "no_handler_found", "message": f"No handler found for {text}"},
    }
    assert echo(client, 1)["data"] == 1


@pytest.mark.parametrize("request_id", ["absent", None, "", 0, False])
def test_falsy_request_id_is_answered_with_null(
    client: RawClient, request_id: Any
) -> None:
    # RESP-2, REQ-3
    message: dict[str, Any] = {"uri": "/ipcserver/test/echo", "data": "d"}
    if request_id != "absent":
        message["ipcReqID"] = request_id
    client.send_json(message)
    assert client.read_line() == b'{"ipcReqID":null,"data":"d"}'


def test_numeric_request_id_comes_back_unchanged(client: RawClient) -> None:
    client.send(b'{"ipcReqID":17,"uri":"/ipcserver/test/echo","data":null}\n')
    assert client.read_line() == b'{"ipcReqID":17,"data":null}'


def test_request_id_of_object_type_is_echoed(
    client: RawClient,
) -> None:
    # REQ-3, RESP-2: any truthy id comes back, as the original does
    answer = client.request(
        {"ipcReqID": {"a": 1}, "uri": "/ipcserver/test/echo", "data": 2}
    )
    assert answer == {"ipcReqID": {"a": 1}, "data": 2}


def test_absent_data_is_echoed_absent_and_extra_members_are_allowed(
    client: RawClient,
) -> None:
    # REQ-1, REQ-4, BUILTIN-1
    client.send(b'{"ipcReqID":"rq0","uri":"/ipcserver/test/echo","extra":{"x":1}}\n')
    assert client.read_line() == b'{"ipcReqID":"rq0"}'


def test_big_integers_and_unicode_round_trip_exactly(client: RawClient) -> None:
    # FRAME-8, FRAME-9
    client.send(
        '{"ipcReqID":"rq0","uri":"/ipcserver/test/echo","data":[123456789012345678901234567890,'
        '"\u2028\u2029 \U0001f600","\\ud83d\\ude00","\\u0000"]}\n'.encode()
    )
    answer = client.read_json()
    assert answer["data"] == [
        123456789012345678901234567890,
        "\u2028\u2029 \U0001f600",
        "\U0001f600",
        "\0",
    ]


def test_delay_without_a_delay_answers_zero_at_once(client: RawClient) -> None:
    # BUILTIN-2
    for data in ({}, {"delay": 0}, {"delay": ""}, {"delay": None}, None, []):
        answer = client.request(
            {"ipcReqID": "rq0", "uri": "/ipcserver/test/delay", "data": data}
        )
        assert answer == {"ipcReqID": "rq0", "data": {"delay": 0}}


def test_delay_waits_and_answers_the_delay(client: RawClient) -> None:
    # BUILTIN-2
    client.send(
        b'{"ipcReqID":"rq0","uri":"/ipcserver/test/delay","data":{"delay":50}}\n'
    )
    assert client.read_line() == b'{"ipcReqID":"rq0","data":{"delay":50}}'


def test_a_slow_request_does_not_hold_up_a_fast_one(client: RawClient) -> None:
    # RESP-5
    client.send(
        b'{"ipcReqID":"rq0","uri":"/ipcserver/test/delay","data":{"delay":400}}\n'
        b'{"ipcReqID":"rq1","uri":"/ipcserver/test/echo","data":"fast"}\n'
    )
    assert json.loads(client.read_line())["ipcReqID"] == "rq1"
    assert json.loads(client.read_line())["ipcReqID"] == "rq0"


def test_info_reports_protocol_server_limits_handlers_extensions(
    client: RawClient,
) -> None:
    # BUILTIN-4, VER-1
    info = client.request({"ipcReqID": "rq0", "uri": "/ipcserver/info"})["data"]
    assert info["protocol"] == "1.1"
    assert info["server"]["name"] == "pixl-ipc-python"
    assert isinstance(info["server"]["version"], str)
    assert info["limits"] == {
        "max_message_bytes": 64 * 1024 * 1024,
        "max_inflight_per_connection": 1024,
    }
    assert info["handlers"][:4] == ["echo", "delay", "info", "stats"]
    for extension in (
        "bad_json",
        "message_too_large",
        "handler_error",
        "access_denied",
        "server_busy",
        "/ipcserver/info",
        "/ipcserver/stats",
        "push",
    ):
        assert extension in info["extensions"]


def test_stats_has_the_originals_keys_as_numbers(server: Any) -> None:
    # BUILTIN-5 (a server of its own: the counts below are exact)
    client = RawClient(server.path)
    echo(client, 1)
    stats = client.request({"ipcReqID": "rq1", "uri": "/ipcserver/stats"})["data"]
    for key in (
        "connections",
        "handlers",
        "requests",
        "clientOpen",
        "clientClose",
        "maxConnections",
        "duration",
        "slowResponses",
        "streamBackpressure",
    ):
        assert isinstance(stats[key], (int, float)), key
    assert stats["connections"] == 1
    assert stats["handlers"] == 4
    assert stats["totalRequests"] == 2


# --- malformed input (FRAME-4 to FRAME-6, LIMIT-4) ----------------------------


def test_blank_and_non_object_lines_are_ignored(client: RawClient) -> None:
    # FRAME-4, FRAME-5: no reply at all, then the connection still works.
    client.send(b'\n   \n\t\r\n[1,2]\n"x"\n42\nnull\nhello\n')
    assert echo(client, "after") == {"ipcReqID": "rq0", "data": "after"}


def test_crlf_line_endings_are_accepted(client: RawClient) -> None:
    # FRAME-2
    client.send(b'{"ipcReqID":"rq0","uri":"/ipcserver/test/echo","data":"crlf"}\r\n')
    assert client.read_line() == b'{"ipcReqID":"rq0","data":"crlf"}'


def test_bad_json_is_answered_with_the_recovered_id_and_the_connection_stays_usable(
    client: RawClient,
) -> None:
    # FRAME-6, CORR-6
    client.send(b'{"ipcReqID":"rq9","uri":"/ipcserver/test/echo","data":{oops}\n')
    answer = client.read_json()
    assert answer["ipcReqID"] == "rq9"
    assert answer["code"] == "bad_json"
    assert "data" not in answer
    assert echo(client, "still here")["data"] == "still here"


def test_invalid_utf8_is_bad_json_not_a_crash(client: RawClient) -> None:
    # FRAME-6, FRAME-9
    client.send(b'{"ipcReqID":"rq1","uri":"/ipcserver/test/echo","data":"\xff\xfe"}\n')
    answer = client.read_json()
    assert (answer["ipcReqID"], answer["code"]) == ("rq1", "bad_json")
    assert echo(client, 2)["data"] == 2


def test_non_finite_number_is_bad_json(client: RawClient) -> None:
    client.send(b'{"ipcReqID":"rq1","uri":"/ipcserver/test/echo","data":NaN}\n')
    assert client.read_json()["code"] == "bad_json"


def test_hundred_thousand_nested_arrays_get_an_error_and_the_server_survives(
    shared_server: Server,
) -> None:
    server = shared_server
    # LIMIT-4: the original's server dies on this; every other client keeps its connection.
    with RawClient(server.path) as bystander, RawClient(server.path) as attacker:
        attacker.send(
            b'{"ipcReqID":"rq0","uri":"/ipcserver/test/echo","data":' + b"[" * 100_000
        )
        attacker.send(b"]" * 100_000 + b"}\n")
        answer = attacker.read_json()
        assert (answer["ipcReqID"], answer["code"]) == ("rq0", "bad_json")
        assert echo(attacker, "ok")["data"] == "ok"
        assert echo(bystander, "ok")["data"] == "ok"
    assert server.proc.poll() is None


def test_nesting_of_256_levels_is_accepted(client: RawClient) -> None:
    # LIMIT-4
    nested: Any = "core"
    for _ in range(256):
        nested = [nested]
    assert echo(client, nested)["data"] == nested


def test_a_bad_connection_does_not_disturb_another(shared_server: Server) -> None:
    server = shared_server
    # LIMIT-6
    with RawClient(server.path) as good, RawClient(server.path) as bad:
        bad.send(b"{not json}\n" * 100 + b"\xff\xff\n" * 100)
        assert echo(good, "fine")["data"] == "fine"
        for _ in range(100):
            assert bad.read_json()["code"] == "bad_json"


def test_peer_that_disconnects_abruptly_does_not_stop_the_server(
    shared_server: Server,
) -> None:
    server = shared_server
    # LIFE-5
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(server.path)
    sock.sendall(
        b'{"ipcReqID":"rq0","uri":"/ipcserver/test/delay","data":{"delay":100}}\n{"ipcR'
    )
    sock.close()
    with RawClient(server.path) as client:
        assert echo(client, 1)["data"] == 1
