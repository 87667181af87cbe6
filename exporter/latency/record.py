"""LatencyRecord: one latency measurement, as the monitor keeps it and the forwarder sends it."""

from __future__ import annotations

from typing import NamedTuple


class LatencyRecord(NamedTuple):
    """One latency measurement as recorded or posted (a tuple: batches build many)."""

    service: str
    operation: str
    latency_ms: float
    success: bool = True
    trace_id: str | None = None
