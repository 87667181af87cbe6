"""Publishes each probe's health to `<ns>:health:<service>` for the rest of the stack.

The checker calls `listener` on its own path after every probe; that call only records
the result in a bounded buffer and wakes the writer task, never waits. A newer result
for a service replaces its pending one (only the latest matters); a result for a new
service when the buffer is full is dropped and counted. The writer sends everything
pending in one MULTI/EXEC with a TTL of 3 × the service's interval, so a sidecar that
stops publishing lets the keys expire instead of leaving a stale "healthy" behind.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger

from .client import RedisClient
from .errors import CacheError, CacheUnavailable, CacheValueError
from .layout import health_key
from .metrics import HealthWriterMetrics


class HealthWriter:
    """Writes health results to Redis from a background task fed by `listener`."""

    def __init__(self, client: RedisClient, *, max_pending: int = 10_000,
                 metrics: HealthWriterMetrics | None = None) -> None:
        self.client = client
        self.max_pending = max_pending
        self.metrics = metrics
        self._pending: dict[str, tuple[dict[str, Any], float]] = {}
        self._wake = asyncio.Event()
        self._dropping = False
        self.written = 0

    def listener(self, event: Any) -> None:
        """Checker listener: record `event.health` for writing; never blocks, never raises."""
        name = event.service.name
        if name not in self._pending and len(self._pending) >= self.max_pending:
            self._drop("queue_full", 1)
            if not self._dropping:
                self._dropping = True
                logger.warning("health publisher: {} results pending, dropping new ones", self.max_pending)
            return
        self._pending[name] = (event.health, 3.0 * float(event.service.interval))
        self._wake.set()

    def _drop(self, reason: str, n: int) -> None:
        if self.metrics is not None:
            self.metrics.dropped.labels(reason).inc(n)

    async def flush(self) -> int:
        """Write everything pending now; returns how many keys were written (0 on failure)."""
        batch, self._pending = self._pending, {}
        self._wake.clear()
        if not batch:
            return 0
        if self._dropping:
            self._dropping = False
            logger.info("health publisher: keeping up again")
        try:
            async with self.client.atomic() as tx:
                for name, (health, ttl) in batch.items():
                    try:
                        tx.set(health_key(name), health, ttl=ttl)
                    except CacheValueError as exc:  # one odd result must not sink the batch
                        logger.warning("health publisher: {}", exc)
        except CacheUnavailable:
            # The backend logged the outage once; old results are not worth replaying.
            self._drop("unavailable", len(batch))
            return 0
        except CacheError as exc:
            logger.warning("health publisher: write refused: {}", exc)
            self._drop("unavailable", len(batch))
            return 0
        self.written += len(batch)
        return len(batch)

    async def run(self) -> None:
        """Write pending results as they come, until cancelled."""
        while True:
            await self._wake.wait()
            await self.flush()
