"""Connection-level limits aiohttp does not have: a header-read deadline, connection caps
(for the process and per client address), capacity reserved for the health and scrape
routes, and clear JSON answers (and a count) when the HTTP parser refuses a request.

aiohttp waits for request headers as long as a client cares to drip them, which lets a
few slow clients hold every connection. `GuardedHandler` starts a deadline when a
connection opens (or when the first byte of a later request arrives on it) and answers
408 when the head of the request is not complete by then.

A connection is admitted when fewer than `max_connections` are admitted and its client
address holds fewer than `max_per_client` of them; otherwise it is marked over capacity
(with the limit it is over) and the limits middleware decides per request: a health or
scrape route is answered while fewer than `reserved` such answers are in progress,
anything else gets 429; either way the connection is closed afterwards. Idle or dripping
connections over the caps therefore cost a socket but never a place an answer needs.
`GuardedSite` is a TCPSite that listens with this handler.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

from ..settings import default_per_client

HEADER_TIMEOUT = 10.0  # seconds for the request line and headers to arrive
MAX_CONNECTIONS = 512  # admitted HTTP connections; more are over capacity
RESERVED = 32  # health and scrape answers in progress at once on connections over capacity
BACKLOG = 4096  # pending connections the kernel queues for accept() (capped by somaxconn)
SSL_HANDSHAKE_TIMEOUT = 10.0


def client_key(host: str | None) -> str:
    """The client a connection counts against: the IPv4 address, or the IPv6 /64 (one host
    holds a whole /64); an IPv4-mapped IPv6 address counts as its IPv4 address."""
    if not host:
        return ""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ConnectionGuard:
    """What every connection of one listener shares: counts, caps, the reserve, the deadline."""

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS,
                 max_per_client: int | None = None, reserved: int = RESERVED,
                 header_timeout: float = HEADER_TIMEOUT,
                 on_limit: Callable[[str], None] | None = None) -> None:
        self.max_connections = max_connections
        self.max_per_client = (default_per_client(max_connections) if max_per_client is None
                               else max_per_client)
        self.reserved = reserved
        self.header_timeout = header_timeout
        self.on_limit = on_limit or (lambda _limit: None)
        self.open = 0  # every accepted connection not yet closed
        self.admitted = 0  # of which within both caps
        self.per_client: dict[str, int] = {}  # admitted connections by client_key
        self.reserve_in_use = 0

    def admit(self, client: str) -> str | None:
        """Take a place for a connection of `client`: None when admitted, else the limit
        it is over (`connections` when the process cap is full, else
        `connections_per_client`)."""
        if self.admitted >= self.max_connections:
            return "connections"
        held = self.per_client.get(client, 0)
        if held >= self.max_per_client:
            return "connections_per_client"
        self.per_client[client] = held + 1
        self.admitted += 1
        return None

    def release(self, client: str) -> None:
        """Give back the place of an admitted connection of `client`."""
        self.admitted -= 1
        held = self.per_client.pop(client) - 1
        if held:
            self.per_client[client] = held

    def take_reserve(self) -> bool:
        """One place of the reserve for an answer on a connection over capacity, if free."""
        if self.reserve_in_use >= self.reserved:
            return False
        self.reserve_in_use += 1
        return True

    def give_back_reserve(self) -> None:
        """Return a place taken by take_reserve()."""
        self.reserve_in_use -= 1


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

    __slots__ = ("_guard", "_deadline", "_counted", "_client", "over_capacity", "over_limit")

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._deadline: asyncio.TimerHandle | None = None
        self._counted = False
        self._client = ""
        self.over_capacity = False  # read by the limits middleware
        self.over_limit: str | None = None  # which cap, when over capacity

    @property
    def guard(self) -> ConnectionGuard:
        """The listener's shared counts and caps."""
        return self._guard

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the connection, mark it when over a cap, start the header deadline."""
        guard = self._guard
        peer = transport.get_extra_info("peername")
        self._client = client_key(peer[0] if isinstance(peer, tuple) and peer else None)
        guard.open += 1
        self.over_limit = guard.admit(self._client)
        self.over_capacity = self.over_limit is not None
        self._counted = True
        super().connection_made(transport)
        if self._keepalive_handle is not None:
            # aiohttp would close a connection whose first request has not arrived after the
            # keep-alive idle time, silently; the header deadline (408, counted) does that.
            self._keepalive_handle.cancel()
            self._keepalive_handle = None
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Uncount the connection and drop its deadline."""
        if self._counted:
            self._guard.open -= 1
            if not self.over_capacity:
                self._guard.release(self._client)
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
            factory, self._host, self._port, ssl=self._ssl_context,
            backlog=max(self._backlog, BACKLOG),
            reuse_address=self._reuse_address, reuse_port=self._reuse_port,
            ssl_handshake_timeout=SSL_HANDSHAKE_TIMEOUT if self._ssl_context else None,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
