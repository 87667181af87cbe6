"""MetricsCache and the shapes it stores: financial snapshot, active positions, custom metrics."""

from __future__ import annotations

from typing import Any

from loguru import logger

from .. import fields
from ..fields import FieldError
from .client import RedisClient
from .errors import CacheValueError, SignalError
from .layout import CUSTOM_NAME_RE, CUSTOM_PREFIX, FINANCIAL, SYMBOL_RE, custom_key, position_key
from .metrics import CacheMetrics
from .values import FREE_FORM_LIMIT, dumps, number, require_object, string, timestamp

# Financial field → the gauge it feeds (usdcop_<name>), as docs/metrics.md names them.
FINANCIAL_GAUGES = {
    "total_pnl": "pnl",
    "win_rate": "win_ratio",
    "sharpe_ratio": "sharpe_ratio",
    "max_drawdown": "max_drawdown_ratio",
    "total_trades": "trades",
    "active_positions": "active_positions",
    "portfolio_value": "portfolio_value",
}
SIDES = ("LONG", "SHORT")


def _bounded(obj: dict, what: str) -> None:
    try:
        fields.bounded(obj, what, limit=FREE_FORM_LIMIT, encode=dumps)
    except FieldError as exc:
        raise SignalError(None, exc.sentence) from None


def validate_financial(value: Any) -> dict[str, Any]:
    """Check a financial snapshot (only `timestamp` required; unknown fields kept, ignored)."""
    obj = require_object(value, "financial metrics")
    timestamp(obj, "timestamp", required=True)
    number(obj, "total_pnl")
    number(obj, "win_rate", lo=0.0, hi=1.0)
    number(obj, "sharpe_ratio")
    number(obj, "max_drawdown", hi=0.0)  # a negative ratio, as the trading engine writes it
    number(obj, "total_trades", lo=0.0)
    number(obj, "active_positions", lo=0.0)
    number(obj, "portfolio_value")
    _bounded(obj, "financial metrics")
    return obj


def validate_position(value: Any) -> dict[str, Any]:
    """Check an active position (unknown fields kept, ignored)."""
    obj = require_object(value, "position")
    string(obj, "position_id", required=True)
    string(obj, "symbol", required=True, pattern=SYMBOL_RE)
    string(obj, "side", required=True, choices=SIDES)
    number(obj, "quantity", required=True, lo=0.0, lo_open=True)
    number(obj, "entry_price", required=True, lo=0.0, lo_open=True)
    timestamp(obj, "entry_time", required=True)
    number(obj, "current_price", lo=0.0, lo_open=True)
    number(obj, "unrealized_pnl")
    _bounded(obj, "position")
    return obj


def custom_value(value: Any) -> float:
    """The number of a custom metric: a JSON number, or `{"value": number, "timestamp"?}`."""
    if isinstance(value, dict):
        number(value, "value", required=True)
        timestamp(value, "timestamp")
        _bounded(value, "custom metric")
        return float(value["value"])
    return number({"value": value}, "value", required=True)  # type: ignore[return-value]


def check_custom_name(name: Any) -> str:
    """A custom metric name as keys and labels use it."""
    if not isinstance(name, str) or not CUSTOM_NAME_RE.fullmatch(name):
        raise SignalError("name", f"must match ^{CUSTOM_NAME_RE.pattern}$, got {name!r}")
    return name


class MetricsCache:
    """MetricsCache on a RedisClient: financial snapshot, positions, custom metrics.

    Trading state never expires; values are validated before they are written.
    """

    def __init__(self, client: RedisClient, metrics: CacheMetrics | None = None) -> None:
        self.client = client
        self.metrics = metrics if metrics is not None else client.metrics

    def _count(self, hit: bool) -> None:
        if self.metrics is not None:
            self.metrics.request("metrics", hit)

    async def _get(self, key: str) -> Any | None:
        value = await self.client.get(key, count=False)
        self._count(value is not None)
        return value

    async def set_financial_metrics(self, m: dict[str, Any]) -> dict[str, Any]:
        """Validate and store `metrics:financial`."""
        stored = validate_financial(m)
        await self.client.set(FINANCIAL, stored, ttl=0)
        return stored

    async def get_financial_metrics(self) -> dict[str, Any] | None:
        """The financial snapshot, or None."""
        return await self._get(FINANCIAL)

    async def set_position(self, p: dict[str, Any]) -> dict[str, Any]:
        """Validate and store `position:active:<symbol>`."""
        stored = validate_position(p)
        await self.client.set(position_key(stored["symbol"]), stored, ttl=0)
        return stored

    async def get_position(self, symbol: str) -> dict[str, Any] | None:
        """The active position of `symbol`, or None."""
        return await self._get(position_key(_symbol(symbol)))

    async def close_position(self, symbol: str) -> bool:
        """Remove the active position of `symbol`; True when there was one."""
        return await self.client.delete(position_key(_symbol(symbol)))

    async def set_custom_metric(self, name: str, value: Any) -> Any:
        """Validate and store `metrics:custom:<name>` (a number or `{value, timestamp?}`)."""
        check_custom_name(name)
        custom_value(value)
        await self.client.set(custom_key(name), value, ttl=0)
        return value

    async def get_custom_metric(self, name: str) -> Any | None:
        """The stored custom metric (number or object), or None."""
        return await self._get(custom_key(check_custom_name(name)))

    async def get_custom_metrics(self) -> dict[str, Any]:
        """Every custom metric by name; values that are not JSON are skipped and logged."""
        keys = await self.client.keys(CUSTOM_PREFIX + "*")
        raws = await self.client.backend.mget([self.client.key(k) for k in keys])
        out: dict[str, Any] = {}
        for key, raw in zip(keys, raws, strict=True):
            if raw is None:
                continue
            try:
                out[key[len(CUSTOM_PREFIX):]] = self.client.decode(key, raw)
            except CacheValueError as exc:
                logger.warning("skipping custom metric: {}", exc)
        self._count(bool(out))
        return out


def _symbol(symbol: Any) -> str:
    if not isinstance(symbol, str) or not SYMBOL_RE.fullmatch(symbol):
        raise SignalError("symbol", f"must match ^{SYMBOL_RE.pattern}$, got {symbol!r}")
    return symbol
