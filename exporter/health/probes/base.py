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
    `http` is a shared aiohttp session whose connector opens a fresh connection per
    probe; None makes the http prober open its own.
    """

    timeout: float
    http: Any = None  # aiohttp.ClientSession | None
    allowed_targets: tuple[str, ...] = ()


Prober = Callable[[ServiceConfig, ProbeContext], Awaitable[ProbeResult]]
