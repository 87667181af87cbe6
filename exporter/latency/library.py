"""The in-process latency kit of a trading engine, configured from the environment."""

from __future__ import annotations

import atexit
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from ..config.errors import ConfigError
from .forwarder import Forwarder
from .guard import DEFAULT_MAX_PAIRS, NAME_RE, PairGuard
from .metrics import LatencyMetrics
from .monitor import DEFAULT_WINDOW, LatencyMonitor
from .performance import PerformanceLogger


@dataclass(frozen=True)
class LatencyLibrary:
    """A LatencyMonitor and a PerformanceLogger sharing a private registry, guard and forwarder."""

    registry: CollectorRegistry
    metrics: LatencyMetrics
    guard: PairGuard
    monitor: LatencyMonitor
    performance: PerformanceLogger
    forwarder: Forwarder | None

    @classmethod
    def build(
        cls,
        *,
        window: int = DEFAULT_WINDOW,
        max_pairs: int = DEFAULT_MAX_PAIRS,
        service_name: str = "app",
        exporter_url: str | None = None,
        token: str | None = None,
    ) -> LatencyLibrary:
        """Wire the parts; forwarding only when `exporter_url` is given."""
        # A registry of its own: the library never touches prometheus_client's global one.
        registry = CollectorRegistry(auto_describe=True)
        metrics = LatencyMetrics(registry)
        guard = PairGuard(max_pairs, metrics)
        forwarder = Forwarder(exporter_url, token, metrics) if exporter_url else None
        monitor = LatencyMonitor(window, metrics=metrics, guard=guard, forwarder=forwarder)
        performance = PerformanceLogger(
            service_name, metrics=metrics, guard=guard, forwarder=forwarder, window=window
        )
        return cls(registry, metrics, guard, monitor, performance, forwarder)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LatencyLibrary:
        """Build from the environment; a bad value raises ConfigError naming the variable."""
        # LATENCY_WINDOW, LATENCY_MAX_PAIRS, EXPORTER_URL, EXPORTER_API_TOKEN(_FILE) and
        # EXPORTER_SERVICE_NAME only: an unrelated sidecar setting must not break an engine.
        env = os.environ if environ is None else environ
        url = env.get("EXPORTER_URL") or None
        service_name = env.get("EXPORTER_SERVICE_NAME") or "app"
        if NAME_RE.fullmatch(service_name) is None:
            raise ConfigError(
                f"must match {NAME_RE.pattern}, got {service_name[:80]!r}",
                field="EXPORTER_SERVICE_NAME",
            )
        try:
            kit = cls.build(
                window=_positive_int(env, "LATENCY_WINDOW", DEFAULT_WINDOW),
                max_pairs=_positive_int(env, "LATENCY_MAX_PAIRS", DEFAULT_MAX_PAIRS),
                service_name=service_name,
                exporter_url=url,
                token=_secret(env, "EXPORTER_API_TOKEN"),
            )
        except ValueError as exc:  # only the forwarder's URL check is left to fail here
            raise ConfigError(str(exc), field="EXPORTER_URL") from None
        return kit._close_at_exit()

    @classmethod
    def from_settings(cls, settings: Any) -> LatencyLibrary:
        """Build from exporter.settings.Settings (latency, service name, URL and token fields)."""
        return cls.build(
            window=settings.latency_window,
            max_pairs=settings.latency_max_pairs,
            service_name=settings.service_name,
            exporter_url=settings.exporter_url,
            token=settings.api_token,
        )._close_at_exit()

    def _close_at_exit(self) -> LatencyLibrary:
        if self.forwarder is not None:
            atexit.register(self.forwarder.close)  # send what is queued when the engine exits
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Send what is still queued and stop forwarding."""
        if self.forwarder is not None:
            self.forwarder.close(timeout)


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise ConfigError(
            f"must be an integer between 1 and 999999999, got {text[:40]!r}", field=name
        )
    return int(text)


def _secret(env: Mapping[str, str], name: str) -> str | None:
    value, path = env.get(name) or None, env.get(f"{name}_FILE") or None
    if value and path:
        raise ConfigError(f"set {name} or {name}_FILE, not both", field=name)
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                value = handle.read().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}", field=f"{name}_FILE") from None
        if not value:
            raise ConfigError(f"{path} is empty", field=f"{name}_FILE")
    return value
