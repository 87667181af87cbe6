"""Summary statistics of latency samples: mean, extremes and interpolated percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of sorted values by linear interpolation, as numpy's default."""
    if not ordered:
        raise ValueError("percentile of no values")
    rank = q * (len(ordered) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    fraction = rank - lo
    low = ordered[lo]
    return low + (ordered[hi] - low) * fraction if fraction else low


def summarize(latencies: Sequence[float], successes: int) -> dict[str, float | int | None]:
    """{count, success_ratio, mean_ms, min_ms, max_ms, p50_ms, p95_ms, p99_ms}; nulls when empty."""
    count = len(latencies)
    if count == 0:
        return {
            "count": 0,
            "success_ratio": None,
            "mean_ms": None,
            "min_ms": None,
            "max_ms": None,
            "p50_ms": None,
            "p95_ms": None,
            "p99_ms": None,
        }
    ordered = sorted(latencies)
    return {
        "count": count,
        "success_ratio": successes / count,
        "mean_ms": math.fsum(ordered) / count,
        "min_ms": ordered[0],
        "max_ms": ordered[-1],
        "p50_ms": percentile(ordered, 0.50),
        "p95_ms": percentile(ordered, 0.95),
        "p99_ms": percentile(ordered, 0.99),
    }


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean, or None for no values."""
    return math.fsum(values) / len(values) if values else None
