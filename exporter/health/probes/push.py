"""Push checks: nothing is probed; the job reports in (POST /api/health/push) and silence
longer than `max_silence` is a failure with reason `silence`.

`PushBoard` keeps each push service's last report. A report is recorded as that service's
probe result when it arrives; the scheduler's ticks of a push service only judge silence.
The silence clock of a service starts at its last report, or, before any report, when
the board first saw the service (start-up, or the reload that added it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from ...config.model import ServiceConfig
from ..result import ProbeResult
from .base import ProbeContext

PUSH_STATUSES = ("healthy", "degraded", "unhealthy")


def report_result(status: str, latency_ms: float | None, message: str | None) -> ProbeResult:
    """The probe result a report stands for: `unhealthy` is a failure (reported_unhealthy)."""
    duration = (latency_ms or 0.0) / 1000.0
    extra = {"pushed": True}
    if status == "unhealthy":
        return ProbeResult.failure("reported_unhealthy", duration,
                                   message or "the service reported unhealthy",
                                   reported="unhealthy", extra=extra)
    if message:
        extra["report"] = message
    return ProbeResult(success=True, duration_s=duration, reported=status, extra=extra)


class PushBoard:
    """Last report per push service, and when each service's silence clock started."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._last: dict[str, float] = {}
        self._since: dict[str, float] = {}

    def report(self, name: str) -> float:
        """Note that `name` reported now; returns the time."""
        now = self.clock()
        self._last[name] = now
        return now

    def forget(self, name: str) -> None:
        """Drop a removed service."""
        self._last.pop(name, None)
        self._since.pop(name, None)

    def silence(self, service: ServiceConfig) -> tuple[float, bool]:
        """(seconds since the last report or since watching began, whether any report came)."""
        now = self.clock()
        last = self._last.get(service.name)
        if last is not None:
            return now - last, True
        return now - self._since.setdefault(service.name, now), False

    def silent_result(self, service: ServiceConfig) -> ProbeResult | None:
        """A `silence` failure when the service has been silent too long, else None."""
        quiet, reported = self.silence(service)
        limit = service.max_silence or 0.0
        if quiet <= limit:
            return None
        what = "the last report" if reported else "watching began, with no report yet"
        return ProbeResult.failure("silence", 0.0, f"no report for {quiet:.0f}s since {what} "
                                                    f"(max_silence {limit:g}s)")


async def probe_push(service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
    """The state a push service is in now: its silence failure, its last report, or (when
    nothing arrived yet and the silence is within bounds) a failure saying so."""
    board: PushBoard | None = ctx.push
    if board is None:
        return ProbeResult.failure("other", 0.0, "push checks need the sidecar's report board")
    quiet, reported = board.silence(service)
    ctx.note(f"push service: {'last report' if reported else 'watching'} {quiet:.3f}s ago, "
             f"max_silence {service.max_silence:g}s")
    silent = board.silent_result(service)
    if silent is not None:
        ctx.note(f"failure (silence): {silent.message}")
        return silent
    last = ctx.last_result
    if reported and last is not None:
        ctx.note("the last report decides: " + ("success" if last.success else f"failure ({last.reason})"))
        return replace(last)
    ctx.note("no report has arrived yet; nothing was observed")
    return ProbeResult.failure("silence", 0.0, "no report has arrived yet")
