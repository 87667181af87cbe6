"""TCP prober: resolve, connect, close."""

from __future__ import annotations

import asyncio
import socket
from time import perf_counter

from yarl import URL

from ...config.model import ServiceConfig
from ..result import ProbeResult
from .base import ProbeContext
from .guard import TargetNotAllowed, guard_for

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "redis": 6379, "rediss": 6379,
                 "postgres": 5432, "postgresql": 5432}


def target(service: ServiceConfig) -> tuple[str, int]:
    """(host, port) from `address` (host:port, [v6]:port) or from the url; ValueError if neither."""
    if service.address:
        host, sep, port = service.address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"address {service.address!r} is not host:port")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        number = int(port)
    elif service.url:
        url = URL(service.url)
        if not url.host:
            raise ValueError("url has no host")
        host = url.host
        number = url.explicit_port or DEFAULT_PORTS.get(url.scheme, 0)
        if not number:
            raise ValueError(f"url of scheme {url.scheme!r} has no port")
    else:
        raise ValueError("neither address nor url is set")
    if not 0 < number < 65536:
        raise ValueError(f"port {number} is out of range")
    return host, number


async def probe_tcp(service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
    """Open a TCP connection to the service and close it at once."""
    start = perf_counter()
    try:
        host, port = target(service)
    except ValueError as exc:
        return ProbeResult.failure("other", perf_counter() - start, str(exc))
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return ProbeResult.failure("dns", perf_counter() - start, f"{host}: cannot resolve: {exc.strerror or exc}")
    resolved = perf_counter()
    guard = guard_for(ctx.allowed_targets)
    if guard is not None:
        try:
            infos = guard.filter_infos(host, port, infos)
        except TargetNotAllowed as exc:
            return ProbeResult.failure("other", perf_counter() - start, str(exc),
                                       phases={"resolve": resolved - start})
    error: OSError | None = None
    for family, kind, proto, _, addr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr)
        except OSError as exc:
            error = exc
            continue
        finally:
            # Closed whether connected, failed or cancelled: a probe never leaks a socket.
            sock.close()
        done = perf_counter()
        return ProbeResult(
            success=True,
            duration_s=done - start,
            phases={"resolve": resolved - start, "connect": done - resolved},
        )
    detail = (error.strerror or str(error)) if error else "no address"
    return ProbeResult.failure(
        "connect", perf_counter() - start, f"{host}:{port}: {detail}",
        phases={"resolve": resolved - start},
    )
