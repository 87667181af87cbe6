"""The kill switch: `<ns>:trading:halted` in Redis, set and cleared with an audit event.

The key's presence tells the trading engine to stop; its value says why (a reason from a
closed set), who, a note, and when. Halting never waits for the audit trail: the key is
written first, then TRADING_HALTED is recorded (a failure to record is reported, the halt
stands). Resuming does wait: TRADING_RESUMED must be durable before the key is removed,
so trading never restarts without a record of who restarted it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from loguru import logger

from ..cache.client import RedisClient
from ..cache.errors import CacheUnavailable, CacheValueError

HALT_KEY = "trading:halted"
HALT_REASONS = ("manual", "risk_limit", "market_closed", "incident")
UNREADABLE = "unknown"  # the metric's reason while the key holds something unreadable
MAX_ACTOR = 256
MAX_NOTE = 1024


class AuditSink(Protocol):
    """What the desk needs of an AuditLogger."""

    async def log_event(self, event_type: str, symbol: str | None = None, data: Any = None,
                        event_id: Any = None, timestamp: Any = None, actor: str | None = None
                        ) -> dict[str, Any]: ...


class HaltConflict(Exception):
    """Trading is already halted for another reason."""

    def __init__(self, current: Halt) -> None:
        super().__init__(f"trading is already halted ({current.reason}, by {current.actor} "
                         f"since {current.when}); resume it first to change the reason")
        self.current = current


class HaltValueError(ValueError):
    """The halt key holds something that is not a halt record."""


@dataclass(frozen=True)
class Halt:
    """One halt: why, who, a note, and when (ISO-8601 UTC)."""

    reason: str
    actor: str
    note: str | None
    when: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON stored in Redis and answered by the API."""
        return {"reason": self.reason, "actor": self.actor, "note": self.note, "when": self.when}

    @property
    def since(self) -> float:
        """`when` as Unix seconds."""
        return datetime.fromisoformat(self.when).timestamp()


def parse_halt(value: Any) -> Halt:
    """A Halt from the key's JSON value; HaltValueError saying what is wrong."""
    if not isinstance(value, dict):
        raise HaltValueError("not a JSON object")
    reason, actor, note, when = (value.get(k) for k in ("reason", "actor", "note", "when"))
    if reason not in HALT_REASONS:
        raise HaltValueError(f"reason must be one of {', '.join(HALT_REASONS)}")
    if not isinstance(actor, str) or not 0 < len(actor) <= MAX_ACTOR:
        raise HaltValueError("actor must be a non-empty string")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise HaltValueError(f"note must be a string of at most {MAX_NOTE} characters")
    try:
        moment = datetime.fromisoformat(when) if isinstance(when, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise HaltValueError("when must be an ISO-8601 time with an offset")
    return Halt(reason, actor, note, when)


@dataclass(frozen=True)
class HaltView:
    """What the last read of the key found: `read` False until one succeeded."""

    read: bool = False
    halt: Halt | None = None
    unreadable: str | None = None  # the key exists but holds no valid halt record

    @property
    def halted(self) -> bool:
        """The key exists (a garbled value still tells the engine to stop)."""
        return self.halt is not None or self.unreadable is not None

    @property
    def reason(self) -> str | None:
        """The reason label while halted."""
        if self.halt is not None:
            return self.halt.reason
        return UNREADABLE if self.unreadable is not None else None


def iso_utc(moment: float) -> str:
    """Unix seconds as `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class HaltSwitch:
    """Reads, sets and clears the halt key; `view` is the last state seen (for scrapes)."""

    def __init__(self, client: RedisClient, *, audit: AuditSink | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.audit = audit
        self.clock = clock
        self.view = HaltView()
        self._lock = asyncio.Lock()

    async def _read(self) -> HaltView:
        try:
            value = await self.client.get(HALT_KEY, count=False)
        except CacheValueError as exc:
            return self._seen(HaltView(True, None, str(exc)))
        if value is None:
            return self._seen(HaltView(True))
        try:
            return self._seen(HaltView(True, parse_halt(value)))
        except HaltValueError as exc:
            return self._seen(HaltView(True, None, f"{self.client.key(HALT_KEY)}: {exc}"))

    def _seen(self, view: HaltView, announce: bool = True) -> HaltView:
        before = self.view
        self.view = view
        if announce and before.read and (before.halt, before.unreadable) != (view.halt, view.unreadable):
            if view.halt is not None:
                logger.warning("trading halted ({}) by {}: {}", view.halt.reason, view.halt.actor,
                               view.halt.note or "no note")
            elif view.unreadable is not None:
                logger.error("halt key holds no valid halt record; treating trading as halted: {}",
                             view.unreadable)
            else:
                logger.warning("trading resumed")
        return view

    async def refresh(self) -> HaltView:
        """Read the key now (CacheUnavailable keeps the last view and propagates)."""
        return await self._read()

    async def halt(self, reason: str, actor: str, note: str | None = None
                   ) -> tuple[Halt, bool, dict[str, Any] | None]:
        """Halt trading: (halt, created, audit event or None when it could not be recorded).

        The same reason again answers the halt in force (created False, nothing written);
        another reason raises HaltConflict.
        """
        if reason not in HALT_REASONS:
            raise ValueError(f"reason must be one of {', '.join(HALT_REASONS)}")
        async with self._lock:
            view = await self._read()
            if view.halt is not None:
                if view.halt.reason != reason:
                    raise HaltConflict(view.halt)
                return view.halt, False, None
            halt = Halt(reason, actor, note, iso_utc(self.clock()))
            await self.client.set(HALT_KEY, halt.as_dict(), ttl=0)
            self._seen(HaltView(True, halt), announce=False)
            logger.warning("trading halted ({}) by {}: {}", reason, actor, note or "no note")
            event = None
            if self.audit is not None:
                try:
                    event = await self.audit.log_event(
                        "TRADING_HALTED", data={"reason": reason, "note": note},
                        timestamp=halt.when, actor=actor)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the halt stands; the caller is told it is unrecorded
                    logger.error("trading halted but TRADING_HALTED could not be recorded: {}", exc)
            return halt, True, event

    async def resume(self, actor: str, note: str | None = None
                     ) -> tuple[Halt | None, dict[str, Any] | None]:
        """Resume trading: (the halt lifted or None when not halted, the audit event).

        The audit event is written first; an audit failure propagates and the key stays.
        """
        async with self._lock:
            view = await self._read()
            if not view.halted:
                return None, None
            previous = view.halt
            event = None
            if self.audit is not None:
                data = {"reason": previous.reason if previous else UNREADABLE,
                        "halted_by": previous.actor if previous else None,
                        "halted_at": previous.when if previous else None, "note": note}
                event = await self.audit.log_event("TRADING_RESUMED", data=data,
                                                   timestamp=iso_utc(self.clock()), actor=actor)
            await self.client.delete(HALT_KEY)
            self._seen(HaltView(True), announce=False)
            logger.warning("trading resumed by {}: {}", actor, note or "no note")
            return previous, event

    async def run(self, interval: float) -> None:
        """Re-read the key every `interval` seconds until cancelled."""
        while True:
            try:
                await self._read()
            except CacheUnavailable:
                pass  # the backend logs the outage; the last view stays
            except Exception:
                logger.exception("halt key refresh failed")
            await asyncio.sleep(interval)
