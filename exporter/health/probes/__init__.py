"""One prober per protocol, one dispatch table, and the handler that runs any of them.

`run_probe` owns what every probe shares: the hard timeout, the total duration, and
turning an unexpected exception into reason `other`. Probers measure their own phases.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

from ...config.model import ServiceConfig
from ..result import REASONS, ProbeResult
from .base import ProbeContext, Prober
from .dns import probe_dns
from .grpc_health import probe_grpc
from .http import probe_http
from .icmp import probe_icmp
from .postgres import probe_postgres
from .push import probe_push
from .python import probe_python
from .redis import probe_redis
from .tcp import probe_tcp
from .tls_check import probe_tls
from .websocket import probe_websocket

PROBERS: dict[str, Prober] = {
    "http": probe_http,
    "tcp": probe_tcp,
    "redis": probe_redis,
    "postgres": probe_postgres,
    "python": probe_python,
    "websocket": probe_websocket,
    "push": probe_push,
    "dns": probe_dns,
    "tls": probe_tls,
    "grpc": probe_grpc,
    "icmp": probe_icmp,
}

__all__ = ["PROBERS", "ProbeContext", "Prober", "run_probe"]


async def run_probe(service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
    """Probe `service` within `ctx.timeout` seconds; never raises except on cancellation."""
    start = perf_counter()
    prober = PROBERS.get(service.type)
    if prober is None:
        return ProbeResult.failure("other", 0.0, f"unknown probe type {service.type!r}")
    try:
        async with asyncio.timeout(ctx.timeout):
            result = await prober(service, ctx)
    except TimeoutError:
        return ProbeResult.failure(
            "timeout", perf_counter() - start, f"no answer within {ctx.timeout:g}s"
        )
    except Exception as exc:  # a prober bug must not stop the scheduler; say what it was
        return ProbeResult.failure("other", perf_counter() - start, f"{type(exc).__name__}: {exc}"[:200])
    if result.reason is not None and result.reason not in REASONS:
        result = ProbeResult.failure("other", result.duration_s, f"prober gave unknown reason {result.reason!r}")
    result.duration_s = perf_counter() - start
    return result
