"""Latency routes: GET stats/average/trend/high, POST records (one or a batch), DELETE."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..cache.layout import CACHE_LABELS
from ..latency.guard import NAME_RE, PairLimitError
from ..latency.metrics import LatencyMetrics
from ..latency.monitor import MAX_LATENCY_MS, LatencyMonitor
from ..latency.record import LatencyRecord
from .cache import CACHE
from .errors import ApiError, bad_request, invalid
from .keys import READY, REGISTRY, SETTINGS
from .latency_record import (
    NAME_SCHEMA,
    checked_record,
    decode_batch,
    decode_single,
    well_formed,
)
from .latency_record import openapi as record_schema
from .queries import query_type, refuse_empty
from .routes import Route
from .schemas import body_pointer, closed, closed_optional, refusal, reply
from .validation import (
    BATCH_BODY_LIMIT,
    BODY_LIMIT,
    check_query,
    closed_object,
    field_path,
    get_str,
    parse_json,
    query_float,
    query_int,
    read_body,
)

MONITOR = web.AppKey("latency_monitor", LatencyMonitor)
LATENCY_METRICS = web.AppKey("latency_metrics", LatencyMetrics)

PATH = "/api/health/latency"
MAX_RECORDS = 1000
MAX_CACHE_COUNTS = 2 * len(CACHE_LABELS)  # one hit and one miss count per cache
MAX_CACHE_COUNT = 1_000_000_000
MAX_MINUTES = 1440  # a day; the window rarely spans more anyway
TYPES = ("stats", "average", "trend", "high")
# Which query parameters each type takes; anything else is refused, not ignored.
_PARAMS = {
    "stats": {"type", "service", "operation"},
    "average": {"type", "service", "minutes"},
    "trend": {"type", "service", "operation", "minutes"},
    "high": {"type", "minutes", "threshold"},
}


def setup(app: web.Application) -> list[Route]:
    """Create the monitor on the app's registry and return the latency routes."""
    settings = app[SETTINGS]
    metrics = LatencyMetrics(app[REGISTRY])
    app[LATENCY_METRICS] = metrics
    app[MONITOR] = LatencyMonitor(settings.latency_window, settings.latency_max_pairs, metrics)
    app[READY]["latency"] = True  # in memory only: nothing to wait for
    return [
        Route(
            "GET",
            PATH,
            get_latency,
            "read",
            "Latency stats, average, trend or high-latency pairs from the window",
            spec={"parameters": _GET_PARAMETERS, "responses": _GET_RESPONSES},
        ),
        Route(
            "POST",
            PATH,
            post_latency,
            "write",
            "Record one latency or a batch {records: [...]} (at most 1000, all or nothing)",
            spec={"requestBody": {"oneOf": [_RECORD_SCHEMA, _BATCH_SCHEMA]},
                  "responses": _POST_RESPONSES},
        ),
        Route(
            "DELETE",
            PATH,
            delete_latency,
            "write",
            "Clear the window (one service's part with ?service=); counters stay",
            spec={
                "parameters": [_param("service", "string", "only this service's records", **_NAME)],
                "responses": _DELETE_RESPONSES,
            },
        ),
    ]


def _param(name: str, kind: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": kind, **schema},
    }


_NAME_SCHEMA = NAME_SCHEMA
_NAME = {k: v for k, v in NAME_SCHEMA.items() if k != "type"}
_MINUTES_PARAM = {"type": "integer", "minimum": 1, "maximum": MAX_MINUTES, "default": 5}
_THRESHOLD = {"type": "number", "minimum": 0, "maximum": MAX_LATENCY_MS, "default": 1000}
# One exploded form object, so that the document says which parameters each type takes.
_GET_PARAMETERS = [
    {
        "name": "query",
        "in": "query",
        "style": "form",
        "explode": True,
        "required": True,
        "description": "type=stats (the default): service, operation; type=average: service, "
        "minutes; type=trend: service, operation, minutes; type=high: minutes, threshold (ms). "
        "A parameter of another type is refused with 400.",
        "schema": {
            "oneOf": [
                closed_optional(
                    required=("service",),
                    type={"const": "stats"},
                    service=_NAME_SCHEMA,
                    operation=_NAME_SCHEMA,
                ),
                closed_optional(
                    required=("type", "service"),
                    type={"const": "average"},
                    service=_NAME_SCHEMA,
                    minutes=_MINUTES_PARAM,
                ),
                closed_optional(
                    required=("type", "service"),
                    type={"const": "trend"},
                    service=_NAME_SCHEMA,
                    operation=_NAME_SCHEMA,
                    minutes=_MINUTES_PARAM,
                ),
                closed_optional(
                    required=("type",),
                    type={"const": "high"},
                    minutes=_MINUTES_PARAM,
                    threshold=_THRESHOLD,
                ),
            ]
        },
    }
]
_METADATA_POINTER = body_pointer(PATH) + "/oneOf/0/properties/metadata"
_RECORD_SCHEMA = record_schema(_METADATA_POINTER)
_BATCH_SCHEMA = {
    "type": "object",
    "required": ["records"],
    "additionalProperties": False,
    "properties": {
        "records": {"type": "array", "maxItems": MAX_RECORDS, "items": _RECORD_SCHEMA},
        "cache_requests": {
            "type": ["array", "null"],
            "maxItems": MAX_CACHE_COUNTS,
            "description": "an engine's own cache reads since its last batch, added to "
                           "usdcop_cache_requests_total",
            "items": closed(
                cache={"type": "string", "enum": list(CACHE_LABELS)},
                result={"type": "string", "enum": ["hit", "miss"]},
                count={"type": "integer", "minimum": 1, "maximum": MAX_CACHE_COUNT},
            ),
        },
    },
}
_MS = {"type": ["number", "null"], "minimum": 0}
_COUNT = {"type": "integer", "minimum": 0}
_MINUTES = {"type": "integer", "minimum": 1, "maximum": MAX_MINUTES}
_STATS = closed(
    service=_NAME_SCHEMA,
    operation={"type": ["string", "null"]},
    count=_COUNT,
    success_ratio={"type": ["number", "null"], "minimum": 0, "maximum": 1},
    **{k: _MS for k in ("mean_ms", "min_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms")},
)
_AVERAGE = closed(service=_NAME_SCHEMA, minutes=_MINUTES, average_ms=_MS, count=_COUNT)
_TREND = closed(
    trend={"type": "string", "enum": ["improving", "stable", "degrading"]},
    current_mean_ms=_MS,
    previous_mean_ms=_MS,
    change_ratio={"type": ["number", "null"]},
    service=_NAME_SCHEMA,
    operation={"type": ["string", "null"]},
    minutes=_MINUTES,
)
_HIGH = closed(
    threshold_ms={"type": "number", "minimum": 0, "maximum": MAX_LATENCY_MS},
    minutes=_MINUTES,
    services={
        "type": "array",
        "items": closed(
            service=_NAME_SCHEMA,
            operation=_NAME_SCHEMA,
            mean_ms={"type": "number", "minimum": 0},
            p95_ms={"type": "number", "minimum": 0},
            count={"type": "integer", "minimum": 1},
        ),
    },
)
_GET_RESPONSES = {
    "200": reply(
        {"oneOf": [_STATS, _AVERAGE, _TREND, _HIGH]},
        "stats: the window's statistics (count 0 and nulls when empty); average; trend; "
        "high: the pairs whose mean is over the threshold, slowest first",
    ),
}
_POST_RESPONSES = {
    "200": reply(closed(accepted=_COUNT), "how many records were recorded"),
    "422": refusal(
        "well-formed but invalid, or `too_many_pairs` (the cardinality guard); `field` names "
        "what; nothing of the batch was recorded",
    ),
}
_DELETE_RESPONSES = {"200": reply(closed(cleared=_COUNT), "how many records left the window")}


def _query_name(query, name: str, required: bool) -> str | None:
    value = query.get(name)
    if value is None:
        if required:
            raise bad_request(f"query parameter {name!r} is required", name)
        return None
    if NAME_RE.fullmatch(value) is None:
        raise bad_request(f"{name} must match {NAME_RE.pattern}, got {value[:80]!r}", name)
    return value


async def get_latency(request: web.Request) -> web.Response:
    """GET: ?type=stats|average|trend|high with the parameters each type takes."""
    kind = query_type(request, TYPES, "stats")
    query = refuse_empty(check_query(request, _PARAMS[kind]))
    monitor = request.app[MONITOR]
    minutes = query_int(query, "minutes", 5, 1, MAX_MINUTES)
    if kind == "stats":
        service = _query_name(query, "service", required=True)
        answer: Any = monitor.get_latency_stats(service, _query_name(query, "operation", False))
    elif kind == "average":
        answer = monitor.get_average(_query_name(query, "service", required=True), minutes)
        answer["minutes"] = minutes
    elif kind == "trend":
        service = _query_name(query, "service", required=True)
        operation = _query_name(query, "operation", False)
        answer = {
            **monitor.get_latency_trend(service, operation, minutes),
            "service": service,
            "operation": operation,
            "minutes": minutes,
        }
    else:
        threshold = query_float(query, "threshold", 1000.0, 0.0, MAX_LATENCY_MS)
        answer = {
            "threshold_ms": threshold,
            "minutes": minutes,
            "services": monitor.get_high_latency_services(threshold, minutes),
        }
    return web.json_response(answer)


def _record(value: Any, where: str, index: int | None = None) -> LatencyRecord:
    record = _well_formed(value)
    if record is None:
        record = _checked_record(value, where if index is None else field_path(where, index))
    return record


def _well_formed(value: Any) -> LatencyRecord | None:
    """The usual record (no metadata) checked in one pass, or None for the field checks."""
    return well_formed(value)


def _checked_record(value: Any, where: str) -> LatencyRecord:
    return checked_record(value, where)


async def post_latency(request: web.Request) -> web.Response:
    """POST: one record, or {"records": [...]} recorded all or nothing.

    Plain records (and batches of them) are decoded and checked in one msgspec pass;
    anything else (escapes, engine cache counts, mistakes) goes the strict way and is
    refused there with the field named."""
    raw = await read_body(request, BATCH_BODY_LIMIT)
    single = decode_single(raw) if len(raw) <= BODY_LIMIT else None
    batch = decode_batch(raw, MAX_RECORDS) if single is None else None
    body = parse_json(raw) if single is None and batch is None else None
    cache_reads: list[tuple[str, str, int]] = []
    if single is not None:
        records, where = [single], ""
    elif batch is not None:
        records, where = batch, "records"
    elif isinstance(body, dict) and "records" in body:
        closed_object(body, "", required=("records",), optional=("cache_requests",))
        cache_reads = _cache_requests(body.get("cache_requests"))
        items = body["records"]
        if not isinstance(items, list):
            raise invalid("records must be an array", "records")
        if len(items) > MAX_RECORDS:
            raise ApiError(
                413,
                "payload_too_large",
                f"records has {len(items)} items; at most {MAX_RECORDS} per request",
                "records",
            )
        records = [_record(item, "records", i) for i, item in enumerate(items)]
        where = "records"
    else:
        if len(raw) > BODY_LIMIT:
            raise ApiError(413, "payload_too_large",
                           f"request body over {BODY_LIMIT} bytes (only batches may be larger)")
        records = [_record(body, "")]
        where = ""
    try:
        accepted = request.app[MONITOR].record_many(records, checked=True)
    except PairLimitError as exc:
        index = next(
            i
            for i, r in enumerate(records)
            if (r.service, r.operation) == (exc.service, exc.operation)
        )
        field = field_path(where, index) + ".operation" if where else "operation"
        raise ApiError(422, "too_many_pairs", str(exc), field) from None
    feature = request.app.get(CACHE)  # every sidecar has it; a latency-only test app not
    if cache_reads and feature is not None:
        for cache, result, count in cache_reads:
            feature.metrics.add(cache, result, count)
    if accepted == 1:
        return web.Response(text=_ACCEPTED_ONE, content_type="application/json")
    return web.json_response({"accepted": accepted})


_ACCEPTED_ONE = json.dumps({"accepted": 1})  # the answer to every single record, as json_response writes it


def _cache_requests(value: Any) -> list[tuple[str, str, int]]:
    """An engine's forwarded cache reads: [{cache, result, count}], checked before anything counts."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("cache_requests must be an array", "cache_requests")
    if len(value) > MAX_CACHE_COUNTS:
        raise invalid(f"cache_requests has {len(value)} items; at most {MAX_CACHE_COUNTS}",
                      "cache_requests")
    out = []
    for i, item in enumerate(value):
        where = field_path("cache_requests", i)
        closed_object(item, where, required=("cache", "result", "count"))
        cache = get_str(item, "cache", where, required=True)
        if cache not in CACHE_LABELS:
            raise invalid(f"{where}.cache must be one of {'|'.join(CACHE_LABELS)}", f"{where}.cache")
        result = get_str(item, "result", where, required=True)
        if result not in ("hit", "miss"):
            raise invalid(f"{where}.result must be hit or miss", f"{where}.result")
        count = item["count"]
        if type(count) is not int or not 1 <= count <= MAX_CACHE_COUNT:
            raise invalid(f"{where}.count must be an integer between 1 and {MAX_CACHE_COUNT}",
                          f"{where}.count")
        out.append((cache, result, count))
    return out


async def delete_latency(request: web.Request) -> web.Response:
    """DELETE: clear the window, or one service's part of it."""
    query = refuse_empty(check_query(request, ("service",)))
    service = _query_name(query, "service", required=False)
    return web.json_response({"cleared": request.app[MONITOR].clear(service)})
