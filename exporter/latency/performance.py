"""PerformanceLogger: start/end or measure named operations; metrics, slow ones, expiry."""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loguru import logger

from .guard import DEFAULT_MAX_PAIRS, PairGuard, check_name
from .record import LatencyRecord
from .stats import summarize
from .window import KeyedWindow

if TYPE_CHECKING:
    from .forwarder import Forwarder
    from .metrics import LatencyMetrics

DEFAULT_EXPIRY = 600.0  # operations never ended are dropped (and counted) after 10 minutes
DEFAULT_WINDOW = 10_000


def _copy_metadata(field: str, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"{field} must be a mapping, got {type(metadata).__name__}")
    return dict(metadata)


class PerformanceLogger:
    """Times named operations of one service (`service_name`); keeps the last `window`."""

    def __init__(
        self,
        service_name: str = "app",
        metrics: LatencyMetrics | None = None,
        guard: PairGuard | None = None,
        forwarder: Forwarder | None = None,
        window: int = DEFAULT_WINDOW,
        expire_after: float = DEFAULT_EXPIRY,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service_name = check_name("service_name", service_name)
        if not expire_after > 0:
            raise ValueError(f"expire_after must be above 0 seconds, got {expire_after!r}")
        self._metrics = metrics
        self.guard = guard if guard is not None else PairGuard(DEFAULT_MAX_PAIRS, metrics)
        self._forwarder = forwarder
        self._done = KeyedWindow(window)  # name → (duration_ms, success, started_at, metadata)
        self._expire_after = expire_after
        self._clock = clock
        self._monotonic = monotonic
        # op id → (name, started wall time, started monotonic time, metadata); insertion order
        # is start order, so expiry only ever looks at the front.
        self._in_flight: dict[str, tuple[str, float, float, dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._expired = 0
        self._lock = threading.Lock()

    def start_operation(self, name: str, metadata: Mapping[str, Any] | None = None) -> str:
        """Start timing `name`; returns the id to pass to end_operation."""
        check_name("name", name)
        meta = _copy_metadata("metadata", metadata)
        self.guard.admit(self.service_name, name)
        self.expire()
        op_id = f"{name}-{next(self._ids)}"
        with self._lock:
            self._in_flight[op_id] = (name, self._clock(), self._monotonic(), meta)
        return op_id

    def end_operation(
        self, op_id: str, success: bool = True, metadata: Mapping[str, Any] | None = None
    ) -> float | None:
        """End an operation; its duration in ms, or None (logged) for an unknown or expired id."""
        # Not an exception: a late end must never break the caller's work.
        if not isinstance(success, bool):
            raise TypeError(f"success must be True or False, got {type(success).__name__}")
        extra = _copy_metadata("metadata", metadata)
        ended = self._monotonic()
        self.expire()
        with self._lock:
            started = self._in_flight.pop(op_id, None)
        if started is None:
            logger.warning("end_operation: unknown or expired operation id {!r}", op_id)
            return None
        name, started_at, started_mono, meta = started
        duration_ms = max(0.0, (ended - started_mono) * 1000.0)
        meta.update(extra)
        with self._lock:
            self._done.append(name, (duration_ms, success, started_at, meta))
        if self._metrics is not None:
            self._metrics.observe(self.service_name, name, duration_ms, success)
        if self._forwarder is not None:
            self._forwarder.submit(LatencyRecord(self.service_name, name, duration_ms, success))
        return duration_ms

    def measure(self, name: str, fn: Callable[[], Any] | None = None) -> Any:
        """A context manager and decorator; with `fn`, a coroutine awaiting `fn()`'s result."""
        # `with`/`async with`, @measure on sync or async functions, or `await measure(name, fn)`.
        # An exception (cancellation included) ends the operation unsuccessful and propagates.
        check_name("name", name)
        if fn is None:
            return Measurement(self, name)
        return self._measure_call(name, fn)

    async def _measure_call(self, name: str, fn: Callable[[], Any]) -> Any:
        async with Measurement(self, name):
            result = fn()
            if inspect.isawaitable(result):
                result = await result
            return result

    def expire(self) -> int:
        """Drop operations started over `expire_after` ago and never ended; returns how many."""
        deadline = self._monotonic() - self._expire_after
        names = []
        with self._lock:
            for op_id, (name, _, started_mono, _) in self._in_flight.items():
                if started_mono > deadline:
                    break
                names.append((op_id, name))
            for op_id, _ in names:
                del self._in_flight[op_id]
            self._expired += len(names)
        if names:
            if self._metrics is not None:
                self._metrics.operations_expired(len(names))
            logger.warning(
                "{} operation(s) never ended and expired after {:g} s: {}",
                len(names),
                self._expire_after,
                sorted({n for _, n in names})[:10],
            )
        return len(names)

    def get_metrics(self, name: str) -> dict[str, Any]:
        """{name, count, success_ratio, mean_ms, min/max/p50/p95/p99_ms} of the ended operations."""
        with self._lock:
            done = list(self._done.items(name))
        return {"name": name, **summarize([d[0] for d in done], sum(1 for d in done if d[1]))}

    def get_summary(self) -> dict[str, Any]:
        """{operations: {name: metrics}, total_count, in_flight, expired}."""
        self.expire()
        with self._lock:
            names = sorted(self._done.keys())
            in_flight = len(self._in_flight)
            expired = self._expired
            total = len(self._done)
        return {
            "operations": {n: self.get_metrics(n) for n in names},
            "total_count": total,
            "in_flight": in_flight,
            "expired": expired,
        }

    def get_slow_operations(self, threshold_ms: float) -> list[dict[str, Any]]:
        """[{name, duration_ms, success, started_at, metadata}] over threshold, slowest first."""
        if (
            isinstance(threshold_ms, bool)
            or not isinstance(threshold_ms, int | float)
            or not math.isfinite(threshold_ms)
            or threshold_ms < 0
        ):
            raise ValueError(f"threshold_ms must be a finite number >= 0, got {threshold_ms!r}")
        with self._lock:
            slow = [
                (name, d)
                for name, items in self._done.groups()
                for d in items
                if d[0] > threshold_ms
            ]
        slow.sort(key=lambda item: -item[1][0])
        return [
            {
                "name": name,
                "duration_ms": duration,
                "success": success,
                "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
                "metadata": dict(meta),
            }
            for name, (duration, success, started, meta) in slow
        ]


class Measurement:
    """One timed operation: `with`, `async with`, or a decorator that times every call."""

    __slots__ = ("_logger", "_name", "_op_id")

    def __init__(self, perf: PerformanceLogger, name: str) -> None:
        self._logger = perf
        self._name = name
        self._op_id: str | None = None

    def __enter__(self) -> Measurement:
        self._op_id = self._logger.start_operation(self._name)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        op_id, self._op_id = self._op_id, None
        if op_id is not None:
            self._logger.end_operation(op_id, success=exc_type is None)

    async def __aenter__(self) -> Measurement:
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, tb) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a function (sync or async) so that each call is measured."""
        perf, name = self._logger, self._name
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                async with Measurement(perf, name):
                    return await fn(*args, **kwargs)

            return timed_async

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with Measurement(perf, name):
                return fn(*args, **kwargs)

        return timed
