"""One prober per protocol, one dispatch table, and the handler that runs any of them.

`run_probe` owns what every probe shares: the hard timeout (held by the prober itself for
those in SELF_LIMITED) and turning an unexpected exception into reason `other`. Probers
measure their own phases and duration, from their start to the moment their answer
arrived (the http prober takes the kernel's receive time of its bytes, so the time the
loop takes to come round to them is not counted).

The redis and postgres probers bring their client libraries (redis-py, psycopg: ~16 MiB
together); they are imported when a services file names their type (`preload`, from
`load_services`), or else before the first such probe's deadline starts; not by every
sidecar.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterable
from time import perf_counter

from ...config.model import ServiceConfig
from ...config.probe_types import PROBE_TYPES
from ..result import REASONS, ProbeResult
from .base import ProbeContext, Prober
from .dns import probe_dns
from .grpc_health import probe_grpc
from .http import probe_http
from .icmp import probe_icmp
from .push import probe_push
from .python import probe_python
from .tcp import probe_tcp
from .tls_check import probe_tls
from .websocket import probe_websocket


class _OnFirstUse:
    """The prober `name` of `module`, imported by `load()` or by the first probe."""

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.__name__ = name
        self.prober: Prober | None = None

    def load(self) -> Prober:
        if self.prober is None:
            self.prober = getattr(importlib.import_module(self.module, __package__), self.__name__)
        return self.prober

    async def __call__(self, service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
        return await (self.prober or self.load())(service, ctx)


probe_redis = _OnFirstUse(".redis", "probe_redis")
probe_postgres = _OnFirstUse(".postgres", "probe_postgres")


def preload(types: Iterable[str]) -> None:
    """Import the probers of these service types now (at start-up, for the services
    configured), so that no first probe stalls the loop on an import (50-70 ms)."""
    for kind in set(types):
        prober = PROBERS.get(kind)
        if isinstance(prober, _OnFirstUse):
            prober.load()


# The prober of each of PROBE_TYPES, in its order.
PROBERS: dict[str, Prober] = dict(zip(PROBE_TYPES, (
    probe_http, probe_tcp, probe_redis, probe_postgres, probe_python, probe_websocket,
    probe_dns, probe_icmp, probe_grpc, probe_tls, probe_push,
), strict=True))

# Probers that hold `ctx.timeout` themselves around all their waiting (one timer per probe
# instead of two; a second `asyncio.timeout` costs ~25 µs of CPU per probe).
SELF_LIMITED: frozenset[Prober] = frozenset({probe_http})

__all__ = ["PROBERS", "SELF_LIMITED", "ProbeContext", "Prober", "preload", "run_probe"]


async def run_probe(service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
    """Probe `service` within `ctx.timeout` seconds; never raises except on cancellation."""
    prober = PROBERS.get(service.type)
    if prober is None:
        return ProbeResult.failure("other", 0.0, f"unknown probe type {service.type!r}")
    if isinstance(prober, _OnFirstUse) and prober.prober is None:
        try:  # a service no services file brought: its library is imported before the clock starts
            prober.load()
        except ImportError as exc:
            return ProbeResult.failure("other", 0.0, f"cannot load the {service.type} prober: {exc}"[:200])
    start = perf_counter()
    try:
        if prober in SELF_LIMITED:
            result = await prober(service, ctx)
        else:
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
    return result
