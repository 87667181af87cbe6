"""Reloading services.yaml: parse and validate the new file, then swap it into the checker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from loguru import logger

from ..config.errors import ConfigError
from ..config.loader import diff_configs, import_checks, load_config
from ..config.model import Config
from ..metrics import CoreMetrics
from .checker import HealthChecker
from .probes import preload

# digest, added, removed, changed: called after each reload that swapped a new file in.
ConfigListener = Callable[[str, list[str], list[str], list[str]], Awaitable[None]]


def load_services(path: str) -> Config:
    """Load the services file and import its python checks (ConfigError for either), and
    the probers its service types need (a reload runs this in a thread, off the loop)."""
    config = load_config(path)
    import_checks(config)
    preload(service.type for service in config.services)
    return config


class ConfigReloader:
    """Swaps a newly read services file into `checker`, one reload at a time.

    A file that does not load (ConfigError) keeps the running configuration and sets
    usdcop_config_reload_success to 0; listeners hear of every reload that swapped one in.
    """

    def __init__(self, checker: HealthChecker, metrics: CoreMetrics, path: str) -> None:
        self.checker = checker
        self.metrics = metrics
        self.path = path
        self.listeners: list[ConfigListener] = []
        self._lock = asyncio.Lock()

    def loaded(self) -> None:
        """Record the file loaded at start-up as a successful load."""
        self.metrics.reload_ok.set(1)
        self.metrics.reload_ts.set(time.time())

    async def reload(self) -> dict:
        """Parse and validate the services file, then swap it in; ConfigError keeps the old one."""
        metrics, checker, path = self.metrics, self.checker, self.path
        async with self._lock:
            try:
                config = await asyncio.to_thread(load_services, path)
            except ConfigError as exc:
                metrics.reload_ok.set(0)
                logger.error("reload of {} failed, keeping the running configuration: {}",
                             path, exc)
                raise
            old = checker.registry.config
            added, removed, changed = diff_configs(old, config) if old else ([], [], [])
            checker.registry.replace(config)
            checker.sync()
            self.loaded()
            logger.info(
                "reloaded {}: {} services ({} added, {} removed, {} changed)",
                path, len(config.services), len(added), len(removed), len(changed),
            )
            for listener in self.listeners:
                try:
                    await listener(config.digest or "", added, removed, changed)
                except Exception:
                    logger.exception("config-change listener failed")
            return {"status": "reloaded", "services": len(config.services), "added": added,
                    "removed": removed, "changed": changed, "digest": config.digest}
