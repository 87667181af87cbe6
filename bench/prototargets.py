"""Targets of bench/compare_protocols.py, in one process on the load core.

    python bench/prototargets.py DNS_PORT WS_PORT

An authoritative DNS server (dnslib, UDP) answering `trading-api.internal A 10.0.0.5`, and
a WebSocket server (aiohttp) at /ws that sends one tick as soon as a client is connected.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web
from dnslib import QTYPE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class Resolver(BaseResolver):
    def resolve(self, request, handler):
        reply = request.reply()
        reply.add_answer(RR(str(request.q.qname), QTYPE.A, rdata=A("10.0.0.5"), ttl=60))
        return reply


async def ws(request: web.Request) -> web.WebSocketResponse:
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    await sock.send_str('{"type": "tick", "symbol": "USDCOP", "price": 4012.5}')
    async for _ in sock:
        pass
    return sock


def main() -> None:
    dns_port, ws_port = int(sys.argv[1]), int(sys.argv[2])
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    DNSServer(Resolver(), port=dns_port, address="127.0.0.1", logger=quiet).start_thread()
    app = web.Application()
    app.router.add_get("/ws", ws)
    web.run_app(app, host="127.0.0.1", port=ws_port, print=None, access_log=None,
                handle_signals=True)


if __name__ == "__main__":
    asyncio.set_event_loop(asyncio.new_event_loop())
    main()
