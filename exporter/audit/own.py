"""The sidecar's own events: the one path for the reserved types.

Health status changes (SERVICE_STATUS_CHANGED), reloads (CONFIG_CHANGED) and the desk
(TRADING_HALTED, TRADING_RESUMED, RISK_LIMIT_BREACHED) write through a SidecarEvents built
by AuditService; AUDIT_PURGED is written by the retention purge inside the store. The API
and the library's AuditLogger refuse all of them from callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from loguru import logger

from .logger import AuditLogger, event_object

ACTOR = "usdcop-exporter"


class SidecarEvents:
    """Writes the sidecar's own events (reserved types included) through an AuditLogger."""

    def __init__(self, audit: AuditLogger, queue_max: int = 10000) -> None:
        self.audit = audit
        self._queue_max = queue_max
        self._hooks: asyncio.Queue | None = None
        self._hook_task: asyncio.Task | None = None
        self._early: list[dict] = []

    async def start(self) -> None:
        """Start the AuditLogger and the task writing status changes."""
        await self.audit.start()
        if self._hook_task is None:
            self._hooks = asyncio.Queue(self._queue_max)
            for item in self._early:
                self._hooks.put_nowait(item)
            self._early.clear()
            self._hook_task = asyncio.create_task(self._hook_loop(), name="audit-hooks")

    async def close(self) -> None:
        """Write the status changes still queued (for up to 2 s), then stop the task."""
        if self._hooks is not None and self._hook_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hooks.join(), 2.0)
            self._hook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._hook_task
            self._hook_task = None

    async def log_event(self, event_type: str, symbol: str | None = None,
                        data: Mapping | None = None, event_id: str | uuid.UUID | None = None,
                        timestamp: datetime | str | None = None, actor: str | None = None
                        ) -> dict[str, Any]:
        """AuditLogger.log_event for the sidecar's own writers: reserved types allowed."""
        obj = event_object(event_type, symbol, data, event_id, timestamp, actor)
        (_, event), = await self.audit.submit_own([self.audit.validate(obj, reserved=True)])
        return event

    async def record_config_change(self, digest: str, added, removed, changed) -> dict:
        """CONFIG_CHANGED for a services file reload: its hash and the service names only."""
        return await self.log_event("CONFIG_CHANGED", data={
            "what": "services", "sha256": digest, "added": sorted(added),
            "removed": sorted(removed), "changed": sorted(changed)}, actor=ACTOR)

    def status_listener(self, event) -> None:
        """Health checker listener: a status change becomes SERVICE_STATUS_CHANGED (never blocks)."""
        if not event.changed:
            return
        old, new = event.old_status, event.new_status
        health = event.health or {}
        probe = (health.get("metadata") or {}).get("probe") or {}
        item = {
            "event_type": "SERVICE_STATUS_CHANGED", "actor": ACTOR,
            "data": {"service": event.service.name, "old_status": old, "new_status": new,
                     "reason": probe.get("reason"), "latency_ms": health.get("latency_ms"),
                     "last_check": health.get("last_check")},
        }
        if self._hooks is None:
            self._early.append(item)
            return
        try:
            self._hooks.put_nowait(item)
        except asyncio.QueueFull:
            logger.error("audit: status change of {} dropped, the hook queue is full",
                         event.service.name)
            if self.audit.writer.metrics:
                self.audit.writer.metrics.count("SERVICE_STATUS_CHANGED", "rejected")

    async def _hook_loop(self) -> None:
        while True:
            item = await self._hooks.get()
            try:
                await self.audit.submit_own([self.audit.validate(item, reserved=True)])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # logged, never fatal to the loop
                logger.error("audit: could not record {}: {}", item["event_type"], exc)
            finally:
                self._hooks.task_done()
