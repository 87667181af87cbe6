"""The write path: one task batches appends into the store, spools during outages, drains.

Every acknowledgement means durable: committed in the store, or fsynced in the spool. One
task owns both the store's write side and the spool, so order is simple: while anything
waits in the spool, new events join its end, and the drain empties it oldest first. A
drained record may have reached the store just before a crash; replaying it is harmless
because the store recognises its event_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

from loguru import logger

from .errors import AuditConflict, AuditError, AuditRejected, AuditUnavailable, StoreUnavailable
from .events import PendingEvent
from .metrics import AuditMetrics
from .spool import Spool, SpoolFull


@dataclass
class _Submission:
    unit: list[PendingEvent]
    future: asyncio.Future = field(repr=False)


class AuditWriter:
    """Owns a store (PgStore or SqliteStore) and, for Postgres, the outage spool."""

    def __init__(self, store, spool: Spool | None = None, metrics: AuditMetrics | None = None,
                 *, max_batch: int = 1000, drain_batch: int = 500, retry_min: float = 0.2,
                 retry_max: float = 5.0) -> None:
        self.store = store
        self.spool = spool
        self.metrics = metrics
        self.max_batch = max_batch
        self.drain_batch = drain_batch
        self.retry_min, self.retry_max = retry_min, retry_max
        self.store_up = False
        self._queue: list[_Submission] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None
        self._prober: asyncio.Task | None = None

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and spool, try the store once, and start the writer task.

        On failure (spool held by another process, SQLite unreadable) everything opened so
        far is closed again before the error propagates."""
        if self.spool is not None:
            report = await asyncio.to_thread(self.spool.open)  # first: it may be locked
            if report["pending"]:
                logger.info("audit spool {} holds {} events to drain", self.spool.dir,
                            report["pending"])
            self._count_quarantine()
        try:
            await self.store.open()
            try:
                await self.store.ensure_ready()
                self._set_up(True)
            except (StoreUnavailable, AuditRejected) as exc:
                if self.spool is None:
                    raise
                self._set_down(exc)
        except BaseException:
            if self._prober is not None:
                self._prober.cancel()
            await self.store.close()
            if self.spool is not None:
                await asyncio.to_thread(self.spool.close)
            raise
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def close(self, flush_timeout: float = 5.0) -> None:
        """Refuse new events, write what was accepted, drain what time allows, stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None and not self._task.done():
            self._idle.clear()
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), flush_timeout)
        for task in (self._task, self._prober):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for sub in self._queue:
            if not sub.future.done():
                sub.future.set_exception(AuditUnavailable("the audit writer is shutting down"))
        self._queue.clear()
        if self.spool is not None:
            await asyncio.to_thread(self.spool.close)
        await self.store.close()

    @property
    def running(self) -> bool:
        """True while the writer task runs."""
        return self._task is not None and not self._task.done()

    # -- submitting ---------------------------------------------------------------------

    async def submit(self, unit: list[PendingEvent]) -> list[tuple[str, dict]]:
        """Append events as one unit; returns (outcome, event) per event once durable."""
        if self._closing or not self.running:
            raise AuditUnavailable("the audit writer is not running")
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Submission(unit, future))
        self._idle.clear()
        self._wake.set()
        return await asyncio.shield(future)

    def _take(self) -> list[_Submission]:
        taken, size = [], 0
        while self._queue and (not taken or size + len(self._queue[0].unit) <= self.max_batch):
            sub = self._queue.pop(0)
            taken.append(sub)
            size += len(sub.unit)
        return taken

    # -- the task -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            draining = self.spool is not None and not self.spool.empty and self.store_up
            if not self._queue and not draining:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                subs = self._take()
                if subs:
                    await self._write(subs)
                if self.spool is not None and not self.spool.empty and self.store_up:
                    await self._drain_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a fault here must not stop the trail; the batch is answered
                logger.exception("audit writer: unexpected error")
                if self.metrics:
                    self.metrics.write_failures.labels("other").inc()
                await asyncio.sleep(self.retry_min)

    async def _write(self, subs: list[_Submission]) -> None:
        if self.spool is not None and (not self.spool.empty or not self.store_up):
            await self._to_spool(subs)
            return
        started = time.perf_counter()
        try:
            results = await self.store.append([s.unit for s in subs])
        except StoreUnavailable as exc:
            self._failure(exc.reason)
            self._set_down(exc)
            if self.spool is not None:
                await self._to_spool(subs)
            else:
                self._fail(subs, AuditUnavailable(f"audit store unavailable: {exc}"))
            return
        except AuditRejected as exc:
            self._failure("rejected")
            if len(subs) == 1:
                self._count(subs[0].unit, "rejected")
                self._fail(subs, exc)
                return
            for sub in subs:  # find the refused unit; the others still go in
                await self._write([sub])
            return
        except Exception as exc:
            self._failure("other")
            self._fail(subs, AuditUnavailable(f"audit store failed: {exc.__class__.__name__}"))
            raise
        if self.metrics:
            self.metrics.write_duration.observe(time.perf_counter() - started)
        for sub, result in zip(subs, results, strict=True):
            if isinstance(result, AuditConflict):
                self._count(sub.unit, "conflict")
                _settle(sub.future, exc=result)
            else:
                for event, (outcome, _) in zip(sub.unit, result, strict=True):
                    self._count([event], outcome)
                _settle(sub.future, result)
        await self._note_head(results)

    async def _to_spool(self, subs: list[_Submission]) -> None:
        payloads = [json.dumps(e.to_json(), ensure_ascii=False).encode()
                    for s in subs for e in s.unit]
        try:
            await asyncio.to_thread(self.spool.append, payloads)
        except SpoolFull as exc:
            for sub in subs:
                self._count(sub.unit, "rejected")
            self._fail(subs, AuditUnavailable(str(exc), code="spool_full", retry_after=30))
            return
        for sub in subs:
            self._count(sub.unit, "spooled")
            _settle(sub.future, [("spooled", e.spooled_view()) for e in sub.unit])

    async def _drain_once(self) -> None:
        payloads, position = await asyncio.to_thread(self.spool.read, self.drain_batch)
        units, sources = [], []
        for payload in payloads:
            try:
                units.append([PendingEvent.from_json(json.loads(payload))])
                sources.append(payload)
            except (ValueError, KeyError, TypeError) as exc:
                await self._dead_letter(payload, f"unreadable spool record: {exc}")
        try:
            results = await self._append_isolating(units, sources)
        except StoreUnavailable as exc:
            self._failure(exc.reason)
            self._set_down(exc)
            return
        await asyncio.to_thread(self.spool.commit, position, len(payloads))
        self._count_quarantine()
        await self._note_head([r for r in results if r is not None])

    async def _append_isolating(self, units, sources):
        """Append drained units; a unit the database refuses for good goes to dead letter."""
        if not units:
            return []
        try:
            results = await self.store.append(units)
        except AuditRejected:
            self._failure("rejected")
            if len(units) == 1:
                self._count(units[0], "rejected")
                await self._dead_letter(sources[0], "rejected by the database")
                return [None]
            results = []
            for unit, source in zip(units, sources, strict=True):
                results.extend(await self._append_isolating([unit], [source]))
            return results
        for unit, source, result in zip(units, sources, results, strict=True):
            if isinstance(result, AuditConflict):
                self._count(unit, "conflict")
                await self._dead_letter(source, str(result))
            else:
                self._count(unit, result[0][0])
        return results

    async def _dead_letter(self, payload: bytes, reason: str) -> None:
        await asyncio.to_thread(self.spool.dead_letter, payload, reason)
        logger.error("audit event moved to the dead-letter file of {}: {}", self.spool.dir, reason)
        if self.metrics:
            self.metrics.dead_letter.inc()

    # -- store state --------------------------------------------------------------------

    def _set_up(self, up: bool) -> None:
        self.store_up = up
        if self.metrics and self.store.kind == "postgres":
            self.metrics.state.postgres_up = up

    def _set_down(self, exc: Exception) -> None:
        if self.store_up or self._prober is None:
            logger.warning("audit store unavailable, spooling: {}", exc)
        self._set_up(False)
        if self._prober is None or self._prober.done():
            self._prober = asyncio.create_task(self._probe(), name="audit-store-probe")

    async def _probe(self) -> None:
        delay = self.retry_min
        while True:
            await asyncio.sleep(delay)
            try:
                await self.store.ping()
            except AuditError as exc:
                delay = min(delay * 2, self.retry_max)
                logger.debug("audit store still unavailable: {}", exc)
                continue
            logger.info("audit store is back; draining the spool")
            self._set_up(True)
            self._wake.set()
            return

    # -- bookkeeping --------------------------------------------------------------------

    def _count(self, unit: list[PendingEvent], outcome: str) -> None:
        if self.metrics:
            for event in unit:
                self.metrics.count(event.event_type, outcome)

    def _failure(self, reason: str) -> None:
        if self.metrics:
            self.metrics.write_failures.labels(reason).inc()

    def _count_quarantine(self) -> None:
        if self.spool is not None and self.spool.quarantined_new:
            if self.metrics:
                self.metrics.quarantined.inc(self.spool.quarantined_new)
            self.spool.quarantined_new = 0

    async def _note_head(self, results) -> None:
        if not self.metrics:
            return
        best = self.metrics.state.head_sequence or 0
        for result in results:
            if isinstance(result, list):
                for _, event in result:
                    if event.get("sequence"):
                        best = max(best, event["sequence"])
        if best:
            self.metrics.state.head_sequence = best

    @staticmethod
    def _fail(subs: list[_Submission], exc: Exception) -> None:
        for sub in subs:
            _settle(sub.future, exc=exc)


def _settle(future: asyncio.Future, result=None, exc: Exception | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
