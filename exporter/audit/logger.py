"""AuditLogger: the audit API (typed helpers, log_event, get_audit_trail) over a store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import AuditConflict, AuditUnavailable, AuditValidationError
from .events import RESERVED_TYPES, PendingEvent, parse_event, parse_time
from .metrics import AuditMetrics, AuditState
from .query import MAX_LIMIT, Query, decode_cursor, page
from .spool import Spool
from .store_sqlite import SqliteStore
from .writer import AuditWriter

DAY = 86400.0
_HELPERS = {
    # helper: (event type, identifying field)
    "log_signal_generated": ("SIGNAL_GENERATED", "signal_id"),
    "log_position_opened": ("POSITION_OPENED", "position_id"),
    "log_position_closed": ("POSITION_CLOSED", "position_id"),
    "log_trade_executed": ("TRADE_EXECUTED", "trade_id"),
    "log_risk_limit_breached": ("RISK_LIMIT_BREACHED", "limit"),
    "log_config_changed": ("CONFIG_CHANGED", "what"),
}
# RISK_LIMIT_BREACHED and CONFIG_CHANGED are RESERVED_TYPES: their helpers keep their names
# and refuse, as log_event does.


def build_store(settings, clock=None):
    """The configured store (Postgres when POSTGRES_URL is set, else SQLite) and its spool."""
    if settings.postgres_url:
        from .store_pg import PgStore  # psycopg only where Postgres is used

        store = PgStore(settings.postgres_url, settings.postgres_admin_url,
                        clock=clock)
        spool = Spool(settings.audit_spool_dir, settings.audit_spool_max_bytes)
        return store, spool
    return SqliteStore(settings.audit_sqlite_path, clock=clock), None


class AuditLogger:
    """Compliance audit trail; every write is durable before it returns.

    Callers write their own event types; the RESERVED_TYPES (what the sidecar itself
    records) are refused with AuditValidationError naming `event_type`. The sidecar writes
    those through SidecarEvents (exporter/audit/own.py)."""

    def __init__(self, writer: AuditWriter, *, max_future_skew: float = 300.0,
                 retention: float | None = 30 * DAY, clock: Callable[[], datetime] | None = None
                 ) -> None:
        self.writer = writer
        self.store = writer.store
        self.max_future_skew = max_future_skew
        self.retention = retention
        self.clock = clock or (lambda: datetime.now(UTC))
        self._started = False
        self._closed = False
        self._start_lock: asyncio.Lock | None = None

    @classmethod
    def from_settings(cls, settings, registry=None) -> AuditLogger:
        """Build store, spool and (with a registry) metrics from the settings."""
        store, spool = build_store(settings)
        metrics = None
        if registry is not None:
            metrics = AuditMetrics(registry, AuditState(spool=spool))
        writer = AuditWriter(store, spool, metrics)
        return cls(writer, max_future_skew=settings.audit_max_future_skew,
                   retention=settings.audit_retention)

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store (migrating it), the spool, and the writer task."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            if self._closed:
                raise AuditUnavailable("this AuditLogger was closed")
            await self.writer.start()
            self._started = True

    async def close(self) -> None:
        """Write accepted batches, then stop."""
        if not self._started:
            return
        await self.writer.close(flush_timeout=3.0)
        self._started = False
        self._closed = True

    async def __aenter__(self) -> AuditLogger:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- writing ------------------------------------------------------------------------

    def validate(self, obj: Any, where: str = "", now: datetime | None = None,
                 *, reserved: bool = False) -> PendingEvent:
        """Validate one event object (AuditValidationError names the field); the reserved
        types only with `reserved` (the sidecar's own path)."""
        return parse_event(obj, where, now=now or self.clock(),
                           max_future_skew=self.max_future_skew, retention=self.retention,
                           reserved=reserved)

    async def submit(self, events: list[PendingEvent], batch: bool = False
                     ) -> list[tuple[str, dict]]:
        """Append validated events as one unit: (outcome, event) each, once durable.

        Events of the reserved types are refused here too, whoever validated them."""
        for index, event in enumerate(events):
            if event.event_type in RESERVED_TYPES:
                where = f"events[{index}].event_type" if batch else "event_type"
                raise AuditValidationError(
                    f"{where}: {event.event_type} is written by the sidecar itself and cannot"
                    " be submitted", where)
        return await self.submit_own(events, batch)

    async def submit_own(self, events: list[PendingEvent], batch: bool = False
                         ) -> list[tuple[str, dict]]:
        """The sidecar's own path (SidecarEvents): any type, reserved ones included."""
        seen: dict[str, bytes] = {}
        for index, event in enumerate(events):
            if seen.setdefault(event.event_id, event.digest) != event.digest:
                raise AuditConflict(event.event_id,
                                    f"events[{index}].event_id" if batch else "event_id")
        await self.start()
        try:
            return await self.writer.submit(events)
        except AuditConflict as exc:
            if batch:
                index = next(i for i, e in enumerate(events) if e.event_id == exc.event_id)
                exc.field = f"events[{index}].event_id"
            raise

    async def log_event(self, event_type: str, symbol: str | None = None,
                        data: Mapping | None = None, event_id: str | uuid.UUID | None = None,
                        timestamp: datetime | str | None = None, actor: str | None = None
                        ) -> dict[str, Any]:
        """Append one event; returns it (with sequence and hash, or null ones when spooled)."""
        obj = event_object(event_type, symbol, data, event_id, timestamp, actor)
        (outcome, event), = await self.submit([self.validate(obj)])
        return event

    async def _helper(self, name: str, record: Mapping, event_id, timestamp, actor) -> dict:
        event_type, key = _HELPERS[name]
        if not isinstance(record, Mapping):
            raise AuditValidationError(f"{name} takes a mapping", None)
        if record.get(key) is None:
            raise AuditValidationError(f"field {key!r} is required", f"data.{key}")
        data = {k: v for k, v in record.items() if k != "symbol"}
        return await self.log_event(event_type, record.get("symbol"), data, event_id,
                                    timestamp, actor)

    async def log_signal_generated(self, signal: Mapping, *, event_id=None, timestamp=None,
                                   actor=None) -> dict:
        """SIGNAL_GENERATED: {signal_id, action, confidence, price, model_version}."""
        return await self._helper("log_signal_generated", signal, event_id, timestamp, actor)

    async def log_position_opened(self, position: Mapping, *, event_id=None, timestamp=None,
                                  actor=None) -> dict:
        """POSITION_OPENED: {position_id, entry_price, quantity, entry_time, side}."""
        return await self._helper("log_position_opened", position, event_id, timestamp, actor)

    async def log_position_closed(self, position: Mapping, *, event_id=None, timestamp=None,
                                  actor=None) -> dict:
        """POSITION_CLOSED: {position_id, exit_price, quantity, exit_time, realized_pnl}."""
        return await self._helper("log_position_closed", position, event_id, timestamp, actor)

    async def log_trade_executed(self, trade: Mapping, *, event_id=None, timestamp=None,
                                 actor=None) -> dict:
        """TRADE_EXECUTED: {trade_id, signal_id, side, price, quantity, executed_at}."""
        return await self._helper("log_trade_executed", trade, event_id, timestamp, actor)

    async def log_risk_limit_breached(self, breach: Mapping, *, event_id=None, timestamp=None,
                                      actor=None) -> dict:
        """Refused (AuditValidationError on `event_type`): RISK_LIMIT_BREACHED is recorded
        by the sidecar's desk risk monitor only."""
        return await self._helper("log_risk_limit_breached", breach, event_id, timestamp, actor)

    async def log_config_changed(self, change: Mapping, *, event_id=None, timestamp=None,
                                 actor=None) -> dict:
        """Refused (AuditValidationError on `event_type`): CONFIG_CHANGED is recorded by the
        sidecar on every reload only."""
        return await self._helper("log_config_changed", change, event_id, timestamp, actor)

    # -- reading ------------------------------------------------------------------------

    async def get_audit_trail(self, event_type: str | None = None, symbol: str | None = None,
                              start_time: datetime | str | None = None,
                              end_time: datetime | str | None = None, limit: int = 100,
                              cursor: str | None = None) -> dict[str, Any]:
        """`{"events": [...], "next_cursor"}`, newest first; start inclusive, end exclusive."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise AuditValidationError(f"limit must be between 1 and {MAX_LIMIT}", "limit")
        q = Query(event_type=event_type, symbol=symbol,
                  start=_time(start_time, "start_time"), end=_time(end_time, "end_time"),
                  limit=limit, before=decode_cursor(cursor) if cursor else None)
        await self.start()
        return page(await self.store.query(q), limit)



def _time(value: datetime | str | None, field: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        if isinstance(value, datetime) and value.tzinfo is None:
            raise AuditValidationError(f"{field} must carry an offset", field)
        return value
    return parse_time(value, field)


def event_object(event_type: str, symbol: str | None = None, data: Mapping | None = None,
                 event_id: str | uuid.UUID | None = None, timestamp: datetime | str | None = None,
                 actor: str | None = None) -> dict[str, Any]:
    """log_event's arguments as an event object for validation."""
    obj: dict[str, Any] = {"event_type": event_type}
    if symbol is not None:
        obj["symbol"] = symbol
    if data is not None:
        obj["data"] = dict(data)
    if event_id is not None:
        obj["event_id"] = str(event_id)
    if timestamp is not None:
        if isinstance(timestamp, datetime):
            if timestamp.tzinfo is None:
                raise AuditValidationError("timestamp must carry an offset", "timestamp")
            timestamp = timestamp.isoformat()
        obj["timestamp"] = timestamp
    if actor is not None:
        obj["actor"] = actor
    return obj
