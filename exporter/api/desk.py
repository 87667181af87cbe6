"""The desk feature: trading halt (GET/POST/DELETE /api/trading/halt), reconciliation report
(GET /api/desk/reconciliation), and the desk's metrics and background loops."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from ..audit.errors import AuditError
from ..cache.errors import CacheTypeError, CacheUnavailable
from ..cache.layout import SYMBOL_RE
from ..config.model import DeskConfig
from ..desk.collector import DeskCollector
from ..desk.halt import HALT_REASONS, MAX_ACTOR, MAX_NOTE, Halt, HaltConflict, HaltView
from ..desk.metrics import DeskMetrics
from ..desk.service import Desk
from .audit import AUDIT
from .cache import CACHE
from .errors import ApiError, invalid, unavailable
from .keys import CHECKER, READY, REGISTRY, SETTINGS
from .lifecycle import running
from .routes import Route
from .schemas import closed, refusal, reply
from .validation import check_query, closed_object, get_str, read_json

DESK = web.AppKey("desk", Desk)
HALT_PATH = "/api/trading/halt"
RECONCILIATION_PATH = "/api/desk/reconciliation"
RETRY_AFTER = 5
# actor and note: printable, no line breaks (C0, DEL, NEL, the Unicode line separators)
_TEXT = re.compile("[^\x00-\x1f\x7f\x85\u2028\u2029]+")
_DEFAULT_DESK = DeskConfig()


def setup(app: web.Application) -> list[Route]:
    """Build the desk on the cache (and audit) components; return the desk routes."""
    settings, registry = app[SETTINGS], app[REGISTRY]
    cache = app.get(CACHE)
    if cache is None:
        raise RuntimeError("the desk feature needs the cache feature set up before it")
    checker = app[CHECKER]

    def config() -> DeskConfig:
        loaded = checker.registry.config
        return loaded.desk if loaded is not None else _DEFAULT_DESK

    audit = app.get(AUDIT)
    spool = audit.state.spool if audit is not None else None
    desk = Desk(
        cache.client, cache.mirror, config, metrics=DeskMetrics(registry),
        audit=audit.own if audit is not None else None,
        audit_store=audit.store if audit is not None else None,
        audit_pending=(lambda: spool.pending) if spool is not None else (lambda: 0),
        writer=settings.shard_index == 0,
        max_future_skew=settings.audit_max_future_skew,
        interval=settings.mirror_interval,
    )
    registry.register(DeskCollector(desk))
    app[DESK] = desk
    app[READY]["desk"] = False
    app.cleanup_ctx.append(running("desk", DESK))
    return [
        Route("GET", HALT_PATH, get_halt, "read",
              "Whether trading is halted: reason, actor, note and since when",
              spec={"responses": _GET_HALT_RESPONSES}),
        Route("POST", HALT_PATH, post_halt, "write",
              "Halt trading (sets usdcop:trading:halted) and record TRADING_HALTED",
              spec={"requestBody": _HALT_SCHEMA, "responses": _POST_HALT_RESPONSES}),
        Route("DELETE", HALT_PATH, delete_halt, "write",
              "Resume trading: record TRADING_RESUMED, then remove usdcop:trading:halted",
              spec={"requestBody": _RESUME_SCHEMA, "responses": _DELETE_HALT_RESPONSES}),
        Route("GET", RECONCILIATION_PATH, get_reconciliation, "read",
              "The last reconciliation of audit-trail positions with Redis: mismatches, "
              "orphan trades, stale positions",
              spec={"responses": _RECONCILIATION_RESPONSES}),
    ]


@contextmanager
def _cache_errors_as_api_errors() -> Iterator[None]:
    """Redis trouble as API errors; nothing was changed when one is raised."""
    try:
        yield
    except CacheUnavailable as exc:
        raise unavailable(f"{exc}; the halt key was not changed, retry", RETRY_AFTER) from None
    except CacheTypeError as exc:
        raise ApiError(409, "conflict", f"{exc}; nothing was changed") from None


def _text(body: dict, key: str, max_len: int, required: bool) -> str | None:
    value = get_str(body, key, "", max_len=max_len, required=required)
    if value is not None and not _TEXT.fullmatch(value):
        raise invalid(f"{key} must be non-empty printable text without line breaks", key)
    return value


def _event_ref(event: dict[str, Any] | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {"event_id": event.get("event_id"), "event_type": event.get("event_type"),
            "sequence": event.get("sequence")}


def _view(view: HaltView) -> dict[str, Any]:
    if view.halt is not None:
        return {"halted": True, **view.halt.as_dict()}
    if view.unreadable is not None:
        return {"halted": True, "reason": "unknown", "actor": None, "note": None, "when": None,
                "problem": view.unreadable}
    return {"halted": False, "reason": None, "actor": None, "note": None, "when": None}


async def get_halt(request: web.Request) -> web.Response:
    """GET /api/trading/halt: the halt in force, read from Redis now."""
    check_query(request, ())
    with _cache_errors_as_api_errors():
        view = await request.app[DESK].halt.refresh()
    return web.json_response(_view(view))


async def post_halt(request: web.Request) -> web.Response:
    """POST {actor, reason?, note?}: 201 halted now, 200 already halted for that reason."""
    check_query(request, ())
    body = closed_object(await read_json(request), "", required=("actor",),
                         optional=("reason", "note"))
    actor = _text(body, "actor", MAX_ACTOR, required=True)
    reason = get_str(body, "reason", "", max_len=64)
    if reason is None:  # absent or null
        reason = "manual"
    if reason not in HALT_REASONS:
        raise invalid(f"reason must be one of {', '.join(HALT_REASONS)}, got {reason[:40]!r}", "reason")
    note = _text(body, "note", MAX_NOTE, required=False)
    desk = request.app[DESK]
    try:
        with _cache_errors_as_api_errors():
            halt, created, event = await desk.halt.halt(reason, actor, note)
    except HaltConflict as exc:
        raise ApiError(409, "conflict", str(exc), "reason") from None
    recorded = event is not None or not created or desk.halt.audit is None
    if not recorded:
        desk.metrics.audit_failures.labels("TRADING_HALTED").inc()
    # Without Redis the key lives in this sidecar's memory, where no trading engine sees it.
    answer = {"halted": True, **halt.as_dict(), "audit_event": _event_ref(event),
              "audit_recorded": recorded, "store": "redis" if desk.client.is_redis else "memory"}
    return web.json_response(answer, status=201 if created else 200)


async def delete_halt(request: web.Request) -> web.Response:
    """DELETE {actor, note?}: 200 with the halt lifted (null when trading was not halted)."""
    check_query(request, ())
    body = closed_object(await read_json(request), "", required=("actor",), optional=("note",))
    actor = _text(body, "actor", MAX_ACTOR, required=True)
    note = _text(body, "note", MAX_NOTE, required=False)
    desk = request.app[DESK]
    try:
        with _cache_errors_as_api_errors():
            previous, event = await desk.halt.resume(actor, note)
    except AuditError as exc:
        desk.metrics.audit_failures.labels("TRADING_RESUMED").inc()
        raise unavailable(f"TRADING_RESUMED could not be recorded ({exc}); trading stays halted",
                          RETRY_AFTER) from None
    resumed: Halt | None = previous
    return web.json_response({
        "halted": False,
        "resumed": resumed.as_dict() if resumed is not None else None,
        "audit_event": _event_ref(event),
    })


async def get_reconciliation(request: web.Request) -> web.Response:
    """GET /api/desk/reconciliation: the last completed reconciliation report."""
    check_query(request, ())
    reconciler = request.app[DESK].reconciler
    if reconciler is None:
        settings = request.app[SETTINGS]
        why = ("shard 0 runs it" if settings.shard_index != 0
               else "no audit trail is configured")
        raise ApiError(404, "not_running", f"reconciliation does not run on this sidecar: {why}")
    report = reconciler.report
    if report is None:
        detail = reconciler.last_problem or "the first run has not completed yet"
        raise unavailable(f"no reconciliation report yet: {detail}", RETRY_AFTER)
    answer = {k: v for k, v in report.items() if k != "checked_at_ts"}
    answer["fresh"] = reconciler.last_problem is None
    answer["last_problem"] = reconciler.last_problem
    return web.json_response(answer)


_PRINTABLE = {"type": "string", "minLength": 1, "pattern": f"^{_TEXT.pattern}$"}
_NOTE = {**_PRINTABLE, "type": ["string", "null"], "maxLength": MAX_NOTE,
         "description": "printable text without line breaks; null means none"}
_HALT_SCHEMA = {
    "type": "object",
    "required": ["actor"],
    "additionalProperties": False,
    "properties": {
        "actor": {**_PRINTABLE, "maxLength": MAX_ACTOR,
                  "description": "who halts trading: printable text without line breaks"},
        "reason": {"type": ["string", "null"], "enum": [*HALT_REASONS, None], "default": "manual"},
        "note": _NOTE,
    },
}
_RESUME_SCHEMA = {
    "type": "object",
    "required": ["actor"],
    "additionalProperties": False,
    "properties": {
        "actor": {**_PRINTABLE, "maxLength": MAX_ACTOR,
                  "description": "who resumes trading: printable text without line breaks"},
        "note": _NOTE,
    },
}
# Answers. A halt key written by someone else is read back as it is, so its texts are
# described loosely; `when` is an ISO-8601 time with an offset.
_STRING_OR_NULL = {"type": ["string", "null"]}
_HALT = closed(reason={"type": "string", "enum": list(HALT_REASONS)}, actor={"type": "string"},
               note=_STRING_OR_NULL, when={"type": "string"})
_EVENT_REF = {"oneOf": [
    closed(event_id={"type": "string"}, event_type={"type": "string"},
           sequence={"type": ["integer", "null"], "minimum": 1}),
    {"type": "null"},
], "description": "the audit event recorded (sequence null while it waits in the spool)"}
_HALT_VIEW = {"oneOf": [
    closed(halted={"const": False}, reason={"type": "null"}, actor={"type": "null"},
           note={"type": "null"}, when={"type": "null"}),
    closed(halted={"const": True}, reason={"type": "string", "enum": list(HALT_REASONS)},
           actor={"type": "string"}, note=_STRING_OR_NULL, when={"type": "string"}),
    closed(halted={"const": True}, reason={"const": "unknown"}, actor={"type": "null"},
           note={"type": "null"}, when={"type": "null"}, problem={"type": "string"}),
]}
_REDIS_TROUBLE = {
    "409": refusal("the halt key holds another Redis type; nothing was changed"),
    "503": refusal("Redis is unreachable (Retry-After); the halt key was not changed"),
}
_GET_HALT_RESPONSES = {
    "200": reply(_HALT_VIEW, "not halted (nulls), halted, or halted with an unreadable key "
                 "(`problem` says what is wrong; treat it as halted)"),
    **_REDIS_TROUBLE,
}
_HALTED = closed(halted={"const": True}, **_HALT["properties"], audit_event=_EVENT_REF,
                 audit_recorded={"type": "boolean"}, store={"type": "string", "enum": ["redis", "memory"]})
_POST_HALT_RESPONSES = {
    "200": reply(_HALTED, "already halted for that reason: the halt in force, nothing recorded"),
    "201": reply(_HALTED, "halted now; `store` memory means no trading engine can see the key"),
    "409": refusal("already halted for another reason, or the halt key holds another Redis "
                   "type; nothing was changed"),
    "503": _REDIS_TROUBLE["503"],
}
_DELETE_HALT_RESPONSES = {
    "200": reply(closed(halted={"const": False}, resumed={"oneOf": [_HALT, {"type": "null"}]},
                        audit_event=_EVENT_REF),
                 "trading resumed: the halt lifted (null when trading was not halted)"),
    "409": _REDIS_TROUBLE["409"],
    "503": refusal("Redis is unreachable, or TRADING_RESUMED could not be recorded "
                   "(Retry-After); trading stays halted"),
}
_SYMBOL = {"type": "string", "pattern": f"^{SYMBOL_RE.pattern}$"}
_TIME = {"type": "string", "format": "date-time"}
_RECONCILIATION = closed(
    checked_at=_TIME,
    through_sequence={"type": "integer", "minimum": 0},
    positions={"type": "array", "items": closed(
        symbol=_SYMBOL, audit_quantity={"type": "number"}, redis_quantity={"type": "number"},
        mismatch={"type": "boolean"}, audit_position_ids={"type": "array", "items": {"type": "string"}},
        redis_position_id=_STRING_OR_NULL, problem=_STRING_OR_NULL)},
    mismatches={"type": "integer", "minimum": 0},
    orphan_trades={"type": "array", "items": closed(
        trade_id={"type": "string"}, signal_id=_STRING_OR_NULL, symbol=_STRING_OR_NULL,
        executed_at=_TIME, sequence={"type": "integer", "minimum": 1})},
    stale_positions={"type": "array", "items": closed(
        position_id={"type": "string"}, symbol={"type": "string"}, source={"enum": ["audit", "redis"]},
        opened_at=_TIME, age_seconds={"type": "number", "minimum": 0})},
    issues={"type": "array", "items": closed(
        sequence={"type": ["integer", "null"]}, event_type=_STRING_OR_NULL, problem={"type": "string"})},
    windows=closed(orphan_window_seconds={"type": "number"},
                   stale_position_after_seconds={"type": "number"}),
    fresh={"type": "boolean"},
    last_problem=_STRING_OR_NULL,
)
_RECONCILIATION_RESPONSES = {
    "200": reply(_RECONCILIATION, "the last completed reconciliation; `fresh` false and "
                 "`last_problem` say when the newest run was skipped or failed"),
    "404": refusal("`not_running`: reconciliation runs on shard 0 with an audit trail"),
    "503": refusal("no reconciliation has completed yet (Retry-After)"),
}
