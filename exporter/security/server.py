"""Connection-level limits aiohttp does not have: a header-read deadline, a connection cap,
and clear JSON answers (and a count) when the HTTP parser refuses a request.

aiohttp waits for request headers as long as a client cares to drip them, which lets a
few slow clients hold every connection. `GuardedHandler` starts a deadline when a
connection opens (or when the first byte of a later request arrives on it) and answers
408 when the head of the request is not complete by then. Connections beyond the cap get
their request answered 429 and are closed. `GuardedSite` is a TCPSite that listens with
this handler.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

HEADER_TIMEOUT = 10.0  # seconds for the request line and headers to arrive
MAX_CONNECTIONS = 512  # open HTTP connections; more are answered 429 and closed
SSL_HANDSHAKE_TIMEOUT = 10.0


class ConnectionGuard:
    """What every connection of one listener shares: the count, the cap, the deadline."""

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS,
                 header_timeout: float = HEADER_TIMEOUT,
                 on_limit: Callable[[str], None] | None = None) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.on_limit = on_limit or (lambda _limit: None)
        self.open = 0


def _raw_json(status: int, phrase: str, code: str, detail: str) -> bytes:
    body = json.dumps({"error": code, "detail": detail, "field": None}).encode()
    head = (f"HTTP/1.1 {status} {phrase}\r\nServer: usdcop-exporter\r\n"
            f"Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


def _error(status: int, code: str, detail: str) -> web.Response:
    resp = web.json_response({"error": code, "detail": detail, "field": None}, status=status,
                             headers={"Server": "usdcop-exporter"})
    resp.force_close()
    return resp


class GuardedHandler(RequestHandler):
    """aiohttp's RequestHandler with a header-read deadline and a connection count."""

    __slots__ = ("_guard", "_deadline", "_counted", "over_capacity")

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._deadline: asyncio.TimerHandle | None = None
        self._counted = False
        self.over_capacity = False  # read by the limits middleware

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the connection, mark it when over the cap, start the header deadline."""
        guard = self._guard
        guard.open += 1
        self._counted = True
        self.over_capacity = guard.open > guard.max_connections
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Uncount the connection and drop its deadline."""
        if self._counted:
            self._guard.open -= 1
            self._counted = False
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse as aiohttp does; a complete head ends the deadline, a new one starts it."""
        busy = self._busy()
        super().data_received(data)
        if busy or self._busy():
            self._disarm()  # a whole head arrived, or these bytes were a body's
        elif self._deadline is None:
            self._arm()  # the first bytes of the next request's head

    async def finish_response(self, request: Any, resp: Any, start_time: Any) -> Any:
        """Send the response; a deadline armed by body bytes ends with the request."""
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._disarm()

    def _busy(self) -> bool:
        return bool(self._messages) or self._request_in_progress

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self._loop.call_later(self._guard.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._busy() or self.transport is None or self._force_close:
            return
        self._guard.on_limit("header")
        detail = f"request headers not complete within {self._guard.header_timeout:g}s"
        self.transport.write(_raw_json(408, "Request Timeout", "request_timeout", detail))
        self.force_close()

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A JSON answer for requests the parser refused; never logs their bytes."""
        if isinstance(exc, LineTooLong) or (
            isinstance(exc, BadHttpMessage) and "too many headers" in str(exc).lower()
        ):
            self._guard.on_limit("header")
            return _error(431, "header_too_large",
                          "request line or headers too large (at most "
                          f"{self.max_headers} headers of {self.max_field_size} bytes each)")
        if status == 400:
            return _error(400, "bad_request", "malformed HTTP request")
        return super().handle_error(request, status, exc, message)


class GuardedSite(web.TCPSite):
    """A TCPSite whose connections are GuardedHandlers sharing one ConnectionGuard."""

    __slots__ = ("guard",)

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int, *,
                 guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.guard = guard

    async def start(self) -> None:
        """Listen, as TCPSite.start does, with the guarded handler."""
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        options = dict(server._kwargs)  # the application's handler_args

        def factory() -> GuardedHandler:
            """One handler per accepted connection."""
            return GuardedHandler(server, loop=loop, guard=self.guard, **options)

        self._server = await loop.create_server(
            factory, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port,
            ssl_handshake_timeout=SSL_HANDSHAKE_TIMEOUT if self._ssl_context else None,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
