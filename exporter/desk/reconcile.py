"""Reconciliation: the audit trail's open positions against the active positions in Redis.

A background job, never on the scrape path. Each run folds the events appended since the
last run into the ledger (kept in Redis at `<ns>:desk:reconciliation:ledger` after each
run, so a restart reads only what came after it), reads the active position of every symbol either side knows,
and publishes an immutable report: per-symbol mismatch, orphan trades, stale positions.
While the audit spool holds events not yet in the store, the trail is incomplete and the
run is skipped (the last report stays, marked with the reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from loguru import logger

from ..cache.client import RedisClient
from ..cache.errors import CacheError, CacheValueError, SignalError
from ..cache.layout import SYMBOL_RE, position_key
from ..cache.trading_metrics import validate_position
from ..cache.values import timestamp
from ..config.model import DeskConfig
from .halt import iso_utc
from .ledger import SIDES, AuditLedger
from .metrics import DeskMetrics

MAX_SYMBOLS = 500
LEDGER_KEY = "desk:reconciliation:ledger"


class EventSource(Protocol):
    """The part of an audit store reconciliation reads: stored events in sequence order."""

    def iter_events(self, after: int = 0) -> Any: ...

    async def get_event(self, sequence: int) -> dict[str, Any] | None: ...

    async def first_sequence(self) -> int | None: ...


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


class Reconciler:
    """Compares the audit trail with Redis; `report` is the last completed comparison."""

    def __init__(self, store: EventSource, client: RedisClient, symbols: Callable[[], Iterable[str]],
                 desk: Callable[[], DeskConfig], *, pending: Callable[[], int] = lambda: 0,
                 metrics: DeskMetrics | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.client = client
        self.symbols = symbols
        self.desk = desk
        self.pending = pending
        self.metrics = metrics
        self.clock = clock
        self.ledger = AuditLedger()
        self._resumed = False
        self.report: dict[str, Any] | None = None
        self.last_problem: str | None = None  # why the last run did not complete
        self._lock = asyncio.Lock()

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.reconciliations.labels(result).inc()

    async def run_once(self) -> dict[str, Any] | None:
        """One comparison; returns the new report, or None when skipped or failed."""
        async with self._lock:
            waiting = self.pending()
            if waiting:
                self.last_problem = (f"skipped: {waiting} audit events are still in the spool, "
                                     "so the trail is incomplete")
                self._count("skipped")
                return None
            try:
                await self._resume()
                report = await self._compare()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_problem = f"failed: {type(exc).__name__}: {exc}"[:300]
                self._count("failed")
                if not isinstance(exc, CacheError):
                    logger.opt(exception=exc).warning("reconciliation failed")
                return None
            self.report, self.last_problem = report, None
            self._count("success")
            await self._save()
            return report

    async def _resume(self) -> None:
        """Once, before the first fold: take up the saved ledger if it is of this chain."""
        if self._resumed:
            return
        self._resumed = True
        try:
            saved = AuditLedger.restore(await self.client.get(LEDGER_KEY, count=False))
        except CacheError as exc:
            logger.warning("reconciliation: saved ledger not readable ({}); reading the whole"
                           " audit trail", exc)
            return
        if saved is None or saved.through == 0:
            return
        event = await self.store.get_event(saved.through)
        if event is not None:
            same = event["hash"].hex() == saved.through_hash
        else:  # purged since (the chain starts after it), or another, shorter chain
            first = await self.store.first_sequence()
            same = first is not None and first > saved.through
        if same:
            self.ledger = saved
        else:
            logger.warning("reconciliation: the saved ledger (through {}) is not of this audit"
                           " trail; reading it whole", saved.through)

    async def _save(self) -> None:
        try:
            await self.client.set(LEDGER_KEY, self.ledger.snapshot(), ttl=0)
        except CacheError as exc:
            logger.warning("reconciliation: ledger not saved ({}); a restart reads the whole"
                           " audit trail", exc)

    async def _compare(self) -> dict[str, Any]:
        # aclosing: a cancelled run hands the store's cursor and connection back at once.
        async with contextlib.aclosing(self.store.iter_events(after=self.ledger.through)) as events:
            async for event in events:
                self.ledger.apply(event)
        now = self.clock()
        settings = self.desk().reconciliation
        self.ledger.prune(now, settings.orphan_window)
        audit_net = self.ledger.net()
        symbols = sorted(set(valid_symbols([*self.symbols(), *audit_net])))[:MAX_SYMBOLS]
        redis = await self._positions(symbols)
        rows = []
        for symbol in symbols:
            held = redis.get(symbol)
            ours = audit_net.get(symbol, 0.0)
            theirs = held["signed"] if held and "signed" in held else 0.0
            mismatch = (held is not None and "problem" in held) or not _same(ours, theirs)
            rows.append({
                "symbol": symbol, "audit_quantity": ours, "redis_quantity": theirs,
                "mismatch": mismatch,
                "audit_position_ids": sorted(p.position_id for p in self.ledger.open.values()
                                             if p.symbol == symbol),
                "redis_position_id": held.get("position_id") if held else None,
                "problem": held.get("problem") if held else None,
            })
        horizon = now - settings.stale_position_after
        stale = [{"position_id": p.position_id, "symbol": p.symbol, "source": "audit",
                  "opened_at": iso_utc(p.opened_at), "age_seconds": round(now - p.opened_at, 3)}
                 for p in self.ledger.open.values() if p.opened_at < horizon]
        known = set(self.ledger.open)
        for symbol, held in redis.items():
            opened = held.get("opened")
            if opened is not None and opened < horizon and held.get("position_id") not in known:
                stale.append({"position_id": held.get("position_id"), "symbol": symbol,
                              "source": "redis", "opened_at": iso_utc(opened),
                              "age_seconds": round(now - opened, 3)})
        orphans = [{"trade_id": o.trade_id, "signal_id": o.signal_id, "symbol": o.symbol,
                    "executed_at": iso_utc(o.at), "sequence": o.sequence}
                   for o in self.ledger.orphans if o.at >= now - settings.orphan_window]
        return {
            "checked_at": iso_utc(now), "checked_at_ts": now,
            "through_sequence": self.ledger.through,
            "positions": rows,
            "mismatches": sum(1 for r in rows if r["mismatch"]),
            "orphan_trades": orphans,
            "stale_positions": stale,
            "issues": list(self.ledger.issues),
            "windows": {"orphan_window_seconds": settings.orphan_window,
                        "stale_position_after_seconds": settings.stale_position_after},
        }

    async def _positions(self, symbols: list[str]) -> dict[str, dict[str, Any]]:
        """Active positions in Redis by symbol: signed quantity, id, opening time, or a problem."""
        if not symbols:
            return {}
        keys = [position_key(s) for s in symbols]
        raws = await self.client.backend.mget([self.client.key(k) for k in keys])
        out: dict[str, dict[str, Any]] = {}
        for symbol, key, raw in zip(symbols, keys, raws, strict=True):
            if raw is None:
                continue
            try:
                value = validate_position(self.client.decode(key, raw))
                if value["symbol"] != symbol:
                    raise SignalError("symbol", f"holds a position for {value['symbol']}")
            except (CacheValueError, SignalError) as exc:
                out[symbol] = {"problem": f"{self.client.key(key)}: {exc}"[:300]}
                continue
            out[symbol] = {"signed": SIDES[value["side"]] * float(value["quantity"]),
                           "position_id": value["position_id"],
                           "opened": timestamp(value, "entry_time", required=True)}
        return out

    async def run(self) -> None:
        """Reconcile every `desk.reconciliation.interval` until cancelled."""
        while True:
            await self.run_once()
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # A cancel that arrived inside the store or Redis client and came out as an
                # ordinary error (counted as a failed run): the loop still ends here.
                logger.debug("reconciliation cancelled ({})", self.last_problem)
                raise asyncio.CancelledError
            await asyncio.sleep(self.desk().reconciliation.interval)


def valid_symbols(symbols: Iterable[str]) -> list[str]:
    """The symbols usable as keys and labels."""
    return [s for s in symbols if isinstance(s, str) and SYMBOL_RE.fullmatch(s)]
