"""The health feature: services.yaml, the checker and its scheduler, health routes, reload."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from loguru import logger

from ..config.errors import ConfigError
from ..config.loader import diff_configs, import_checks, load_config
from ..config.model import Config
from ..health.checker import HealthChecker, NotInShard, NotPush
from ..health.collector import ServiceCollector
from ..health.probes.http_client import create_session
from ..health.probes.push import PUSH_STATUSES
from ..health.registry import ServiceRegistry
from ..loops import running_loop_name
from ..metrics import CoreMetrics
from .errors import ApiError, invalid, not_found
from .httpmetrics import METRICS
from .keys import READY, REGISTRY, SETTINGS
from .routes import Route
from .validation import closed_object, get_number, get_str, read_json

CHECKER = web.AppKey("checker", HealthChecker)
CONFIG_LISTENERS: web.AppKey[list] = web.AppKey("config_listeners", list)
RELOAD_LOCK = web.AppKey("reload_lock", asyncio.Lock)

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

ConfigListener = Callable[[str, list[str], list[str], list[str]], Awaitable[None]]


def setup(app: web.Application) -> list[Route]:
    """Load services.yaml (ConfigError propagates), build the checker, return the routes."""
    settings = app[SETTINGS]
    metrics = CoreMetrics(app[REGISTRY])
    app[METRICS] = metrics
    config = _load(settings.config)
    metrics.reload_ok.set(1)
    metrics.reload_ts.set(time.time())
    checker = HealthChecker(
        ServiceRegistry(config), shard=(settings.shard_index, settings.shard_count)
    )
    app[CHECKER] = checker
    app[CONFIG_LISTENERS] = []
    app[RELOAD_LOCK] = asyncio.Lock()
    app[REGISTRY].register(ServiceCollector(checker))
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


def _load(path: str) -> Config:
    """Load the services file and import its python checks (ConfigError for either)."""
    config = load_config(path)
    import_checks(config)
    return config


async def _checker_ctx(app: web.Application):
    settings = app[SETTINGS]
    checker = app[CHECKER]
    app[METRICS].record_build(running_loop_name())
    session = create_session()  # fresh connection per probe, phases timed, TLS expiry kept
    checker.http = session
    if settings.scheduler:
        await checker.start_monitoring(lag_observer=app[METRICS].schedule_lag.observe)
        app[METRICS].scheduler_enabled.set(1)
    else:
        logger.info("scheduler off: probing only when asked (/probe, POST /api/health/services)")
    app[READY]["health"] = True
    try:
        yield
    finally:
        app[READY]["health"] = False
        app[METRICS].scheduler_enabled.set(0)
        await checker.stop_monitoring()
        await session.close()


async def _stop_probing(app: web.Application) -> None:
    await app[CHECKER].stop_monitoring()


async def reload_config(app: web.Application) -> dict:
    """Parse and validate the services file, then swap it in; ConfigError keeps the old one."""
    metrics = app[METRICS]
    checker = app[CHECKER]
    path = app[SETTINGS].config
    async with app[RELOAD_LOCK]:
        try:
            config = await asyncio.to_thread(_load, path)
        except ConfigError as exc:
            metrics.reload_ok.set(0)
            logger.error("reload of {} failed, keeping the running configuration: {}", path, exc)
            raise
        old = checker.registry.config
        added, removed, changed = diff_configs(old, config) if old else ([], [], [])
        checker.registry.replace(config)
        checker.sync()
        metrics.reload_ok.set(1)
        metrics.reload_ts.set(time.time())
        logger.info(
            "reloaded {}: {} services ({} added, {} removed, {} changed)",
            path, len(config.services), len(added), len(removed), len(changed),
        )
        for listener in app[CONFIG_LISTENERS]:
            try:
                await listener(config.digest or "", added, removed, changed)
            except Exception:
                logger.exception("config-change listener failed")
        return {"status": "reloaded", "services": len(config.services), "added": added,
                "removed": removed, "changed": changed, "digest": config.digest}


async def get_services(request: web.Request) -> web.Response:
    """GET /api/health/services."""
    from .validation import check_query

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
    except KeyError:
        raise not_found(f"no service named {name!r} is registered", "service") from None
    try:
        health = await checker.check_service(name)
    except KeyError:  # removed by a reload while its probe ran
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
    except KeyError:
        raise not_found(f"no service named {name!r} is registered", "service") from None
    return web.json_response(health)


async def post_reload(request: web.Request) -> web.Response:
    """POST /-/reload."""
    try:
        answer = await reload_config(request.app)
    except ConfigError as exc:
        raise ApiError(400, "invalid_config", str(exc), exc.field) from None
    return web.json_response(answer)
