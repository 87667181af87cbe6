"""The sidecar's audit component: logger and writer plus checkpoints, verification,
retention and partition maintenance running in the background."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from loguru import logger

from .checkpoints import Checkpointer
from .errors import AuditError
from .logger import AuditLogger, build_store
from .metrics import AuditMetrics, AuditState
from .own import SidecarEvents
from .retention import Retention
from .verify import verify_store
from .writer import AuditWriter

MAINTENANCE_INTERVAL = 3600.0


class AuditService:
    """Everything the audit feature runs; start() and close() bracket its life."""

    def __init__(self, settings, registry, *, clock=None) -> None:
        self.settings = settings
        store, spool = build_store(settings, clock=clock)
        self.state = AuditState(spool=spool)
        self.metrics = AuditMetrics(registry, self.state)
        self.writer = AuditWriter(store, spool, self.metrics)
        self.logger = AuditLogger(self.writer, max_future_skew=settings.audit_max_future_skew,
                                  retention=settings.audit_retention)
        self.own = SidecarEvents(self.logger)  # the only writer of the reserved types
        self.store = store
        self.checkpointer = Checkpointer(
            store, settings.audit_checkpoint_dir, settings.audit_checkpoint_key,
            settings.audit_checkpoint_events, settings.audit_checkpoint_seconds, self.state)
        self.retention = Retention(store, settings.audit_retention,
                                   key=settings.audit_checkpoint_key,
                                   directory=settings.audit_checkpoint_dir)
        self.last_verify: dict[str, Any] | None = None
        self._verifying: asyncio.Task | None = None
        self._verifying_full = False
        self._tasks: list[asyncio.Task] = []

    @property
    def postgres(self) -> bool:
        """True when the store is Postgres (else embedded SQLite)."""
        return self.store.kind == "postgres"

    async def start(self) -> None:
        """Start the writer, then the background loops."""
        await self.own.start()
        loops = [("audit-checkpoints", self.checkpointer.run()),
                 ("audit-verify", self._verify_loop()),
                 ("audit-retention", self._retention_loop())]
        if self.postgres:
            loops.append(("audit-maintenance", self._maintenance_loop()))
        self._tasks = [asyncio.create_task(coro, name=name) for name, coro in loops]

    async def close(self) -> None:
        """Stop the loops, write a last checkpoint, flush the writer."""
        for task in [*self._tasks, self._verifying]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks = []
        await self.own.close()  # queued status changes first: the last checkpoint covers them
        if self.writer.store_up:
            with contextlib.suppress(TimeoutError):  # a frozen store must not hold up the stop
                await asyncio.wait_for(self.checkpointer.final(), 2.0)
        await self.logger.close()

    def dependency(self) -> dict[str, Any]:
        """Postgres' state for /readyz."""
        spool = self.state.spool
        return {"up": self.writer.store_up,
                "spool_events": spool.pending if spool is not None else 0}

    async def verify(self, full: bool = False) -> dict[str, Any]:
        """Verify the chain now (incremental unless `full`); a running verification that
        covers as much is joined, one that does not is waited for first."""
        while self._verifying is not None and not self._verifying.done():
            if self._verifying_full or not full:
                return await asyncio.shield(self._verifying)
            with contextlib.suppress(AuditError):
                await asyncio.shield(self._verifying)
        self._verifying_full = full
        self._verifying = asyncio.create_task(self._verify(full), name="audit-verify-once")
        return await asyncio.shield(self._verifying)

    async def _verify(self, full: bool) -> dict[str, Any]:
        result = await verify_store(self.store, self.settings.audit_checkpoint_dir,
                                    self.settings.audit_checkpoint_key, full=full,
                                    retention=self.settings.audit_retention)
        self.last_verify = result
        # usdcop_audit_last_verify_ok speaks for the whole chain: only a full run may set it
        # to 1. An incremental run (any reader's GET) can report a break, never clear one.
        if full or not result["ok"]:
            self.state.last_verify_ts = time.time()
            self.state.last_verify_ok = result["ok"]
        if result["head_sequence"]:
            self.state.head_sequence = max(self.state.head_sequence or 0, result["head_sequence"])
        if not result["ok"]:
            logger.error("audit chain verification failed: {}", result["first_broken"])
        return result

    async def _verify_loop(self) -> None:
        await asyncio.sleep(min(60.0, self.settings.audit_verify_interval))
        while True:
            try:
                await self.verify(full=True)
            except AuditError as exc:
                logger.warning("audit verification could not run: {}", exc)
            await asyncio.sleep(self.settings.audit_verify_interval)

    async def _retention_loop(self) -> None:
        await asyncio.sleep(60.0)
        while True:
            try:
                await self.retention.purge()
            except AuditError as exc:
                logger.warning("audit retention could not run: {}", exc)
            await asyncio.sleep(86400.0)

    async def _maintenance_loop(self) -> None:
        while True:
            try:
                report = await self.store.maintain()
                self.state.default_partition_rows = report["default_partition_rows"]
                if report["created"]:
                    logger.info("audit partitions created: {}", ", ".join(report["created"]))
                if report["default_partition_rows"]:
                    logger.error("{} audit rows fell into the default partition",
                                 report["default_partition_rows"])
            except AuditError as exc:
                logger.warning("audit partition maintenance could not run: {}", exc)
            await asyncio.sleep(MAINTENANCE_INTERVAL if self.writer.store_up else 30.0)
