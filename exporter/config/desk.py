"""The `desk:` section of services.yaml: trading calendar, freshness, risk limits, clocks.

Strict like the rest of the file: unknown keys, wrong types, impossible times and
unknown time zones are errors naming file, line and field (`desk.sessions.mon[0]`).
"""

from __future__ import annotations

import math
import re
import zoneinfo
from datetime import date
from typing import Any

from . import fields
from .model import WEEKDAYS, DeskConfig, ReconciliationConfig, RiskLimits
from .yamlsafe import Node

KEYS = ("timezone", "sessions", "holidays", "clock_tolerance", "freshness", "limits",
        "reconciliation")
FRESHNESS_KEYS = ("signal_cadence", "financial_metrics_cadence", "overdue_factor")
LIMIT_KEYS = ("max_drawdown", "daily_loss", "max_position", "max_open_positions",
              "min_win_ratio", "min_trades")
RECONCILIATION_KEYS = ("interval", "stale_position_after", "orphan_window")
SYMBOL = re.compile(r"[A-Z0-9]{3,12}")
MAX_WINDOWS = 8  # sessions per weekday
MAX_HOLIDAYS = 1000
MAX_SYMBOLS = 100
MAX_WINDOW_SECONDS = 400 * 86400.0  # stale_position_after, orphan_window
_WINDOW = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-(([01][0-9]|2[0-3]):([0-5][0-9])|24:00)")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NUMBER = re.compile(r"[+-]?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}")


def parse_desk(ctx: fields.Ctx, node: Node) -> DeskConfig:
    """The validated `desk:` mapping; every key optional."""
    m = fields.mapping(ctx, node, "desk", KEYS)
    inner = ctx.under("desk")
    kw: dict[str, Any] = {"line": node.line}
    if "timezone" in m:
        kw["timezone"] = _timezone(inner, m["timezone"])
    if "sessions" in m:
        kw["sessions"] = _sessions(inner, m["sessions"])
    if "holidays" in m:
        kw["holidays"] = _holidays(inner, m["holidays"])
    if "clock_tolerance" in m:
        kw["clock_tolerance"] = fields.duration(inner, m["clock_tolerance"], "clock_tolerance", 3600.0)
    if "freshness" in m:
        kw.update(_freshness(inner, m["freshness"]))
    if "limits" in m:
        kw["limits"] = _limits(inner, m["limits"])
    if "reconciliation" in m:
        kw["reconciliation"] = _reconciliation(inner, m["reconciliation"])
    return DeskConfig(**kw)


def _timezone(ctx: fields.Ctx, node: Node) -> str:
    name, shown = fields.text(ctx, node, "timezone", "an IANA time zone like America/Bogota")
    if not _ZONE.fullmatch(name) or ".." in name:
        raise ctx.error(node, "timezone", f"invalid time zone {shown}: expected an IANA name like America/Bogota")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ctx.error(node, "timezone", f"unknown time zone {shown}: expected an IANA name like America/Bogota") from None
    return name


def _sessions(ctx: fields.Ctx, node: Node) -> tuple[tuple[tuple[int, int], ...], ...]:
    days = fields.mapping(ctx, node, "sessions", WEEKDAYS)
    inner = ctx.under("sessions")
    week: list[tuple[tuple[int, int], ...]] = [() for _ in WEEKDAYS]
    for day, item in days.items():
        windows = fields.sequence(inner, item, day, '["08:00-13:00"]')
        if len(windows) > MAX_WINDOWS:
            raise inner.error(item, day, f"at most {MAX_WINDOWS} sessions a day, got {len(windows)}")
        parsed: list[tuple[int, int]] = []
        for i, window in enumerate(windows):
            field = f"{day}[{i}]"
            if window.kind != "str":
                raise inner.error(window, field, f'expected a quoted "HH:MM-HH:MM" string, got {fields.describe(window)}')
            text, shown = fields.text(inner, window, field)
            match = _WINDOW.fullmatch(text)
            if match is None:
                raise inner.error(window, field, f'invalid session {shown}: expected "HH:MM-HH:MM" (24-hour, end up to 24:00)')
            start = int(match.group(1)) * 60 + int(match.group(2))
            end = 1440 if match.group(3) == "24:00" else int(match.group(4)) * 60 + int(match.group(5))
            if end <= start:
                raise inner.error(window, field, f"invalid session {shown}: it must end after it starts "
                                  "(split a session over midnight into two days, ending at 24:00)")
            parsed.append((start, end))
        parsed.sort()
        for (s1, e1), (s2, _) in zip(parsed, parsed[1:], strict=False):
            if s2 < e1:
                raise inner.error(item, day, f"sessions overlap: {_hhmm(s1)}-{_hhmm(e1)} and one starting {_hhmm(s2)}")
        week[WEEKDAYS.index(day)] = tuple(parsed)
    return tuple(week)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _holidays(ctx: fields.Ctx, node: Node) -> tuple[date, ...]:
    items = fields.sequence(ctx, node, "holidays", '["2025-01-01", "2025-01-06"]')
    if len(items) > MAX_HOLIDAYS:
        raise ctx.error(node, "holidays", f"at most {MAX_HOLIDAYS} holidays, got {len(items)}")
    seen: dict[date, int] = {}
    for i, item in enumerate(items):
        field = f"holidays[{i}]"
        # An unquoted 2025-01-01 is a YAML date; quoted it is a string. Both mean the same.
        if item.kind not in ("str", "timestamp"):
            raise ctx.error(item, field, f"expected a date like 2025-01-01, got {fields.describe(item)}")
        text, shown = (item.value, repr(item.value)) if item.kind == "timestamp" else fields.text(ctx, item, field)
        try:
            if not _DATE.fullmatch(text):
                raise ValueError
            day = date.fromisoformat(text)
        except ValueError:
            raise ctx.error(item, field, f"invalid date {shown}: expected YYYY-MM-DD") from None
        if day in seen:
            raise ctx.error(item, field, f"duplicate holiday {day.isoformat()} (first at holidays[{seen[day]}])")
        seen[day] = i
    return tuple(sorted(seen))


def number(ctx: fields.Ctx, node: Node, field: str, low: float, high: float, *, low_open: bool = True) -> float:
    """A finite number in (low, high] (or [low, high] with low_open False)."""
    if node.kind in ("int", "float") and not node.python:
        raw, shown = str(node.value), str(node.value)
    elif node.python and node.kind in ("int", "float"):
        raw, shown = repr(node.value), repr(node.value)
    elif node.kind == "str" and not node.python and "${" in node.value:
        raw, shown = fields.text(ctx, node, field, "a number")
    else:
        raise ctx.error(node, field, f"expected a number, got {fields.describe(node)}")
    if not _NUMBER.fullmatch(raw.strip()):  # refuses 0x10, 010, 1_000 and .inf spellings
        raise ctx.error(node, field, f"expected a decimal number, got {shown}")
    value = float(raw)
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        lower = f"more than {low:g}" if low_open else f"at least {low:g}"
        raise ctx.error(node, field, f"must be {lower} and at most {high:g}, got {shown}")
    return value


def _freshness(ctx: fields.Ctx, node: Node) -> dict[str, Any]:
    m = fields.mapping(ctx, node, "freshness", FRESHNESS_KEYS)
    inner = ctx.under("freshness")
    kw: dict[str, Any] = {}
    if "signal_cadence" in m:
        entries = fields.mapping(inner, m["signal_cadence"], "signal_cadence", None)
        if len(entries) > MAX_SYMBOLS:
            raise inner.error(m["signal_cadence"], "signal_cadence", f"at most {MAX_SYMBOLS} symbols")
        cadence = inner.under("signal_cadence")
        out = []
        for symbol, value in entries.items():
            if not SYMBOL.fullmatch(symbol):
                raise cadence.error(value, symbol, "invalid symbol: expected ^[A-Z0-9]{3,12}$")
            out.append((symbol, fields.duration(cadence, value, symbol, 86400.0)))
        kw["signal_cadence"] = tuple(out)
    if "financial_metrics_cadence" in m:
        kw["financial_metrics_cadence"] = fields.duration(inner, m["financial_metrics_cadence"],
                                                     "financial_metrics_cadence", 86400.0)
    if "overdue_factor" in m:
        kw["overdue_factor"] = number(inner, m["overdue_factor"], "overdue_factor", 1.0, 100.0,
                                      low_open=False)
    return kw


def _limits(ctx: fields.Ctx, node: Node) -> RiskLimits:
    m = fields.mapping(ctx, node, "limits", LIMIT_KEYS)
    inner = ctx.under("limits")
    kw: dict[str, Any] = {}
    if "max_drawdown" in m:
        kw["max_drawdown"] = number(inner, m["max_drawdown"], "max_drawdown", 0.0, 1.0)
    if "daily_loss" in m:
        kw["daily_loss"] = number(inner, m["daily_loss"], "daily_loss", 0.0, 1e18)
    if "max_position" in m:
        kw["max_position"] = _max_position(inner, m["max_position"])
    if "max_open_positions" in m:
        kw["max_open_positions"] = fields.integer(inner, m["max_open_positions"], "max_open_positions", 1, 100000)
    if "min_win_ratio" in m:
        kw["min_win_ratio"] = number(inner, m["min_win_ratio"], "min_win_ratio", 0.0, 1.0)
    if "min_trades" in m:
        kw["min_trades"] = fields.integer(inner, m["min_trades"], "min_trades", 1, 10**9)
    return RiskLimits(**kw)


def _max_position(ctx: fields.Ctx, node: Node) -> tuple[tuple[str, float], ...]:
    if node.kind != "map":  # one number for every symbol
        return (("*", number(ctx, node, "max_position", 0.0, 1e18)),)
    entries = fields.mapping(ctx, node, "max_position", None)
    if not entries:
        raise ctx.error(node, "max_position", "must not be empty (remove it to watch no position)")
    if len(entries) > MAX_SYMBOLS:
        raise ctx.error(node, "max_position", f"at most {MAX_SYMBOLS} symbols")
    inner = ctx.under("max_position")
    out = []
    for symbol, value in entries.items():
        if symbol != "*" and not SYMBOL.fullmatch(symbol):
            raise inner.error(value, symbol, 'invalid symbol: expected ^[A-Z0-9]{3,12}$ or "*" for every other symbol')
        out.append((symbol, number(inner, value, symbol, 0.0, 1e18)))
    return tuple(out)


def _reconciliation(ctx: fields.Ctx, node: Node) -> ReconciliationConfig:
    m = fields.mapping(ctx, node, "reconciliation", RECONCILIATION_KEYS)
    inner = ctx.under("reconciliation")
    kw: dict[str, Any] = {}
    if "interval" in m:
        kw["interval"] = fields.duration(inner, m["interval"], "interval", 86400.0)
        if kw["interval"] < 1.0:
            raise inner.error(m["interval"], "interval", "must be at least 1s")
    for name in ("stale_position_after", "orphan_window"):
        if name in m:
            kw[name] = fields.duration(inner, m[name], name, MAX_WINDOW_SECONDS)
    return ReconciliationConfig(**kw)
