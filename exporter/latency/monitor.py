"""LatencyMonitor: a bounded window of latency records with stats, averages, trends and outliers."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat, starmap
from typing import TYPE_CHECKING, Any

from .. import fields
from ..fields import FieldError
from .guard import DEFAULT_MAX_PAIRS, PairGuard, check_name
from .record import LatencyRecord
from .stats import mean, percentile, summarize
from .window import KeyedWindow

if TYPE_CHECKING:
    from .forwarder import Forwarder
    from .metrics import LatencyMetrics

DEFAULT_WINDOW = 10_000
MAX_LATENCY_MS = 86_400_000.0  # one day: anything longer is a unit mistake, not a latency
STABLE_BAND = 0.10  # trend: a change within ±10 % is "stable"


@dataclass(frozen=True)
class Field:
    """One field of a posted record: its kind (name, number, bool or free) and its bounds."""

    name: str
    kind: str
    required: bool = False
    lo: float | None = None
    hi: float | None = None
    default: Any = None
    description: str | None = None


# The record's rules, once: the API's schema, decoder and checks, and check_record, read them.
FIELDS = (
    Field("service", "name", required=True),
    Field("operation", "name", required=True),
    Field("latency_ms", "number", required=True, lo=0.0, hi=MAX_LATENCY_MS),
    Field("success", "bool", default=True),
    Field("metadata", "free"),  # accepted, never kept: the window keeps numbers
    Field("trace_id", "name", description="exported as the exemplar's trace_id"),
)
_KEPT = tuple(f for f in FIELDS if f.kind != "free")  # LatencyRecord's fields, in its order


def check_number(field: str, value: object, *, lo: float, hi: float | None = None,
                 lo_open: bool = False) -> float:
    """A finite number in [lo, hi] (`lo_open`: above lo): TypeError when not a number,
    ValueError when out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{field} must be a number, got {type(value).__name__}")
    try:
        return fields.number(value, field, lo=lo, hi=hi, lo_open=lo_open)
    except FieldError:
        if hi is not None:
            rule = f"between {lo:g} and {hi:g}"
        else:
            rule = f"{'above' if lo_open else '>='} {lo:g}"
        raise ValueError(f"{field} must be a finite number {rule}, got {value}") from None


def _as_float(value: object) -> object:
    """An integer as the float it is kept as (so a refusal shows it so); else as it is."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class LatencyBatch(Sequence[LatencyRecord]):
    """Records held as columns, the form a decoded batch arrives in and the monitor stores;
    indexing or iterating gives LatencyRecord tuples."""

    __slots__ = ("services", "operations", "latencies_ms", "successes", "trace_ids")

    def __init__(
        self,
        services: list[str],
        operations: list[str],
        latencies_ms: list[float],
        successes: list[bool],
        trace_ids: list[str | None],
    ) -> None:
        if not (len(services) == len(operations) == len(latencies_ms) == len(successes)
                == len(trace_ids)):
            raise ValueError("the columns of a batch must have the same length")
        self.services = services
        self.operations = operations
        self.latencies_ms = latencies_ms
        self.successes = successes
        self.trace_ids = trace_ids

    def __len__(self) -> int:
        return len(self.services)

    def __getitem__(self, index: int) -> LatencyRecord:  # type: ignore[override]
        if isinstance(index, slice):
            return list(self)[index]  # type: ignore[return-value]
        return LatencyRecord(self.services[index], self.operations[index],
                             self.latencies_ms[index], self.successes[index],
                             self.trace_ids[index])

    def __iter__(self) -> Iterator[LatencyRecord]:
        return starmap(LatencyRecord, zip(self.services, self.operations, self.latencies_ms,
                                          self.successes, self.trace_ids, strict=True))

    def __eq__(self, other: object) -> bool:
        """Equal to any list, tuple or batch of the same records in the same order."""
        if isinstance(other, LatencyBatch | list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LatencyBatch({list(self)!r})"


def check_record(record: LatencyRecord) -> LatencyRecord:
    """Validate every field of a record by FIELDS (names, latency, success, trace id);
    returns it. An optional field without a default may be None (absent)."""
    for f, value in zip(_KEPT, record, strict=True):
        if value is None and not f.required and f.default is None:
            continue
        if f.kind == "name":
            check_name(f.name, value)
        elif f.kind == "number":
            check_number(f.name, _as_float(value), lo=f.lo, hi=f.hi)
        elif not isinstance(value, bool):
            raise TypeError(f"{f.name} must be True or False, got {type(value).__name__}")
    return record


def _check_positive(field: str, value: object) -> float:
    return check_number(field, value, lo=0.0, lo_open=True)


def _check_threshold(value: object) -> float:
    return check_number("threshold_ms", value, lo=0.0)


class LatencyMonitor:
    """Keeps the last `window` latency records (all services together) and answers on them."""

    def __init__(
        self,
        window: int = DEFAULT_WINDOW,
        max_pairs: int = DEFAULT_MAX_PAIRS,
        metrics: LatencyMetrics | None = None,
        guard: PairGuard | None = None,
        forwarder: Forwarder | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._window = KeyedWindow(
            window
        )  # (service, operation) → (timestamp, latency_ms, success)
        self.guard = guard if guard is not None else PairGuard(max_pairs, metrics)
        self._metrics = metrics
        self._forwarder = forwarder
        self._clock = clock
        self._lock = threading.Lock()  # the library may be called from several threads

    @property
    def window_size(self) -> int:
        """How many records the window keeps."""
        return self._window.size

    def record_latency(
        self,
        service: str,
        operation: str,
        latency_ms: float,
        success: bool = True,
        metadata: Mapping[str, Any] | None = None,
        *,
        trace_id: str | None = None,
    ) -> None:
        """Record one measurement (ValueError/TypeError name a bad argument; PairLimitError)."""
        # metadata is accepted as trading engines send it, but no answer shows it: the window keeps numbers.
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a mapping, got {type(metadata).__name__}")
        record = check_record(LatencyRecord(service, operation, latency_ms, success, trace_id))
        self.record_many((record,), checked=True)

    def record_many(self, records: Sequence[LatencyRecord], *, checked: bool = False) -> int:
        """Record a batch all or nothing; `checked=True` when check_record already ran on each.

        A LatencyBatch is stored from its columns as they are."""
        if not checked:
            for record in records:
                check_record(record)
        if isinstance(records, LatencyBatch):
            batch = records
        elif len(records) == 1:  # the common single record, without five comprehensions
            r = records[0]
            batch = LatencyBatch([r.service], [r.operation], [float(r.latency_ms)], [r.success],
                                 [r.trace_id])
        else:
            batch = LatencyBatch([r.service for r in records], [r.operation for r in records],
                                 [float(r.latency_ms) for r in records],
                                 [r.success for r in records], [r.trace_id for r in records])
        keys = list(zip(batch.services, batch.operations, strict=True))
        guard = self.guard
        if any(pair not in guard for pair in set(keys)):
            guard.admit_all(keys)
        self._store(keys, batch, records)
        return len(batch)

    def _store(
        self, keys: list[tuple[str, str]], batch: LatencyBatch, records: Sequence[LatencyRecord]
    ) -> None:
        now = self._clock()
        items = list(zip(repeat(now), batch.latencies_ms, batch.successes))
        with self._lock:
            self._window.extend(keys, items)
        if self._metrics is not None:
            self._metrics.observe_many(keys, batch.latencies_ms, batch.successes,
                                       batch.trace_ids)
        if self._forwarder is not None:
            for record in records:
                self._forwarder.submit(record)

    def _samples(
        self,
        service: str,
        operation: str | None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[tuple[float, float, bool]]:
        with self._lock:
            if operation is not None:
                groups = [self._window.items((service, operation))]
            else:
                groups = [items for (svc, _), items in self._window.groups() if svc == service]
            samples = [s for items in groups for s in items]
        if since is not None:
            samples = [s for s in samples if s[0] > since]
        if until is not None:
            samples = [s for s in samples if s[0] <= until]
        return samples

    def get_latency_stats(self, service: str, operation: str | None = None) -> dict[str, Any]:
        """{service, operation, count, success_ratio, mean/min/max/p50/p95/p99_ms} of the window."""
        # No data: count 0 and nulls, never an error.
        samples = self._samples(service, operation)
        stats = summarize([s[1] for s in samples], sum(1 for s in samples if s[2]))
        return {"service": service, "operation": operation, **stats}

    def get_average(self, service: str, minutes: float = 5) -> dict[str, Any]:
        """{service, minutes, average_ms, count} over the last `minutes` (null when empty)."""
        minutes = _check_positive("minutes", minutes)
        latencies = [s[1] for s in self._samples(service, None, since=self._clock() - minutes * 60)]
        return {
            "service": service,
            "minutes": minutes,
            "average_ms": mean(latencies),
            "count": len(latencies),
        }

    def get_average_latency(self, service: str, minutes: float = 5) -> float | None:
        """Mean latency (ms) of all the service's operations over the last `minutes`, or None."""
        return self.get_average(service, minutes)["average_ms"]

    def get_latency_trend(
        self, service: str, operation: str | None = None, minutes: float = 5
    ) -> dict[str, Any]:
        """{trend, current_mean_ms, previous_mean_ms, change_ratio}: last `minutes` vs the prior."""
        # "stable" within ±10 % (inclusive), and also when either window is empty.
        span = _check_positive("minutes", minutes) * 60
        now = self._clock()
        samples = self._samples(service, operation, since=now - 2 * span)
        current = mean([s[1] for s in samples if s[0] > now - span])
        previous = mean([s[1] for s in samples if s[0] <= now - span])
        trend = trend_of(current, previous)
        return {
            "trend": trend["trend"],
            "current_mean_ms": current,
            "previous_mean_ms": previous,
            "change_ratio": trend["change_ratio"],
        }

    def get_high_latency_services(
        self, threshold_ms: float = 1000, minutes: float = 5
    ) -> list[dict[str, Any]]:
        """[{service, operation, mean_ms, p95_ms, count}] of pairs whose mean is over threshold."""
        # Over the last `minutes`, strictly above `threshold_ms`, slowest mean first.
        threshold_ms = _check_threshold(threshold_ms)
        since = self._clock() - _check_positive("minutes", minutes) * 60
        with self._lock:
            groups = [
                (key, [s[1] for s in items if s[0] > since]) for key, items in self._window.groups()
            ]
        found = []
        for (service, operation), latencies in groups:
            average = mean(latencies)
            if average is not None and average > threshold_ms:
                found.append(
                    {
                        "service": service,
                        "operation": operation,
                        "mean_ms": average,
                        "p95_ms": percentile(sorted(latencies), 0.95),
                        "count": len(latencies),
                    }
                )
        found.sort(key=lambda row: (-row["mean_ms"], row["service"], row["operation"]))
        return found

    def clear(self, service: str | None = None) -> int:
        """Empty the window (or one service's part of it); returns how many records went."""
        # Prometheus series and the guard's admitted pairs stay: counters never go back.
        with self._lock:
            if service is None:
                return self._window.clear()
            return self._window.remove(lambda key: key[0] == service)

    def __len__(self) -> int:
        return len(self._window)


def trend_of(current: float | None, previous: float | None) -> dict[str, Any]:
    """{trend, change_ratio} of two means: over +10 % degrading, under -10 % improving."""
    if current is None or previous is None:
        return {"trend": "stable", "change_ratio": None}
    if previous == 0:
        if current == 0:
            return {"trend": "stable", "change_ratio": 0.0}
        return {"trend": "degrading", "change_ratio": None}  # from zero, any rise is unbounded
    change = (current - previous) / previous
    if not math.isfinite(change):  # a vanishing previous mean: the rise has no useful ratio
        return {"trend": "degrading" if change > 0 else "improving", "change_ratio": None}
    if change > STABLE_BAND:
        trend = "degrading"
    elif change < -STABLE_BAND:
        trend = "improving"
    else:
        trend = "stable"
    return {"trend": trend, "change_ratio": change}
