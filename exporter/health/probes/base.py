"""The one prober signature every protocol implements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ...config.model import ServiceConfig
from ..result import ProbeResult


@dataclass
class ProbeContext:
    """What a prober may use besides its service's configuration.

    `timeout` is the time this probe has (the service's timeout, or less when a
    Prometheus scrape timeout is shorter); `run_probe` enforces it as a hard limit.
    `trace`, when set, receives the probe's own log lines (resolve, connect, each phase,
    the decision and its reason) for `/probe?debug=true`; probers call `ctx.note(...)`,
    which costs nothing when nobody listens. A line never holds a secret.
    `push` is the checker's PushBoard and `last_result` the service's last recorded
    result: the push prober reads them, nothing else does.
    """

    timeout: float
    allowed_targets: tuple[str, ...] = ()
    trace: Callable[[str], None] | None = None
    push: Any = None  # PushBoard | None
    last_result: ProbeResult | None = None

    def note(self, line: str) -> None:
        """Hand one debug line to `trace`, if anyone listens."""
        if self.trace is not None:
            self.trace(line)


Prober = Callable[[ServiceConfig, ProbeContext], Awaitable[ProbeResult]]
