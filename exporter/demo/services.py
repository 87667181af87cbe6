"""Simulated services for the demo: healthy, slow, flaky and down, answering the health
format, and a market-data stream: a WebSocket at /ws that pushes ticks and answers pings."""

from __future__ import annotations

import asyncio
import itertools
import math
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

# Behaviours a simulated service can have.
KINDS = ("healthy", "slow", "flaky", "down", "stream")
TICK_EVERY = 0.25  # seconds between two ticks of a stream
# The trading stack's services, on their usual ports, so the shipped services.yaml probes them too.
DEFAULT_LAYOUT = (
    ("trading-api", "healthy", 8001),
    ("ml-analytics", "slow", 8002),
    ("pipeline-api", "flaky", 8000),
    ("websocket", "stream", 8080),
)
# Longer than the shipped services.yaml's degraded_latency for ml-analytics (2s), shorter
# than its timeout (10s): the slow service shows as degraded, never as a timeout.
DEFAULT_SLOW_DELAY = 2.5
# The flaky service fails answers 3 and 4 of every 6: two misses in a row, so a
# failure_threshold of 2 (pipeline-api's in services.yaml) still turns it unhealthy.
FLAKY_CYCLE = 6
FLAKY_FAILS = frozenset({3, 4})


class PortInUse(OSError):
    """A simulated service could not bind its port; names the service and the address."""


@dataclass(frozen=True)
class ServiceSpec:
    """One simulated service: its name, behaviour and wanted port (0 picks a free one)."""

    name: str
    kind: str
    port: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"service {self.name}: kind must be one of {', '.join(KINDS)}, "
                             f"got {self.kind!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"service {self.name}: port must be 0 to 65535, got {self.port}")


def default_specs(ports: tuple[int, int, int, int] | None = None) -> list[ServiceSpec]:
    """The four seed services; `ports` overrides trading-api, ml-analytics, pipeline-api,
    websocket in that order."""
    chosen = ports if ports is not None else tuple(p for _, _, p in DEFAULT_LAYOUT)
    return [ServiceSpec(name, kind, port)
            for (name, kind, _), port in zip(DEFAULT_LAYOUT, chosen, strict=True)]


class _Behaviour:
    """What one HTTP service answers; counts its requests for the reported details."""

    def __init__(self, spec: ServiceSpec, slow_delay: float, started: float) -> None:
        self.spec = spec
        self.slow_delay = slow_delay
        self.started = started
        self.requests = 0
        self._answers = itertools.count()

    def failing(self) -> bool:
        if self.spec.kind != "flaky":
            return False
        return next(self._answers) % FLAKY_CYCLE in FLAKY_FAILS

    def details(self, now: float) -> dict[str, float]:
        uptime = now - self.started
        # A gentle daily-looking wave, so the reported gauges move on the dashboards.
        wave = math.sin(uptime / 60.0)
        error_rate = {"healthy": 0.01, "slow": 0.02, "flaky": 0.08}[self.spec.kind]
        return {
            "uptime": round(uptime, 1),
            "requests_per_minute": round(120 + 30 * wave, 1),
            "error_rate": round(error_rate * (1 + 0.2 * wave), 4),
            "memory_usage_mb": round(256 + 32 * wave, 1),
        }

    async def health(self, request: web.Request) -> web.Response:
        began = time.monotonic()
        self.requests += 1
        if self.spec.kind == "slow":
            await asyncio.sleep(self.slow_delay)
        failing = self.failing()
        now = time.time()
        body = {
            "service": self.spec.name,
            "status": "unhealthy" if failing else "healthy",
            "latency_ms": round((time.monotonic() - began) * 1000.0, 3),
            "last_check": datetime.fromtimestamp(now, UTC).isoformat(),
            "details": self.details(now),
            "metadata": {"simulated": True, "behaviour": self.spec.kind,
                         "requests": self.requests},
        }
        return web.json_response(body, status=503 if failing else 200)


async def _stream(request: web.Request) -> web.WebSocketResponse:
    """A market-data WebSocket: a USDCOP tick every TICK_EVERY seconds; a text message
    `{"op": "ping"}` is answered with `{"op": "pong"}`."""
    ws = web.WebSocketResponse(heartbeat=None)
    await ws.prepare(request)

    async def ticks() -> None:
        for n in itertools.count(1):
            price = 4000.0 + 25.0 * math.sin(time.time() / 300.0)
            await ws.send_json({"type": "tick", "symbol": "USDCOP", "seq": n,
                                "price": round(price, 2), "time": time.time()})
            await asyncio.sleep(TICK_EVERY)

    pusher = asyncio.create_task(ticks())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data.strip().replace(" ", "") == '{"op":"ping"}':
                await ws.send_str('{"op": "pong"}')
    except ConnectionError:
        pass
    finally:
        pusher.cancel()
        await asyncio.gather(pusher, return_exceptions=True)
    return ws


class SimulatedServices:
    """The demo's services on `host`: HTTP ones answer GET/HEAD /health; `down` refuses
    connections (its port is held but never listens, so nothing else can take it);
    `stream` serves a WebSocket at /ws pushing ticks and answering pings."""

    def __init__(self, specs: list[ServiceSpec] | None = None, host: str = "127.0.0.1",
                 slow_delay: float = DEFAULT_SLOW_DELAY) -> None:
        self.specs = specs if specs is not None else default_specs()
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            raise ValueError(f"service names must be unique, got {names}")
        if not 0 <= slow_delay <= 60:
            raise ValueError(f"slow_delay must be 0 to 60 seconds, got {slow_delay!r}")
        self.host = host
        self.slow_delay = slow_delay
        self.ports: dict[str, int] = {}
        self.behaviours: dict[str, _Behaviour] = {}
        self._runners: list[web.AppRunner] = []
        self._held: list[socket.socket] = []

    def _bind(self, spec: ServiceSpec) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, spec.port))
        except OSError as exc:
            sock.close()
            raise PortInUse(exc.errno, f"{spec.name} ({spec.kind}): cannot bind "
                                       f"{self.host}:{spec.port}: {exc.strerror}") from None
        return sock

    async def start(self) -> None:
        """Bind every service (all or none) and start answering."""
        started = time.time()
        socks: list[tuple[ServiceSpec, socket.socket]] = []
        try:
            for spec in self.specs:
                socks.append((spec, self._bind(spec)))
        except PortInUse:
            for _, sock in socks:
                sock.close()
            raise
        for spec, sock in socks:
            self.ports[spec.name] = sock.getsockname()[1]
            if spec.kind == "down":
                self._held.append(sock)  # bound, never listening: connections are refused
                continue
            app = web.Application()
            if spec.kind == "stream":
                app.router.add_get("/ws", _stream)
            else:
                behaviour = _Behaviour(spec, self.slow_delay, started)
                self.behaviours[spec.name] = behaviour
                app.router.add_get("/health", behaviour.health)  # HEAD is added with GET
            runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                   shutdown_timeout=0.5)
            await runner.setup()
            self._runners.append(runner)
            await web.SockSite(runner, sock).start()

    async def close(self) -> None:
        """Stop answering and release every port."""
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        for sock in self._held:
            sock.close()
        self._held.clear()

    async def __aenter__(self) -> SimulatedServices:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def address(self, name: str) -> str:
        """`host:port` of a started service (IPv6 in brackets)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = "::1" if host == "::" else host
        shown = f"[{host}]" if ":" in host else host
        return f"{shown}:{self.ports[name]}"

    def url(self, name: str) -> str:
        """The health URL of a started HTTP service, the ws:// URL of a stream (the base
        URL of a `down` one)."""
        spec = next(s for s in self.specs if s.name == name)
        if spec.kind == "stream":
            return f"ws://{self.address(name)}/ws"
        base = f"http://{self.address(name)}"
        return base if spec.kind == "down" else base + "/health"
