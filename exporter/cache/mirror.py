"""The Redis mirror: a background reader turning the trading keys into an immutable snapshot.

Every `interval` one bounded, pipelined, time-boxed read (one MULTI/EXEC on Redis) takes
the keys of the symbols and custom metrics known so far; a slower background SCAN finds
new ones, within caps. Scrapes only ever read the last snapshot (see collector.py).

A missing key is an absent series. A value that is not JSON, of the wrong Redis type,
oversize or of the wrong shape is counted on every cycle it is seen, logged once, and
its last good value is kept. While Redis is away the snapshot keeps its last values
(staleness shows in their own timestamps) and says `redis_up` False.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from loguru import logger

from .backend import RawValue
from .client import RedisClient
from .errors import CacheUnavailable, SignalError
from .layout import (
    CUSTOM_NAME_RE,
    CUSTOM_PREFIX,
    FINANCIAL,
    HISTORY_PREFIX,
    POSITION_PREFIX,
    SIGNAL_LATEST,
    SYMBOL_RE,
    custom_key,
    history_key,
    position_key,
)
from .metrics import MirrorMetrics
from .signals import pick_latest, signal_time, validate_signal
from .trading_metrics import FINANCIAL_GAUGES, custom_value, validate_financial, validate_position
from .values import loads, timestamp

VALUE_MAX = 1024 * 1024  # a value larger than this is refused (too_large), never parsed


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class SignalView:
    """The mirrored latest signal of one symbol."""

    action: str
    confidence: float
    price: float
    timestamp: float
    execution_latency_s: float | None


@dataclass(frozen=True)
class PositionView:
    """The mirrored active position of one symbol."""

    quantity: float
    entry_price: float
    opened: float
    unrealized_pnl: float | None


@dataclass(frozen=True)
class Snapshot:
    """What the last mirror cycle saw; immutable, so a scrape can read it without locks."""

    redis_configured: bool
    redis_up: bool | None = None
    last_success: float | None = None  # Unix time of the last complete read
    signals: Mapping[str, SignalView] = field(default_factory=_empty)
    history_lengths: Mapping[str, int] = field(default_factory=_empty)
    financial: Mapping[str, float] = field(default_factory=_empty)  # gauge suffix → value
    positions: Mapping[str, PositionView] = field(default_factory=_empty)
    custom: Mapping[str, float] = field(default_factory=_empty)


class _Bad(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Mirror:
    """Keeps `snapshot` in step with the trading keys of one namespace."""

    def __init__(
        self,
        client: RedisClient,
        *,
        symbols: Iterable[str] = ("USDCOP",),
        interval: float = 5.0,
        max_symbols: int = 50,
        max_custom: int = 100,
        scan_interval: float | None = None,
        time_box: float | None = None,
        value_max: int = VALUE_MAX,
        metrics: MirrorMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.symbols = tuple(dict.fromkeys(symbols))
        for symbol in self.symbols:
            if not isinstance(symbol, str) or not SYMBOL_RE.fullmatch(symbol):
                raise ValueError(f"mirror symbol {symbol!r} must match ^{SYMBOL_RE.pattern}$")
        if not interval > 0:
            raise ValueError(f"mirror interval must be > 0 seconds, got {interval!r}")
        self.interval = float(interval)
        self.max_symbols = max_symbols
        self.max_custom = max_custom
        self.scan_interval = scan_interval if scan_interval is not None else max(30.0, 6 * interval)
        self.time_box = time_box if time_box is not None else max(0.5, min(0.8 * interval, 10.0))
        self.value_max = value_max
        self.metrics = metrics
        self._clock = clock
        self._snapshot = Snapshot(redis_configured=client.is_redis)
        self._found_symbols: tuple[str, ...] = ()
        self._found_custom: tuple[str, ...] = ()
        self._good: dict[str, Any] = {}  # full key → last good parsed value
        self._bad: dict[str, str] = {}  # full key → reason already logged
        self._bad_names: set[str] = set()  # keys whose name is unusable, already logged

    @property
    def snapshot(self) -> Snapshot:
        """The last snapshot (never None; empty before the first cycle)."""
        return self._snapshot

    @property
    def mirrored_symbols(self) -> tuple[str, ...]:
        """Configured symbols, then those found by the scan within the cap."""
        return self.symbols + self._found_symbols

    @property
    def mirrored_custom(self) -> tuple[str, ...]:
        """Custom metric names found by the scan within the cap."""
        return self._found_custom

    # -- discovery (background, capped, never on the scrape path) ----------------------

    async def discover(self) -> None:
        """One capped SCAN pass for symbols and custom metric names."""
        ns = self.client.namespace + ":"
        limit = max(1000, 10 * max(self.max_symbols, self.max_custom))
        backend = self.client.backend
        try:
            history = await backend.scan(ns + HISTORY_PREFIX + "*", limit)
            positions = await backend.scan(ns + POSITION_PREFIX + "*", limit)
            customs = await backend.scan(ns + CUSTOM_PREFIX + "*", limit)
        except CacheUnavailable:
            return  # keep what we knew; the backend has logged the outage
        symbols: set[str] = set()
        for kind, prefix, keys in (("history", HISTORY_PREFIX, history),
                                   ("position", POSITION_PREFIX, positions)):
            for key in keys:
                name = key[len(ns) + len(prefix):]
                if SYMBOL_RE.fullmatch(name):
                    symbols.add(name)
                else:
                    self._bad_name(key, kind, f"symbol {name!r} does not match ^{SYMBOL_RE.pattern}$")
        names: set[str] = set()
        for key in customs:
            name = key[len(ns) + len(CUSTOM_PREFIX):]
            if CUSTOM_NAME_RE.fullmatch(name):
                names.add(name)
            else:
                self._bad_name(key, "custom", f"name {name!r} does not match ^{CUSTOM_NAME_RE.pattern}$")
        self._found_symbols, over_s = _select(
            symbols - set(self.symbols), self._found_symbols, self.max_symbols - len(self.symbols))
        self._found_custom, over_c = _select(names, self._found_custom, self.max_custom)
        if self.metrics is not None:
            if over_s:
                self.metrics.overflow.labels("symbol").inc(over_s)
            if over_c:
                self.metrics.overflow.labels("custom").inc(over_c)
        for kind, over, cap in (("symbols", over_s, self.max_symbols), ("custom metrics", over_c, self.max_custom)):
            if over:
                logger.debug("mirror: {} {} beyond the cap of {} left out", over, kind, cap)

    # -- one cycle -----------------------------------------------------------------------

    async def refresh(self) -> Snapshot:
        """Read every mirrored key once and publish a new snapshot."""
        started = time.perf_counter()
        symbols, customs = self.mirrored_symbols, self.mirrored_custom
        relative = [SIGNAL_LATEST, FINANCIAL]
        relative += [history_key(s) for s in symbols] + [position_key(s) for s in symbols]
        relative += [custom_key(n) for n in customs]
        full = [self.client.key(k) for k in relative]
        lists = {self.client.key(history_key(s)) for s in symbols}
        try:
            async with asyncio.timeout(self.time_box):
                raws = await self.client.backend.read_many(full, self.value_max, lists)
        except CacheUnavailable:
            raws = None
        except TimeoutError:
            self.client.backend.mark_down(f"mirror read took longer than {self.time_box:g}s")
            raws = None
        if raws is None:
            self._snapshot = replace(self._snapshot, redis_up=self._up())
        else:
            self._snapshot = self._build(dict(zip(full, raws, strict=True)), symbols, customs)
        if self.metrics is not None:
            self.metrics.duration.observe(time.perf_counter() - started)
        return self._snapshot

    def _up(self) -> bool | None:
        return self.client.backend.up if self.client.is_redis else None

    def _build(self, raws: dict[str, RawValue], symbols: tuple[str, ...],
               customs: tuple[str, ...]) -> Snapshot:
        key = self.client.key
        self._good = {k: v for k, v in self._good.items() if k in raws}
        self._bad = {k: v for k, v in self._bad.items() if k in raws}
        vmax = self.value_max
        latest = self._take(key(SIGNAL_LATEST), "signal", raws, lambda raw: _parse_signal(raw, vmax))
        signals: dict[str, SignalView] = {}
        lengths: dict[str, int] = {}
        positions: dict[str, PositionView] = {}
        for symbol in symbols:
            history = self._take(key(history_key(symbol)), "history", raws,
                                 lambda raw, s=symbol: _parse_history(raw, s, vmax))
            head = None
            if history is not None:
                head, lengths[symbol] = history
            own = latest if latest is not None and latest["symbol"] == symbol else None
            chosen = pick_latest(own, head)
            if chosen is not None:
                signals[symbol] = _signal_view(chosen)
            position = self._take(key(position_key(symbol)), "position", raws,
                                  lambda raw, s=symbol: _parse_position(raw, s, vmax))
            if position is not None:
                positions[symbol] = position
        if latest is not None and latest["symbol"] not in signals:
            signals[latest["symbol"]] = _signal_view(latest)
        financial = self._take(key(FINANCIAL), "financial", raws,
                               lambda raw: _parse_financial(raw, vmax)) or {}
        custom: dict[str, float] = {}
        for name in customs:
            value = self._take(key(custom_key(name)), "custom", raws,
                               lambda raw: _parse_custom(raw, vmax))
            if value is not None:
                custom[name] = value
        return Snapshot(
            redis_configured=self.client.is_redis,
            redis_up=self._up(),
            last_success=self._clock(),
            signals=MappingProxyType(signals),
            history_lengths=MappingProxyType(lengths),
            financial=MappingProxyType(dict(financial)),
            positions=MappingProxyType(positions),
            custom=MappingProxyType(custom),
        )

    def _take(self, full_key: str, kind: str, raws: dict[str, RawValue],
              parse: Callable[[RawValue], Any]) -> Any:
        raw = raws[full_key]
        if raw.kind == "missing":
            self._good.pop(full_key, None)
            self._bad.pop(full_key, None)
            return None
        try:
            value = parse(raw)
        except _Bad as exc:
            self._error(full_key, kind, exc.reason, str(exc))
            return self._good.get(full_key)
        self._good[full_key] = value
        if self._bad.pop(full_key, None) is not None:
            logger.info("mirror: {} holds a valid value again", full_key)
        return value

    def _bad_name(self, full_key: str, kind: str, detail: str) -> None:
        if self.metrics is not None:
            self.metrics.errors.labels(kind, "invalid").inc()
        if full_key not in self._bad_names and len(self._bad_names) < 1000:
            self._bad_names.add(full_key)
            logger.warning("mirror: {} ignored (invalid): {}", full_key, detail)

    def _error(self, full_key: str, kind: str, reason: str, detail: str) -> None:
        if self.metrics is not None:
            self.metrics.errors.labels(kind, reason).inc()
        if self._bad.get(full_key) != reason:
            self._bad[full_key] = reason
            logger.warning("mirror: {} ignored ({}): {}; keeping its last good value",
                           full_key, reason, detail)

    # -- the background loops ------------------------------------------------------------

    async def run(self) -> None:
        """Refresh every `interval` and rescan every `scan_interval` until cancelled."""
        scanner = asyncio.create_task(self._scan_loop(), name="mirror-scan")
        try:
            await self._every(self.interval, self.refresh, "refresh")
        finally:
            scanner.cancel()
            await asyncio.wait([scanner])

    async def _scan_loop(self) -> None:
        await self._every(self.scan_interval, self.discover, "scan")

    async def _every(self, period: float, step: Callable[[], Any], what: str) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await step()
            except Exception:  # a bug in one cycle must not end mirroring
                logger.exception("mirror {} failed", what)
            await asyncio.sleep(max(0.0, period - (loop.time() - started)))


def _select(found: set[str], previous: tuple[str, ...], room: int) -> tuple[tuple[str, ...], int]:
    """Keep what was mirrored before (no flapping series), then fill up in name order."""
    room = max(0, room)
    keep = [name for name in previous if name in found][:room]
    new = sorted(found - set(keep))[: room - len(keep)]
    return tuple(keep + new), len(found) - len(keep) - len(new)


def _json(raw: RawValue, value_max: int, allow_list: bool = False) -> Any:
    if raw.kind == "other" or (raw.kind == "list" and not allow_list):
        raise _Bad("wrong_type", "holds another Redis type than a string")
    data = raw.data or b""
    if raw.truncated or len(data) > value_max:
        raise _Bad("too_large", f"value larger than {value_max} bytes")
    try:
        return loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Bad("not_json", f"not JSON: {exc}") from None


def _checked(fn: Callable[[Any], Any], value: Any) -> Any:
    try:
        return fn(value)
    except SignalError as exc:
        raise _Bad("invalid", str(exc)) from None


def _parse_signal(raw: RawValue, value_max: int) -> dict[str, Any]:
    return _checked(lambda v: validate_signal(v, strict=False), _json(raw, value_max))


def _parse_history(raw: RawValue, symbol: str, value_max: int) -> tuple[dict | None, int]:
    if raw.kind == "list":
        head = _checked(lambda v: validate_signal(v, strict=False), _json(
            RawValue("string", raw.data, len(raw.data or b""), False), value_max))
        entries = [head]
        length = raw.length
    else:
        array = _json(raw, value_max)
        if not isinstance(array, list):
            raise _Bad("invalid", "history must be a list or a JSON array of signals")
        entries = [_checked(lambda v: validate_signal(v, strict=False), item) for item in array]
        length = len(entries)
    for entry in entries:
        if entry["symbol"] != symbol:
            raise _Bad("invalid", f"holds a signal for {entry['symbol']}")
    head = max(entries, key=signal_time) if entries else None  # order-agnostic for arrays
    return head, length


def _parse_position(raw: RawValue, symbol: str, value_max: int) -> PositionView:
    p = _checked(validate_position, _json(raw, value_max))
    if p["symbol"] != symbol:
        raise _Bad("invalid", f"holds a position for {p['symbol']}")
    pnl = p.get("unrealized_pnl")
    return PositionView(float(p["quantity"]), float(p["entry_price"]),
                        timestamp(p, "entry_time", required=True), None if pnl is None else float(pnl))


def _parse_financial(raw: RawValue, value_max: int) -> dict[str, float]:
    m = _checked(validate_financial, _json(raw, value_max))
    out = {gauge: float(m[name]) for name, gauge in FINANCIAL_GAUGES.items() if m.get(name) is not None}
    out["financial_metrics_timestamp_seconds"] = timestamp(m, "timestamp", required=True)
    return out


def _parse_custom(raw: RawValue, value_max: int) -> float:
    return _checked(custom_value, _json(raw, value_max))


def _signal_view(signal: dict[str, Any]) -> SignalView:
    latency = signal.get("execution_latency_ms")
    return SignalView(
        action=signal["action"],
        confidence=float(signal["confidence"]),
        price=float(signal["price"]),
        timestamp=signal_time(signal),
        execution_latency_s=None if latency is None else float(latency) / 1000.0,
    )
