"""The audit feature: /api/audit/signals (query, append, purge) and /api/audit/verify."""

from __future__ import annotations

import re

from aiohttp import web
from loguru import logger

from ..audit.errors import (
    AuditConflict,
    AuditError,
    AuditRejected,
    AuditUnavailable,
    AuditValidationError,
)
from ..audit.events import EVENT_TYPE_RE, SYMBOL_RE, parse_time
from ..audit.query import MAX_LIMIT, Query, decode_cursor, page
from ..audit.service import AuditService
from ..audit.verify import VERIFY_KEYS
from .errors import ApiError, bad_request, invalid, unavailable
from .keys import CHECKER, DEPENDENCIES, READY, REGISTRY, RELOADER, SETTINGS
from .lifecycle import running
from .routes import Route
from .validation import (
    BATCH_BODY_LIMIT,
    check_query,
    closed_object,
    query_int,
    read_json,
)

AUDIT = web.AppKey("audit", AuditService)
PATH = "/api/audit/signals"
MAX_BATCH = 1000
_QUERY = ("eventType", "symbol", "startTime", "endTime", "limit", "cursor")


def setup(app: web.Application) -> list[Route]:
    """Build the audit service, hook it to health events and reloads, return the routes."""
    service = AuditService(app[SETTINGS], app[REGISTRY])
    app[AUDIT] = service
    app[CHECKER].add_listener(service.own.status_listener)
    app[RELOADER].listeners.append(service.own.record_config_change)
    if service.postgres:
        app[DEPENDENCIES]["postgres"] = service.dependency
    app[READY]["audit"] = False
    app.cleanup_ctx.append(running("audit", AUDIT))
    return [
        Route("GET", PATH, get_events, "read",
              "The audit trail, newest first, with filters and a keyset cursor",
              spec={"parameters": _GET_PARAMETERS}),
        Route("POST", PATH, post_events, "write",
              "Append one event, or {\"events\": [...]} (at most 1,000); 201 stored, 200 the"
              " same event again, 409 the same event_id with other fields, 202 spooled"),
        Route("DELETE", PATH, delete_events, "admin",
              "Purge events older than the retention horizon (recorded as AUDIT_PURGED first)"),
        Route("GET", "/api/audit/verify", get_verify, "read",
              "Verify the chain, its checkpoints and purge records; names the first broken"
              " link. Incremental from the newest signed checkpoint; ?full=true re-hashes"
              " every event", spec={"parameters": [_param(
                  "full", {"type": "string", "enum": ["true", "false"], "default": "false"},
                  "re-hash every stored event instead of continuing from the newest signed"
                  " checkpoint")]}),
    ]


def _param(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


_GET_PARAMETERS = [
    _param("eventType", {"type": "string", "pattern": f"^{EVENT_TYPE_RE.pattern}$"},
           "only events of this type"),
    _param("symbol", {"type": "string", "pattern": f"^{SYMBOL_RE.pattern}$"},
           "only events of this symbol"),
    _param("startTime", {"type": "string", "format": "date-time"},
           "event timestamp at or after (ISO-8601 with offset)"),
    _param("endTime", {"type": "string", "format": "date-time"},
           "event timestamp before (ISO-8601 with offset)"),
    _param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
           "events per page"),
    _param("cursor", {"type": "string"}, "next_cursor of the previous page (opaque)"),
]


def _api_error(exc: AuditError) -> ApiError:
    if isinstance(exc, AuditValidationError):
        if exc.too_large:
            return ApiError(413, "payload_too_large", exc.detail, exc.field)
        return invalid(exc.detail, exc.field)
    if isinstance(exc, AuditConflict):
        return ApiError(409, "conflict", str(exc), exc.field)
    if isinstance(exc, AuditUnavailable):
        return unavailable(exc.detail, exc.retry_after, exc.code)
    if isinstance(exc, AuditRejected):
        return ApiError(422, "rejected", f"the audit store refused the event: {exc}")
    logger.warning("audit store unavailable: {}", exc)
    return unavailable(f"audit store unavailable: {exc}")


def _query_str(query, name: str, pattern: re.Pattern) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    if not pattern.fullmatch(value):
        raise bad_request(f"{name} must match {pattern.pattern}", name)
    return value


def _query_time(query, name: str):
    value = query.get(name)
    if value is None:
        return None
    try:
        return parse_time(value, name)
    except AuditValidationError as exc:
        raise bad_request(exc.detail, name) from None


async def get_events(request: web.Request) -> web.Response:
    """GET /api/audit/signals?eventType=&symbol=&startTime=&endTime=&limit=&cursor=."""
    query = check_query(request, _QUERY)
    for name, value in query.items():
        if value == "":  # an empty filter is a mistake, not "no filter"
            raise bad_request(f"{name} must not be empty", name)
    q = Query(
        event_type=_query_str(query, "eventType", EVENT_TYPE_RE),
        symbol=_query_str(query, "symbol", SYMBOL_RE),
        start=_query_time(query, "startTime"), end=_query_time(query, "endTime"),
        limit=query_int(query, "limit", 100, 1, MAX_LIMIT),
    )
    if "cursor" in query:
        try:
            q = Query(**{**q.__dict__, "before": decode_cursor(query["cursor"])})
        except AuditValidationError as exc:
            raise bad_request(exc.detail, "cursor") from None
    service = request.app[AUDIT]
    try:
        rows = await service.store.query(q)
    except AuditError as exc:
        raise _api_error(exc) from None
    return web.json_response(page(rows, q.limit))


async def post_events(request: web.Request) -> web.Response:
    """POST /api/audit/signals: one event or {"events": [...]}."""
    body = await read_json(request, BATCH_BODY_LIMIT, batch_key="events")
    service = request.app[AUDIT]
    batch = isinstance(body, dict) and "events" in body
    try:
        if batch:
            closed_object(body, "", required=("events",))
            items = body["events"]
            if not isinstance(items, list):
                raise invalid("events must be an array", "events")
            if not 1 <= len(items) <= MAX_BATCH:
                if len(items) > MAX_BATCH:
                    raise ApiError(413, "payload_too_large",
                                   f"at most {MAX_BATCH} events per batch, got {len(items)}",
                                   "events")
                raise invalid("events must not be empty", "events")
            now = service.logger.clock()  # one receipt time for the whole batch
            events = [service.logger.validate(item, f"events[{i}]", now)
                      for i, item in enumerate(items)]
        else:
            events = [service.logger.validate(body)]
        results = await service.logger.submit(events, batch=batch)
    except AuditError as exc:
        raise _api_error(exc) from None
    outcomes = [outcome for outcome, _ in results]
    status = 202 if "spooled" in outcomes else 201 if "stored" in outcomes else 200
    if not batch:
        return web.json_response(results[0][1], status=status)
    summary = {name: outcomes.count(name) for name in ("stored", "duplicate", "spooled")}
    return web.json_response({"events": [e for _, e in results], "summary": summary},
                             status=status)


async def delete_events(request: web.Request) -> web.Response:
    """DELETE /api/audit/signals (admin): the retention purge, now."""
    check_query(request, ())
    try:
        result = await request.app[AUDIT].retention.purge()
    except AuditError as exc:
        raise _api_error(exc) from None
    return web.json_response({"purged": result["purged"],
                              "through_sequence": result["through_sequence"]})




async def get_verify(request: web.Request) -> web.Response:
    """GET /api/audit/verify[?full=true]."""
    query = check_query(request, ("full",))
    full = query.get("full", "false")
    if full not in ("true", "false"):
        raise bad_request(f"full must be true or false, got {full[:20]!r}", "full")
    try:
        result = await request.app[AUDIT].verify(full=full == "true")
    except AuditError as exc:
        raise _api_error(exc) from None
    return web.json_response({k: result[k] for k in VERIFY_KEYS})
