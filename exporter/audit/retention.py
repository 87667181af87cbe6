"""Retention: a daily purge of events older than AUDIT_RETENTION, recorded in the chain first.

The AUDIT_PURGED record is signed with AUDIT_CHECKPOINT_KEY and copied to the checkpoint
directory (exporter/audit/purges.py says what it holds and what verification checks)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from loguru import logger

from . import purges
from .chain import format_time
from .errors import AuditError
from .events import PendingEvent, parse_event

DAY = 86400.0


class Retention:
    """Purges whole expired partitions (rows in SQLite) behind a signed AUDIT_PURGED record."""

    def __init__(self, store, retention: float, *, key: bytes | None = None,
                 directory: str | Path | None = None, actor: str = "usdcop-exporter",
                 clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.retention = retention
        self.key = key
        self.directory = directory
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
                data = {**data, "at": format_time(now), "retention": self.retention}
                data["signature"] = purges.sign(data, self.key)
                return parse_event({"event_type": "AUDIT_PURGED", "actor": self.actor,
                                    "data": data}, now=now, reserved=True)

            result = await self.store.purge(horizon, make_event)
            if result.get("event") and self.directory is not None:
                try:
                    await asyncio.to_thread(purges.write_file, self.directory,
                                            result["event"]["data"])
                except OSError as exc:  # the purge is done and recorded in the chain
                    logger.error("audit purge record not written to {}: {}", self.directory, exc)
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
