"""Retention: a daily purge of events older than AUDIT_RETENTION, recorded in the chain first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger

from .errors import AuditError
from .events import PendingEvent, parse_event

DAY = 86400.0


class Retention:
    """Purges whole expired partitions (rows in SQLite) behind an AUDIT_PURGED record."""

    def __init__(self, store, retention: float, *, actor: str = "usdcop-exporter",
                 clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.retention = retention
        self.actor = actor
        self.clock = clock or (lambda: datetime.now(UTC))
        self.last: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def purge(self) -> dict[str, Any]:
        """Purge now: `{purged, through_sequence}` (0 and null when nothing expired)."""
        async with self._lock:  # the daily job and an admin DELETE never overlap
            now = self.clock()
            horizon = now - timedelta(seconds=self.retention)

            def make_event(data: dict) -> PendingEvent:
                return parse_event({"event_type": "AUDIT_PURGED", "actor": self.actor,
                                    "data": data}, now=now)

            result = await self.store.purge(horizon, make_event)
        self.last = result
        if result["purged"]:
            logger.info("audit retention purged {} events through sequence {} ({} partitions)",
                        result["purged"], result["through_sequence"], len(result["partitions"]))
        return result

    async def run(self, interval: float = DAY, first_delay: float = 60.0) -> None:
        """Purge daily until cancelled (first shortly after start-up)."""
        await asyncio.sleep(first_delay)
        while True:
            with contextlib.suppress(AuditError):
                await self.purge()
            await asyncio.sleep(interval)
