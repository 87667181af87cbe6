"""Python prober: call a check function (a `health_check` callable or `check: module:function`).

The check takes no arguments and returns `{success, latency_ms?, metadata?}`. An async
check is awaited; a plain function runs in a worker thread so that a blocking check
cannot stall every other probe (on timeout the thread is left to finish, its answer
ignored). The probe's duration is the measured wall time; a `latency_ms` the check
returns is kept as `reported_latency_ms` in the probe metadata.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any

from ...config.errors import ConfigError
from ...config.model import ServiceConfig
from ...config.services import resolve_check as config_resolve_check
from ..result import ProbeResult
from .base import ProbeContext

ALLOWED_KEYS = ("success", "latency_ms", "metadata")


# The configuration's own resolver (the one check-config, serve and reload use through
# import_checks), remembered per spec so that a probe looks a check up once.
resolve_check = functools.lru_cache(maxsize=256)(config_resolve_check)


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def validate(answer: Any) -> tuple[bool, float | None, dict[str, Any] | None]:
    """(success, latency_ms, metadata) from a check's answer; ValueError names what is wrong."""
    if not isinstance(answer, Mapping):
        raise ValueError(f"check returned {type(answer).__name__}, expected a mapping {{success, latency_ms, metadata}}")
    unknown = sorted(str(k) for k in answer if k not in ALLOWED_KEYS)
    if unknown:
        raise ValueError(f"check returned unknown key(s): {', '.join(unknown)[:100]}")
    success = answer.get("success")
    if not isinstance(success, bool):
        raise ValueError("check's 'success' must be true or false")
    latency = answer.get("latency_ms")
    if latency is not None:
        if isinstance(latency, bool) or not isinstance(latency, int | float) or not math.isfinite(latency) or latency < 0:
            raise ValueError("check's 'latency_ms' must be a finite number >= 0")
        latency = float(latency)
    metadata = answer.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValueError("check's 'metadata' must be an object")
    return success, latency, dict(metadata) if metadata is not None else None


async def _call(fn: Callable[[], Any]) -> Any:
    if _is_async(fn):
        return await fn()
    answer = await asyncio.to_thread(fn)
    if inspect.isawaitable(answer):  # e.g. a lambda returning a coroutine
        answer = await answer
    return answer


async def probe_python(service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
    """Run the service's Python check."""
    start = perf_counter()
    # User code may raise anything, SystemExit and KeyboardInterrupt included: none of it
    # may stop the sidecar. Only our own cancellation goes through.
    try:
        fn = service.check_fn if service.check_fn is not None else resolve_check(service.check or "")
    except asyncio.CancelledError:
        raise
    except ConfigError as exc:  # not importable, missing or not callable: says which
        return ProbeResult.failure("other", perf_counter() - start, exc.message[:200])
    except BaseException as exc:  # what the resolver lets through (KeyboardInterrupt...)
        return ProbeResult.failure("other", perf_counter() - start, f"{type(exc).__name__}: {exc}"[:200])
    try:
        answer = await _call(fn)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        return ProbeResult.failure("other", perf_counter() - start, f"{type(exc).__name__}: {exc}"[:200])
    elapsed = perf_counter() - start
    try:
        success, latency, metadata = validate(answer)
    except ValueError as exc:
        return ProbeResult.failure("bad_body", elapsed, str(exc))
    extra = {"reported_latency_ms": latency} if latency is not None else {}
    if not success:
        return ProbeResult.failure(
            "reported_unhealthy", elapsed, "check reported failure",
            reported="unhealthy", reported_metadata=metadata, extra=extra,
        )
    return ProbeResult(
        success=True, duration_s=elapsed, reported="healthy", reported_metadata=metadata, extra=extra
    )
