"""The conformance application handlers, for the Python reference server.

Load with ``pixl-ipc serve --handlers conformance/app/pixl_ipc_python.py``; the
matrix does so and runs the cases that need ``app_handlers``. A server in
another language implements the same four handlers, registered after its
built-ins in this order (conformance/README.md, "Application handlers"):

``/conformance/fail``      fails with an exception whose text holds SECRET
``/ipcserver/test/echo``   answers {"shadowed": true}: the built-in must win
``/ipcserver/test/delay``  answers {"shadowed": true}: the built-in must win
``/conformance/app``       answers {"app": true, "data": <the request's data>}

This file is loaded by the server under test; the conformance runner never
imports it.
"""

from __future__ import annotations

from typing import Any

#: Text of the failing handler's exception; it must never reach the wire (ERR-5).
SECRET = "conformance-secret-3b9f /etc/pixl-ipc/conformance-secret"


def register(server: Any) -> None:
    """Add the conformance handlers to ``server`` after its built-ins."""

    def fail(request: Any) -> None:
        raise RuntimeError(SECRET)

    def shadow(request: Any) -> dict[str, bool]:
        return {"shadowed": True}

    def app(request: Any) -> dict[str, Any]:
        return {"app": True, "data": request.data}

    server.add_uri_handler("/conformance/fail", "conformance-fail", fail)
    server.add_uri_handler("/ipcserver/test/echo", "conformance-shadow-echo", shadow)
    server.add_uri_handler("/ipcserver/test/delay", "conformance-shadow-delay", shadow)
    server.add_uri_handler("/conformance/app", "conformance-app", app)
