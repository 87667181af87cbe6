"""What the audit trail says about positions, trades and signals, folded in sequence order.

The ledger reads events once each (it remembers the last sequence folded and its hash),
so each reconciliation only reads what was appended since; `snapshot` and `restore` carry
that state across restarts. Audit `data` is free-form: an event missing what the fold
needs is noted as an issue and skipped, never fatal.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

FOLDED_TYPES = ("SIGNAL_GENERATED", "POSITION_OPENED", "POSITION_CLOSED", "TRADE_EXECUTED")
SIDES = {"LONG": 1.0, "SHORT": -1.0}
MAX_SIGNALS = 200_000  # signal ids remembered for the orphan check (oldest dropped first)
MAX_ISSUES = 100
MAX_ORPHANS = 10_000
SNAPSHOT_VERSION = 1


@dataclass
class OpenPosition:
    """A position the trail opened and has not (fully) closed."""

    position_id: str
    symbol: str
    side: str
    quantity: float  # what remains open, > 0
    opened_at: float  # Unix seconds: data.entry_time, else the event's timestamp
    sequence: int

    @property
    def signed(self) -> float:
        """Quantity with the side's sign: LONG positive, SHORT negative."""
        return SIDES[self.side] * self.quantity


@dataclass(frozen=True)
class OrphanTrade:
    """A TRADE_EXECUTED with no earlier SIGNAL_GENERATED of its signal id."""

    trade_id: str
    signal_id: str | None
    symbol: str | None
    at: float
    sequence: int


def event_time(text: Any) -> float | None:
    """An ISO-8601 time with an offset as Unix seconds, else None."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _ident(value: Any) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= 256:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _quantity(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


class AuditLedger:
    """Open positions, recent signal ids and orphan trades according to the audit trail."""

    def __init__(self, max_signals: int = MAX_SIGNALS) -> None:
        self.through = 0  # the last sequence folded
        self.through_hash: str | None = None  # its hash (hex), to recognise the same chain
        self.open: dict[str, OpenPosition] = {}
        self.signals: OrderedDict[str, float] = OrderedDict()  # signal id → event time
        self.orphans: deque[OrphanTrade] = deque(maxlen=MAX_ORPHANS)
        self.issues: deque[dict[str, Any]] = deque(maxlen=MAX_ISSUES)
        self.max_signals = max_signals

    def apply(self, event: dict[str, Any]) -> None:
        """Fold one stored event (events at or below `through` are ignored)."""
        sequence = event.get("sequence")
        if not isinstance(sequence, int) or sequence <= self.through:
            return
        self.through = sequence
        digest = event.get("hash")
        self.through_hash = digest.hex() if isinstance(digest, bytes) else digest
        kind = event.get("event_type")
        if kind not in FOLDED_TYPES:
            return
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        at = event_time(event.get("timestamp")) or 0.0
        symbol = event.get("symbol") or _ident(data.get("symbol"))
        if kind == "SIGNAL_GENERATED":
            signal_id = _ident(data.get("signal_id"))
            if signal_id is None:
                self._issue(event, "no signal_id")
                return
            self.signals[signal_id] = at
            self.signals.move_to_end(signal_id)
            while len(self.signals) > self.max_signals:
                self.signals.popitem(last=False)
        elif kind == "TRADE_EXECUTED":
            signal_id = _ident(data.get("signal_id"))
            if signal_id is None or signal_id not in self.signals:
                trade_id = _ident(data.get("trade_id")) or f"#{sequence}"
                self.orphans.append(OrphanTrade(trade_id, signal_id, symbol, at, sequence))
        elif kind == "POSITION_OPENED":
            self._open(event, data, symbol, at, sequence)
        else:
            self._close(event, data)

    def _open(self, event: dict, data: dict, symbol: str | None, at: float, sequence: int) -> None:
        position_id = _ident(data.get("position_id"))
        side = data.get("side")
        quantity = _quantity(data.get("quantity"))
        if position_id is None or symbol is None or side not in SIDES or quantity is None:
            self._issue(event, "needs position_id, symbol, side (LONG|SHORT) and quantity > 0")
            return
        if position_id in self.open:
            self._issue(event, f"position {position_id} opened twice; the second open is ignored")
            return
        opened = event_time(data.get("entry_time")) or at
        self.open[position_id] = OpenPosition(position_id, symbol, side, quantity, opened, sequence)

    def _close(self, event: dict, data: dict) -> None:
        position_id = _ident(data.get("position_id"))
        position = self.open.get(position_id) if position_id is not None else None
        if position is None:
            self._issue(event, f"closes position {position_id}, which the trail never opened "
                               "(or opened before its retention horizon)")
            return
        quantity = _quantity(data.get("quantity"))
        if quantity is None:
            quantity = position.quantity  # no quantity: the whole position
        if quantity > position.quantity * (1 + 1e-9):
            self._issue(event, f"closes {quantity:g} of position {position_id}, "
                               f"which had {position.quantity:g} open")
        remaining = position.quantity - quantity
        if remaining <= 1e-9 * max(1.0, position.quantity):
            del self.open[position.position_id]
        else:
            position.quantity = remaining

    def _issue(self, event: dict, problem: str) -> None:
        self.issues.append({"sequence": event.get("sequence"), "event_type": event.get("event_type"),
                            "problem": problem})

    def prune(self, now: float, orphan_window: float) -> None:
        """Forget signals older than two windows and orphans older than one."""
        keep_signals = now - 2 * orphan_window
        while self.signals:
            first = next(iter(self.signals))
            if self.signals[first] >= keep_signals:
                break
            self.signals.popitem(last=False)
        while self.orphans and self.orphans[0].at < now - orphan_window:
            self.orphans.popleft()

    def net(self) -> dict[str, float]:
        """Net open quantity per symbol (LONG positive, SHORT negative)."""
        out: dict[str, float] = {}
        for position in self.open.values():
            out[position.symbol] = out.get(position.symbol, 0.0) + position.signed
        return out

    # -- persistence ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The ledger as JSON values (what `restore` reads back)."""
        return {
            "version": SNAPSHOT_VERSION, "through": self.through,
            "through_hash": self.through_hash,
            "open": [[p.position_id, p.symbol, p.side, p.quantity, p.opened_at, p.sequence]
                     for p in self.open.values()],
            "signals": [[signal_id, at] for signal_id, at in self.signals.items()],
            "orphans": [[o.trade_id, o.signal_id, o.symbol, o.at, o.sequence]
                        for o in self.orphans],
            "issues": list(self.issues),
        }

    @classmethod
    def restore(cls, obj: Any, max_signals: int = MAX_SIGNALS) -> AuditLedger | None:
        """A ledger from `snapshot()`'s form, or None when `obj` is not one."""
        if not isinstance(obj, dict) or obj.get("version") != SNAPSHOT_VERSION:
            return None
        ledger = cls(max_signals)
        try:
            through, digest = obj["through"], obj["through_hash"]
            if isinstance(through, bool) or not isinstance(through, int) or through < 0 \
                    or not (digest is None or isinstance(digest, str)):
                return None
            ledger.through, ledger.through_hash = through, digest
            for position_id, symbol, side, quantity, opened_at, sequence in obj["open"]:
                if side not in SIDES:
                    return None
                ledger.open[str(position_id)] = OpenPosition(
                    str(position_id), str(symbol), side, float(quantity), float(opened_at),
                    int(sequence))
            for signal_id, at in obj["signals"][-max_signals:]:
                ledger.signals[str(signal_id)] = float(at)
            for trade_id, signal_id, symbol, at, sequence in obj["orphans"]:
                ledger.orphans.append(OrphanTrade(
                    str(trade_id), None if signal_id is None else str(signal_id),
                    None if symbol is None else str(symbol), float(at), int(sequence)))
            for issue in obj["issues"]:
                if isinstance(issue, dict):
                    ledger.issues.append(issue)
        except (KeyError, TypeError, ValueError):
            return None
        return ledger
