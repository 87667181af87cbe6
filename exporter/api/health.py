"""The health feature: the service collector, the probe scheduler, health routes, reload."""

from __future__ import annotations

from aiohttp import web
from loguru import logger

from ..config.errors import ConfigError
from ..health.checker import NotInShard, NotPush, UnknownService
from ..health.collector import ServiceCollector
from ..health.probes.push import PUSH_STATUSES
from ..loops import running_loop_name
from .errors import ApiError, invalid, not_found
from .keys import CHECKER, CORE_METRICS, READY, REGISTRY, RELOADER, SETTINGS
from .routes import Route
from .validation import check_query, closed_object, get_number, get_str, read_json

MAX_MESSAGE = 500  # characters of a push report's message
MAX_LATENCY_MS = 86_400_000.0

_PUSH_SCHEMA = {
    "type": "object", "required": ["service"], "additionalProperties": False,
    "properties": {
        "service": {"type": "string", "minLength": 1, "maxLength": 64},
        "status": {"type": "string", "enum": list(PUSH_STATUSES)},
        "latency_ms": {"type": "number", "minimum": 0, "maximum": MAX_LATENCY_MS},
        "message": {"type": "string", "maxLength": MAX_MESSAGE},
    },
}

def setup(app: web.Application) -> list[Route]:
    """Export the checker's services, probe them while the app runs, return the routes."""
    app[REGISTRY].register(ServiceCollector(app[CHECKER]))
    app[READY]["health"] = False
    app.cleanup_ctx.append(_checker_ctx)
    # Probing stops before any cleanup context closes, so no probe result reaches a
    # listener (audit, Redis health writer) whose component is already closed.
    app.on_shutdown.append(_stop_probing)
    return [
        Route("GET", "/api/health/services", get_services, "read",
              "Health of every service of this shard, from the last probes"),
        Route("POST", "/api/health/services", post_services, "write",
              "Probe one registered service now (joins a probe in flight)",
              spec={"requestBody": {"service": {"type": "string"}}}),
        Route("POST", "/api/health/push", post_push, "write",
              "A push service reports in; the report counts as its probe result",
              spec={"requestBody": _PUSH_SCHEMA}),
        Route("POST", "/-/reload", post_reload, "write", "Reload services.yaml"),
    ]


async def _checker_ctx(app: web.Application):
    settings = app[SETTINGS]
    checker = app[CHECKER]
    app[CORE_METRICS].record_build(running_loop_name())
    if settings.scheduler:
        await checker.start_monitoring(lag_observer=app[CORE_METRICS].schedule_lag.observe)
        app[CORE_METRICS].scheduler_enabled.set(1)
    else:
        logger.info("scheduler off: probing only when asked (/probe, POST /api/health/services)")
    app[READY]["health"] = True
    try:
        yield
    finally:
        app[READY]["health"] = False
        app[CORE_METRICS].scheduler_enabled.set(0)
        await checker.stop_monitoring()


async def _stop_probing(app: web.Application) -> None:
    await app[CHECKER].stop_monitoring()


async def get_services(request: web.Request) -> web.Response:
    """GET /api/health/services."""
    check_query(request, ())
    return web.json_response(request.app[CHECKER].overview())


async def post_services(request: web.Request) -> web.Response:
    """POST /api/health/services {"service": NAME}."""
    body = closed_object(await read_json(request), "", required=("service",))
    name = get_str(body, "service", "", max_len=64, required=True)
    checker = request.app[CHECKER]
    try:
        checker.state_of(name)
    except NotInShard:
        raise not_found(f"service {name!r} belongs to another shard", "service", "not_in_shard") from None
    except UnknownService:
        raise not_found(f"no service named {name!r} is registered", "service") from None
    try:
        health = await checker.check_service(name)
    except UnknownService:  # removed by a reload while its probe ran
        raise not_found(f"service {name!r} was removed by a reload", "service") from None
    return web.json_response(health)


async def post_push(request: web.Request) -> web.Response:
    """POST /api/health/push {"service": NAME, "status": ..., "latency_ms": N, "message": ...}."""
    body = closed_object(await read_json(request), "", required=("service",),
                         optional=("status", "latency_ms", "message"))
    name = get_str(body, "service", "", max_len=64, required=True)
    status = get_str(body, "status", "") or "healthy"
    if status not in PUSH_STATUSES:
        raise invalid(f"status must be one of {', '.join(PUSH_STATUSES)}", "status")
    latency = get_number(body, "latency_ms", "", lo=0.0, hi=MAX_LATENCY_MS)
    message = get_str(body, "message", "", max_len=MAX_MESSAGE)
    checker = request.app[CHECKER]
    try:
        health = checker.report_push(name, status, latency, message)
    except NotInShard:
        raise not_found(f"service {name!r} belongs to another shard", "service", "not_in_shard") from None
    except NotPush:
        raise not_found(f"service {name!r} is not of type push", "service") from None
    except UnknownService:
        raise not_found(f"no service named {name!r} is registered", "service") from None
    return web.json_response(health)


async def post_reload(request: web.Request) -> web.Response:
    """POST /-/reload."""
    try:
        answer = await request.app[RELOADER].reload()
    except ConfigError as exc:
        raise ApiError(400, "invalid_config", str(exc), exc.field) from None
    return web.json_response(answer)
