"""Real WebSocket targets on loopback: an aiohttp app that pushes ticks, answers pings,
refuses the upgrade, and closes before a message; plain and behind the test CA's good,
expired and wrong-host certificates.

Routes: /ticks (a tick every 20 ms; `{"op": "ping"}` gets `{"op": "pong"}`; the
Authorization header it got is kept in `seen_auth`), /quiet (accepts, says nothing),
/close (accepts, closes at once), /plain (a plain 200, no upgrade), /badkey (101 with a
wrong accept key).
"""

from __future__ import annotations

import asyncio
import json
import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest_asyncio
from aiohttp import WSMsgType, web

from tests.support.targets import tls_material


@dataclass
class WSTargets:
    port: int = 0
    tls_port: int = 0
    expired_port: int = 0
    wrong_host_port: int = 0
    ca_file: str = ""
    not_after: float = 0.0
    seen_auth: list = field(default_factory=list)
    upgrades: int = 0

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def wss(self, path: str, port: int | None = None) -> str:
        return f"wss://localhost:{port or self.tls_port}{path}"


def _app(t: WSTargets) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/ticks")
    async def ticks(request):
        t.seen_auth.append(request.headers.get("Authorization"))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        t.upgrades += 1

        async def push():
            n = 0
            while not ws.closed:
                n += 1
                await ws.send_str(json.dumps({"type": "tick", "symbol": "USDCOP", "n": n}))
                await asyncio.sleep(0.02)

        pusher = asyncio.create_task(push())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and json.loads(msg.data).get("op") == "ping":
                    await ws.send_str('{"op": "pong"}')
        finally:
            pusher.cancel()
        return ws

    @routes.get("/quiet")
    async def quiet(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    @routes.get("/close")
    async def close(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close(code=1001)
        return ws

    @routes.get("/plain")
    async def plain(request):
        return web.Response(text="no websocket here")

    @routes.get("/badkey")
    async def badkey(request):
        resp = web.StreamResponse(status=101, headers={
            "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Accept": "d3JvbmcgYWNjZXB0IGtleSE="})
        await resp.prepare(request)
        await asyncio.sleep(10)
        return resp

    app = web.Application()
    app.add_routes(routes)
    return app


@asynccontextmanager
async def start_ws_targets():
    """Start the WebSocket targets; stopped on exit."""
    material = tls_material()
    t = WSTargets(ca_file=material.ca_file, not_after=material.not_after)
    runner = web.AppRunner(_app(t), access_log=None, handle_signals=False, shutdown_timeout=0.2)
    await runner.setup()
    for name, ctx in (("port", None), ("tls_port", material.good),
                      ("expired_port", material.expired),
                      ("wrong_host_port", material.wrong_host)):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        setattr(t, name, sock.getsockname()[1])
        await web.SockSite(runner, sock, ssl_context=ctx).start()
    try:
        yield t
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def ws_targets():
    """The WebSocket targets, started for one test."""
    async with start_ws_targets() as t:
        yield t
