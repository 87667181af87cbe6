"""Cache routes (GET/POST/DELETE /api/cache/signals) and the cache feature's background tasks.

The feature builds one RedisClient (Redis when configured, else in memory) shared by the
signal and metrics caches, the mirror that exports the trading keys, and — when Redis is
configured — the publisher of `<ns>:health:<service>`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from loguru import logger

from ..cache.client import RedisClient
from ..cache.collector import MirrorCollector
from ..cache.errors import (
    CacheFull,
    CacheTypeError,
    CacheUnavailable,
    CacheValueError,
    SignalError,
    SignalTooLarge,
    TooManySymbols,
)
from ..cache.health_writer import HealthWriter
from ..cache.layout import ACTIONS, SYMBOL_RE
from ..cache.memory import MemoryBackend
from ..cache.metrics import CacheMetrics, HealthWriterMetrics, MirrorMetrics
from ..cache.mirror import Mirror
from ..cache.signals import (
    MAX_LIMIT,
    REQUIRED,
    SignalCache,
    signal_time,
    validate_signal,
)
from ..cache.trading_metrics import MetricsCache
from .errors import ApiError, bad_request, invalid, unavailable
from .keys import CHECKER, DEPENDENCIES, READY, REGISTRY, SETTINGS
from .queries import query_type, refuse_empty
from .routes import Route
from .schemas import NO_NUL, body_pointer, closed, closed_optional, free_form, refusal, reply
from .validation import check_query, get_free_object, query_int, read_json

PATH = "/api/cache/signals"
TYPES = ("latest", "history", "stats")
RETRY_AFTER = 5  # seconds; the client reconnects on its own, so this is only pacing
SWEEP_INTERVAL = 60.0  # the in-memory backend's cleanup of expired entries
# One day, as for latency records: longer is a unit mistake, and sums of such values would
# overflow the history statistics to a non-JSON Infinity.
MAX_EXECUTION_LATENCY_MS = 86_400_000.0
_PARAMS = {"latest": {"type", "symbol"}, "history": {"type", "symbol", "limit"},
           "stats": {"type", "symbol"}}


@dataclass(frozen=True)
class CacheFeature:
    """The cache components one sidecar runs."""

    client: RedisClient
    signals: SignalCache
    trading: MetricsCache
    mirror: Mirror
    writer: HealthWriter | None
    metrics: CacheMetrics


CACHE = web.AppKey("cache", CacheFeature)


def setup(app: web.Application) -> list[Route]:
    """Build the cache components on the app's registry and return the cache routes."""
    settings, registry = app[SETTINGS], app[REGISTRY]
    metrics = CacheMetrics(registry)
    client = RedisClient(namespace=settings.redis_namespace, url=settings.redis_url, metrics=metrics,
                         max_bytes=settings.cache_max_bytes)
    mirror = Mirror(
        client,
        symbols=settings.mirror_symbols,
        interval=settings.mirror_interval,
        max_symbols=settings.mirror_max_symbols,
        max_custom=settings.mirror_max_custom,
        metrics=MirrorMetrics(registry),
    )
    registry.register(MirrorCollector(mirror))
    writer = None
    if client.is_redis:
        writer = HealthWriter(client, metrics=HealthWriterMetrics(registry))
        app[CHECKER].add_listener(writer.listener)
        backend = client.backend
        app[DEPENDENCIES]["redis"] = lambda: {
            "up": backend.up, "mirror_last_success": mirror.snapshot.last_success}
    signals = SignalCache(client, settings.signal_history_max,
                          max_symbols=settings.cache_max_symbols,
                          max_signal_bytes=settings.cache_max_signal_bytes)
    app[CACHE] = CacheFeature(client, signals, MetricsCache(client), mirror, writer, metrics)
    app[READY]["cache"] = False
    app.cleanup_ctx.append(_cache_ctx)
    return [
        Route("GET", PATH, get_signals, "read",
              "The latest signal (overall or per symbol), a symbol's history, or its statistics",
              spec={"parameters": _GET_PARAMETERS, "responses": _GET_RESPONSES}),
        Route("POST", PATH, post_signal, "write",
              "Store one signal as the latest and in its symbol's history, in one atomic step",
              spec={"requestBody": _SIGNAL_SCHEMA, "responses": _POST_RESPONSES}),
        Route("DELETE", PATH, delete_signals, "write",
              "Clear the signal cache (one symbol's history with ?symbol=); answers keys removed",
              spec={"parameters": [_param("symbol", "only this symbol's history and latest", **_SYMBOL)],
                    "responses": _DELETE_RESPONSES}),
    ]


async def _cache_ctx(app: web.Application):
    feature = app[CACHE]
    tasks = [asyncio.create_task(feature.mirror.run(), name="cache-mirror")]
    if feature.writer is not None:
        tasks.append(asyncio.create_task(feature.writer.run(), name="cache-health-writer"))
    if isinstance(feature.client.backend, MemoryBackend):
        tasks.append(asyncio.create_task(_sweep(feature.client.backend), name="cache-sweep"))
    app[READY]["cache"] = True
    try:
        yield
    finally:
        app[READY]["cache"] = False
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                logger.opt(exception=task.exception()).error("{} ended with an error", task.get_name())
        if feature.writer is not None:
            try:
                async with asyncio.timeout(2.0):  # last results; a frozen Redis must not hold shutdown
                    await feature.writer.flush()
            except TimeoutError:
                logger.warning("health publisher: final flush abandoned after 2 s")
        await feature.client.close()


async def _sweep(backend: MemoryBackend) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL)
        backend.sweep()


@contextmanager
def _cache_errors_as_api_errors() -> Iterator[None]:
    """Cache failures as API errors: 503 while Redis is away, 409 on a foreign key type,
    413 for a signal over CACHE_MAX_SIGNAL_BYTES, 422 for a symbol over CACHE_MAX_SYMBOLS,
    507 when the in-memory backend holds CACHE_MAX_BYTES."""
    try:
        yield
    except CacheUnavailable as exc:
        # After a timeout Redis may still apply the write, but only whole (MULTI/EXEC), and
        # a retried signal adds no duplicate: so "retry later" is always the right advice.
        raise unavailable(f"{exc}; retry later (a signal is written whole or not at all)",
                          RETRY_AFTER) from None
    except CacheTypeError as exc:
        raise ApiError(409, "conflict", f"{exc}; nothing was changed") from None
    except CacheFull as exc:
        raise ApiError(507, "cache_full", f"{exc}; nothing was written: delete signals or raise "
                       "the budget", limit="cache_bytes") from None
    except CacheValueError as exc:
        raise ApiError(502, "bad_value", str(exc)) from None
    except SignalTooLarge as exc:
        raise ApiError(413, "payload_too_large", exc.message, exc.field, limit=exc.limit) from None
    except TooManySymbols as exc:
        raise ApiError(422, "too_many_symbols", exc.message, exc.field, limit=exc.limit) from None


def _symbol(query, required: bool) -> str | None:
    value = query.get("symbol")
    if value is None:
        if required:
            raise bad_request("query parameter 'symbol' is required for this type", "symbol")
        return None
    if not SYMBOL_RE.fullmatch(value):
        raise bad_request(f"symbol must match ^{SYMBOL_RE.pattern}$, got {value[:40]!r}", "symbol")
    return value


async def get_signals(request: web.Request) -> web.Response:
    """GET: ?type=latest (default) | history | stats, with symbol and limit."""
    kind = query_type(request, TYPES, "latest")
    query = refuse_empty(check_query(request, _PARAMS[kind]))
    signals = request.app[CACHE].signals
    with _cache_errors_as_api_errors():
        if kind == "latest":
            answer: Any = {"signal": await signals.get_latest(_symbol(query, required=False))}
        elif kind == "history":
            symbol = _symbol(query, required=True)
            limit = query_int(query, "limit", 50, 1, MAX_LIMIT)
            answer = {"symbol": symbol, "signals": await signals.get_history(symbol, limit)}
        else:
            answer = await signals.get_signal_stats(_symbol(query, required=True))
    return web.json_response(answer)


async def post_signal(request: web.Request) -> web.Response:
    """POST: one signal → signal:latest and its history in one MULTI/EXEC → 201."""
    check_query(request, ())
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid("body must be a JSON object", None)
    get_free_object(body, "features", "")
    try:
        signal = validate_signal(body)
    except SignalError as exc:
        raise invalid(str(exc), exc.field) from None
    latency = signal.get("execution_latency_ms")
    if latency is not None and latency > MAX_EXECUTION_LATENCY_MS:
        raise invalid(f"execution_latency_ms: must be <= {MAX_EXECUTION_LATENCY_MS:g} (one day), "
                      f"got {latency:g}", "execution_latency_ms")
    # A signal from the future would show a negative age and hide a stale engine: refused
    # past the skew audit event times are allowed (AUDIT_MAX_FUTURE_SKEW).
    skew = request.app[SETTINGS].audit_max_future_skew
    ahead = signal_time(signal) - time.time()
    if ahead > skew:
        raise invalid(f"timestamp is {ahead:.0f} s in the future; at most {skew:g} s "
                      "(AUDIT_MAX_FUTURE_SKEW) is allowed", "timestamp")
    with _cache_errors_as_api_errors():
        stored = await request.app[CACHE].signals.record(signal)
    return web.json_response({"signal": stored}, status=201)


async def delete_signals(request: web.Request) -> web.Response:
    """DELETE: clear every signal key, or one symbol's (?symbol=)."""
    query = refuse_empty(check_query(request, ("symbol",)))
    symbol = _symbol(query, required=False)
    with _cache_errors_as_api_errors():
        cleared = await request.app[CACHE].signals.clear(symbol)
    return web.json_response({"cleared": cleared})


def _param(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "integer" if name == "limit" else "string", **schema}}


_SYMBOL = {"pattern": f"^{SYMBOL_RE.pattern}$", "minLength": 3, "maxLength": 12}
_SYMBOL_SCHEMA = {"type": "string", **_SYMBOL}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50}
# One exploded form object, so that the document says which parameters each type takes.
_GET_PARAMETERS = [{
    "name": "query", "in": "query", "style": "form", "explode": True, "required": False,
    "description": "type=latest (the default): symbol optional (the overall latest when absent); "
                   "type=history: symbol, limit; type=stats: symbol. A parameter of another "
                   "type is refused with 400.",
    "schema": {"oneOf": [
        closed_optional(required=(), type={"const": "latest"}, symbol=_SYMBOL_SCHEMA),
        closed_optional(required=("type", "symbol"), type={"const": "history"},
                        symbol=_SYMBOL_SCHEMA, limit=_LIMIT),
        closed_optional(required=("type", "symbol"), type={"const": "stats"}, symbol=_SYMBOL_SCHEMA),
    ]},
}]
_TEXT = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": NO_NUL}
_SIGNAL_FIELDS: dict[str, Any] = {
    "signal_id": _TEXT,
    "timestamp": {"type": "string", "format": "date-time", "maxLength": 64, "pattern": NO_NUL,
                  "description": "with an offset"},
    "symbol": {"type": "string", **_SYMBOL},
    "action": {"type": "string", "enum": list(ACTIONS)},
    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    "price": {"type": "number", "exclusiveMinimum": 0},
}
_SIGNAL_SCHEMA = {
    "type": "object",
    "required": list(REQUIRED),
    # Fields beyond these (a `strategy`, say) are stored as they are.
    "propertyNames": {"minLength": 1, "maxLength": 256, "pattern": NO_NUL},
    "additionalProperties": {"$ref": body_pointer(PATH) + "/properties/features/$defs/value"},
    "properties": {
        **_SIGNAL_FIELDS,
        # Optional fields may be null, which means absent.
        "features": free_form(body_pointer(PATH) + "/properties/features"),
        "model_version": {**_TEXT, "type": ["string", "null"]},
        "execution_latency_ms": {"type": ["number", "null"], "minimum": 0,
                                 "maximum": MAX_EXECUTION_LATENCY_MS},
    },
}
# Answers: a stored signal keeps fields a trading engine wrote beyond the known ones.
_SIGNAL = {
    "type": "object",
    "required": list(REQUIRED),
    "properties": {
        **_SIGNAL_FIELDS,
        "timestamp": {"type": "string", "description": "ISO-8601 with an offset, as it was written"},
        "features": {"type": "object"},
        "model_version": {"type": "string"},
        "execution_latency_ms": {"type": "number", "minimum": 0},
    },
}
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_COUNT = {"type": "integer", "minimum": 0}
_STATS = closed(
    symbol={"type": "string", **_SYMBOL},
    count=_COUNT,
    by_action=closed(**{action: _COUNT for action in ACTIONS}),
    confidence=closed(mean=_NUMBER_OR_NULL, min=_NUMBER_OR_NULL, max=_NUMBER_OR_NULL),
    mean_execution_latency_ms=_NUMBER_OR_NULL,
    first_timestamp={"type": ["string", "null"]},
    last_timestamp={"type": ["string", "null"]},
)
_CONFLICT = refusal("a signal key holds another Redis type; nothing was changed")
_UNAVAILABLE = refusal("Redis is unreachable (Retry-After); nothing was changed")
_GET_RESPONSES = {
    "200": reply({"oneOf": [
        closed(signal={"oneOf": [_SIGNAL, {"type": "null"}]}),
        closed(symbol={"type": "string", **_SYMBOL},
               signals={"type": "array", "maxItems": MAX_LIMIT, "items": _SIGNAL}),
        _STATS,
    ]}, "latest: {signal} (null when none); history: {symbol, signals} newest first; "
        "stats: the statistics of the symbol's history (nulls when empty)"),
    "409": _CONFLICT,
    "502": refusal("a signal key holds a value that is not a valid signal"),
    "503": _UNAVAILABLE,
}
_POST_RESPONSES = {
    "201": reply(closed(signal=_SIGNAL),
                 "stored as the latest signal and at the head of its symbol's history"),
    "409": _CONFLICT,
    "413": refusal("the signal's JSON is larger than CACHE_MAX_SIGNAL_BYTES; nothing was written"),
    "422": refusal("invalid, or `too_many_symbols`: a new symbol while CACHE_MAX_SYMBOLS "
                   "symbols have a history; nothing was written"),
    "507": refusal("`cache_full`: the in-memory backend holds CACHE_MAX_BYTES; nothing was written"),
    "503": refusal("Redis is unreachable (Retry-After); the signal is written whole or not at all"),
}
_DELETE_RESPONSES = {
    "200": reply(closed(cleared=_COUNT), "how many keys were removed"),
    "409": _CONFLICT,
    "503": _UNAVAILABLE,
}
