"""SignalCache and the signal shape: the latest signal and a capped history per symbol."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from loguru import logger

from .client import RedisClient
from .errors import CacheTypeError, CacheValueError, SignalError, SignalTooLarge, TooManySymbols
from .layout import ACTIONS, HISTORY_PREFIX, SIGNAL_LATEST, SYMBOL_RE, history_key
from .metrics import CacheMetrics
from .values import (
    MAX_STRING,
    dumps,
    free_object,
    loads,
    number,
    require_object,
    string,
    timestamp,
)

REQUIRED = ("signal_id", "timestamp", "symbol", "action", "confidence", "price")
OPTIONAL = ("features", "model_version", "execution_latency_ms")
_KNOWN = frozenset(REQUIRED + OPTIONAL)
DEFAULT_HISTORY_MAX = 100
DEFAULT_MAX_SYMBOLS = 200
DEFAULT_MAX_SIGNAL_BYTES = 64 << 10
RESCAN_INTERVAL = 10.0  # seconds between counts of the symbols in the store while at the cap
MAX_LIMIT = 1000
ARRAY_HISTORY_MAX_BYTES = 1024 * 1024  # the mirror's bound on one value


def validate_signal(value: Any, *, strict: bool = True) -> dict[str, Any]:
    """Check a signal and return it as stored; SignalError names the first bad field.

    Fields beyond the known ones (a `strategy`, say) are kept as they are: with `strict`
    (what callers send) their names are checked (`extra_fields`) and the known fields come
    back without nulls; the mirror reads values written by others with `strict=False`.
    """
    obj = require_object(value, "signal")
    if strict:
        extra_fields(obj, _KNOWN)
    for key in REQUIRED:
        if obj.get(key) is None:
            raise SignalError(key, "is required")
    string(obj, "signal_id", required=True)
    timestamp(obj, "timestamp", required=True)
    string(obj, "symbol", required=True, pattern=SYMBOL_RE)
    string(obj, "action", required=True, choices=ACTIONS)
    number(obj, "confidence", required=True, lo=0.0, hi=1.0)
    number(obj, "price", required=True, lo=0.0, lo_open=True)
    string(obj, "model_version")
    number(obj, "execution_latency_ms", lo=0.0)
    free_object(obj, "features")
    if strict:
        known = {k: obj[k] for k in REQUIRED + OPTIONAL if obj.get(k) is not None}
        return {**known, **{k: v for k, v in obj.items() if k not in _KNOWN}}
    return obj


def extra_fields(obj: dict, known: frozenset[str]) -> None:
    """Fields outside `known` are kept: their names must be 1-256 characters without NUL."""
    for key in obj:
        if key in known:
            continue
        if not isinstance(key, str) or not key or len(key) > MAX_STRING or "\x00" in key:
            raise SignalError(str(key)[:40] or None,
                              f"field names must be 1-{MAX_STRING} characters without NUL")


def signal_time(signal: dict[str, Any]) -> float:
    """Unix seconds of a validated signal's timestamp."""
    return timestamp(signal, "timestamp", required=True)  # type: ignore[return-value]


def pick_latest(latest: dict | None, head: dict | None) -> dict | None:
    """The newer of `signal:latest` and a history head (latest wins a tie)."""
    if latest is None or head is None:
        return latest if head is None else head
    return head if signal_time(head) > signal_time(latest) else latest


def check_symbol(symbol: Any) -> str:
    """A symbol as keys use it (`^[A-Z0-9]{3,12}$`)."""
    if not isinstance(symbol, str) or not SYMBOL_RE.fullmatch(symbol):
        raise SignalError("symbol", f"must match ^{SYMBOL_RE.pattern}$, got {symbol!r}")
    return symbol


def _finite_mean(values: list[float]) -> float | None:
    """The mean, or None when empty or not finite (JSON has no Infinity; Redis may hold anything)."""
    if not values:
        return None
    mean = sum(v / len(values) for v in values)  # divided first: huge values do not overflow
    return mean if math.isfinite(mean) else None


def signal_stats(symbol: str, signals: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts by action, confidence summary, mean execution latency, time span."""
    by_action = {action: 0 for action in ACTIONS}
    confidences = [float(s["confidence"]) for s in signals]
    latencies = [float(s["execution_latency_ms"]) for s in signals
                 if s.get("execution_latency_ms") is not None]
    for s in signals:
        by_action[s["action"]] += 1
    ordered = sorted(signals, key=signal_time)
    return {
        "symbol": symbol,
        "count": len(signals),
        "by_action": by_action,
        "confidence": {
            "mean": sum(confidences) / len(confidences) if confidences else None,
            "min": min(confidences) if confidences else None,
            "max": max(confidences) if confidences else None,
        },
        "mean_execution_latency_ms": _finite_mean(latencies),
        "first_timestamp": ordered[0]["timestamp"] if ordered else None,
        "last_timestamp": ordered[-1]["timestamp"] if ordered else None,
    }


class SignalCache:
    """SignalCache on a RedisClient: `signal:latest` and `signal:history:<SYMBOL>`.

    Trading state never expires. History is a Redis list, newest first, capped at
    `history_max` by LTRIM in the same MULTI/EXEC as the push. A history another writer
    stored as one JSON array in a string is read (newest first by timestamp) but never
    written: a push onto it raises CacheTypeError. Pushing the signal that
    already heads the history is a no-op, so a retried write never duplicates it.

    Writes are bounded on either backend: a signal whose JSON is larger than
    `max_signal_bytes` raises SignalTooLarge, and a signal for a symbol without a history
    while `max_symbols` symbols have one raises TooManySymbols; nothing is written then.
    The symbols are counted from the store (a SCAN of the history keys, at most once per
    RESCAN_INTERVAL while at the cap) plus this cache's own writes since, so histories
    that other writers create count too.
    """

    def __init__(self, client: RedisClient, history_max: int = DEFAULT_HISTORY_MAX,
                 metrics: CacheMetrics | None = None, *, max_symbols: int = DEFAULT_MAX_SYMBOLS,
                 max_signal_bytes: int = DEFAULT_MAX_SIGNAL_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        for name, value in (("history_max", history_max), ("max_symbols", max_symbols),
                            ("max_signal_bytes", max_signal_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.client = client
        self.history_max = history_max
        self.max_symbols = max_symbols
        self.max_signal_bytes = max_signal_bytes
        self.metrics = metrics if metrics is not None else client.metrics
        self._bad_logged: set[str] = set()
        self._clock = clock
        self._symbols: set[str] | None = None  # symbols with a history, as last counted
        self._counted_at = -math.inf
        self._writing: Counter[str] = Counter()  # symbols admitted, write not yet done

    def _count(self, hit: bool) -> None:
        if self.metrics is not None:
            self.metrics.request("signals", hit)

    def _check_size(self, stored: dict[str, Any]) -> None:
        try:
            size = len(dumps(stored))
        except (TypeError, ValueError) as exc:
            raise SignalError(None, f"signal is not JSON: {exc}") from None
        if size > self.max_signal_bytes:
            raise SignalTooLarge(None, f"signal is {size} bytes as JSON; at most "
                                       f"{self.max_signal_bytes} (CACHE_MAX_SIGNAL_BYTES)",
                                 self.max_signal_bytes)

    async def set_latest(self, signal: dict[str, Any]) -> dict[str, Any]:
        """Validate and store `signal:latest`; returns the stored signal."""
        stored = validate_signal(signal)
        self._check_size(stored)
        await self.client.set(SIGNAL_LATEST, stored, ttl=0)
        return stored

    async def add_to_history(self, symbol: str, signal: dict[str, Any]) -> int:
        """Validate and push onto the symbol's capped history; returns its length."""
        check_symbol(symbol)
        stored = validate_signal(signal)
        if stored["symbol"] != symbol:
            raise SignalError("symbol", f"signal is for {stored['symbol']}, not {symbol}")
        self._check_size(stored)
        async with self._admitted(symbol):
            return await self.client.list_push(history_key(symbol), stored, self.history_max,
                                               skip_if_head=True)

    async def record(self, signal: dict[str, Any]) -> dict[str, Any]:
        """set_latest and add_to_history in one atomic step (what the API does)."""
        stored = validate_signal(signal)
        self._check_size(stored)
        async with self._admitted(stored["symbol"]):
            async with self.client.atomic() as tx:
                tx.set(SIGNAL_LATEST, stored, ttl=0)
                tx.list_push(history_key(stored["symbol"]), stored, self.history_max,
                             skip_if_head=True)
        return stored

    @asynccontextmanager
    async def _admitted(self, symbol: str) -> AsyncIterator[None]:
        """Admit a write to `symbol`'s history under the symbol cap, for the block's duration."""
        if self._symbols is None or symbol not in self._symbols:
            if await self.client.exists(history_key(symbol)):
                if self._symbols is not None:
                    self._symbols.add(symbol)
            else:
                # Read the count after the awaits: other writes may have been admitted meanwhile.
                known = self._symbols
                if known is None or (len(known) >= self.max_symbols and
                                     self._clock() - self._counted_at >= RESCAN_INTERVAL):
                    known = await self._count_symbols()
                if symbol not in known and len(known) >= self.max_symbols:
                    raise TooManySymbols("symbol", f"the cache holds {len(known)} symbols, at most "
                                         f"{self.max_symbols} (CACHE_MAX_SYMBOLS); {symbol} would "
                                         "be a new one", self.max_symbols)
                known.add(symbol)
        self._writing[symbol] += 1
        try:
            yield
        finally:
            self._writing[symbol] -= 1
            if not self._writing[symbol]:
                del self._writing[symbol]

    async def _count_symbols(self) -> set[str]:
        """The symbols with a history in the store (up to one over the cap), and ours in flight."""
        keys = await self.client.backend.scan(self.client.key(HISTORY_PREFIX + "*"),
                                              self.max_symbols + 1)
        found = {self.client.relative(k)[len(HISTORY_PREFIX):] for k in keys}
        self._symbols = found | set(self._writing)
        self._counted_at = self._clock()
        return self._symbols

    async def get_latest(self, symbol: str | None = None) -> dict[str, Any] | None:
        """The latest signal overall, or for `symbol` (the newer of latest and its history head)."""
        latest = await self._read_signal(SIGNAL_LATEST)
        if symbol is None:
            self._count(latest is not None)
            return latest
        check_symbol(symbol)
        if latest is not None and latest["symbol"] != symbol:
            latest = None
        head = await self._history(symbol, 1)
        found = pick_latest(latest, head[0] if head else None)
        self._count(found is not None)
        return found

    async def get_history(self, symbol: str, limit: int = 50) -> list[dict[str, Any]]:
        """Up to `limit` signals of `symbol`, newest first."""
        check_symbol(symbol)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise SignalError("limit", f"must be an integer between 1 and {MAX_LIMIT}, got {limit!r}")
        signals = await self._history(symbol, limit)
        self._count(bool(signals))
        return signals

    async def get_signal_stats(self, symbol: str) -> dict[str, Any]:
        """Statistics over the symbol's whole (capped) history; nulls when it is empty."""
        check_symbol(symbol)
        signals = await self._history(symbol, self.history_max)
        self._count(bool(signals))
        return signal_stats(symbol, signals)

    async def clear(self, symbol: str | None = None) -> int:
        """Delete the history of `symbol` (and `signal:latest` if it is that symbol's), or all
        signal keys; returns how many keys were removed."""
        if symbol is not None:
            check_symbol(symbol)
            removed = int(await self.client.delete(history_key(symbol)))
            if self._symbols is not None:
                self._symbols.discard(symbol)
            full = self.client.key(SIGNAL_LATEST)
            raw = await self.client.backend.get(full)
            if raw is not None and _symbol_of(raw) == symbol:
                # Delete only what was read: a newer signal of another symbol must survive.
                removed += int(await self.client.backend.compare_and_delete(full, raw))
            return removed
        keys = [SIGNAL_LATEST, *await self.client.keys(HISTORY_PREFIX + "*")]
        full = [self.client.key(k) for k in keys]
        self._symbols = None  # counted afresh at the next new symbol
        return await self.client.backend.delete(full)

    async def _read_signal(self, key: str) -> dict[str, Any] | None:
        value = await self.client.get(key, count=False)
        if value is None:
            return None
        try:
            return validate_signal(value, strict=False)
        except SignalError as exc:
            raise CacheValueError(f"{self.client.key(key)} holds an invalid signal: {exc}") from None

    async def _history(self, symbol: str, limit: int) -> list[dict[str, Any]]:
        key = history_key(symbol)
        try:
            raws = await self.client.backend.list_range(self.client.key(key), 0, limit - 1)
        except CacheTypeError:
            raw = await self.client.backend.get(self.client.key(key))
            return self._array_history(key, symbol, raw)[:limit]
        out = []
        for raw in raws:
            try:
                out.append(validate_signal(self.client.decode(key, raw), strict=False))
            except (CacheValueError, SignalError) as exc:
                self._skip(key, exc)
        return out

    def _array_history(self, key: str, symbol: str, raw: bytes | None) -> list[dict[str, Any]]:
        """A history written as one JSON array in a string: read-only, sorted newest first."""
        if raw is None:
            return []
        if len(raw) > ARRAY_HISTORY_MAX_BYTES:
            raise CacheValueError(f"{self.client.key(key)} holds a JSON array larger than "
                                  f"{ARRAY_HISTORY_MAX_BYTES} bytes")
        array = self.client.decode(key, raw)
        if not isinstance(array, list):
            raise CacheValueError(f"{self.client.key(key)} holds neither a list nor a JSON array")
        out = []
        for item in array:
            try:
                signal = validate_signal(item, strict=False)
            except SignalError as exc:
                self._skip(key, exc)
                continue
            if signal["symbol"] != symbol:
                self._skip(key, SignalError("symbol", f"is {signal['symbol']}, not {symbol}"))
                continue
            out.append(signal)
        return sorted(out, key=signal_time, reverse=True)

    def _skip(self, key: str, exc: Exception) -> None:
        # One bad element must not hide the others; say so once per key.
        if key not in self._bad_logged:
            self._bad_logged.add(key)
            logger.warning("skipping an invalid entry of {}: {}", self.client.key(key), exc)


def _symbol_of(raw: bytes) -> str | None:
    try:
        value = loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    return value.get("symbol") if isinstance(value, dict) else None
