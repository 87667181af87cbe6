"""Running the demo: simulated services, the engine, and either an embedded sidecar or the
library wired to an external one."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web
from loguru import logger

from ..audit.logger import AuditLogger
from ..cache.client import RedisClient
from ..cache.signals import SignalCache
from ..cache.trading_metrics import MetricsCache
from ..latency.library import LatencyLibrary
from ..latency.performance import PerformanceLogger
from .config import demo_config_text, desk_section
from .engine import DEFAULT_SYMBOLS, DemoEngine, EngineParts
from .incidents import DEFAULT_CYCLE, PHANTOM_SYMBOL, Incidents
from .services import DEFAULT_SLOW_DELAY, ServiceSpec, SimulatedServices, default_specs

ENGINE_SERVICE_NAME = "trading-engine"
STOP_GRACE = 10.0  # seconds for a clean stop, as `serve`
# Files the embedded sidecar keeps: in the demo's own directory, removed at exit, unless
# set explicitly or the audit trail is a real one (POSTGRES_URL: its spool may hold
# acknowledged events, so it goes where `serve` would put it).
_STATE_PATHS = {"AUDIT_SQLITE_PATH": ("audit_sqlite_path", "audit.sqlite3"),
                "AUDIT_SPOOL_DIR": ("audit_spool_dir", "spool"),
                "AUDIT_CHECKPOINT_DIR": ("audit_checkpoint_dir", "checkpoints")}


class DemoError(Exception):
    """The demo cannot start as asked; the message names the setting or flag."""


class PortError(DemoError):
    """An address the demo cannot listen on; `flag` is the option that sets it, named by the
    caller when it was given (a default the user never chose is not the user's flag)."""

    def __init__(self, flag: str, message: str) -> None:
        self.flag = flag
        super().__init__(message)


@dataclass(frozen=True)
class DemoOptions:
    """What `usdcop-exporter demo` was asked to run."""

    specs: tuple[ServiceSpec, ...] = tuple(default_specs())
    host: str = "127.0.0.1"
    slow_delay: float = DEFAULT_SLOW_DELAY
    tick: float = 2.0
    probe_interval: float = 5.0
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    seed: int | None = None
    embedded: bool = True
    incident_cycle: float | None = DEFAULT_CYCLE  # None: no scripted desk incidents


def _engine_settings(settings, environ: Mapping[str, str]):
    if "EXPORTER_SERVICE_NAME" not in environ:
        settings = dataclasses.replace(settings, service_name=ENGINE_SERVICE_NAME)
    return settings


# -- the engine's parts --------------------------------------------------------------------


def app_parts(app: web.Application, service_name: str = ENGINE_SERVICE_NAME) -> EngineParts:
    """The engine's parts taken from an in-process sidecar: its caches, latency monitor and
    audit logger, so everything lands in the sidecar without a network hop."""
    from ..api.cache import CACHE
    from ..api.latency import LATENCY_METRICS, MONITOR

    cache, monitor = app[CACHE], app[MONITOR]
    performance = PerformanceLogger(service_name, metrics=app[LATENCY_METRICS], guard=monitor.guard)
    return EngineParts(cache.signals, cache.trading, monitor, performance, _app_audit(app))


def _mirror_now(app: web.Application):
    """A step that makes the sidecar's mirror find the engine's symbols and custom metrics
    at once, not at its next scan (every 30 s or more); the next refresh reads them."""
    from ..api.cache import CACHE

    return app[CACHE].mirror.discover


def _after_tick(first: Callable[[], Awaitable[Any]] | None,
                every: Callable[[], Awaitable[Any]] | None) -> Callable[[], Awaitable[None]]:
    """`first` after the first round that went through, `every` after each."""
    pending = [first] if first is not None else []

    async def step() -> None:
        while pending:
            await pending.pop()()
        if every is not None:
            await every()
    return step


def _app_audit(app: web.Application) -> AuditLogger | None:
    try:
        from ..api.audit import AUDIT
    except ModuleNotFoundError:  # a build without the audit feature
        return None
    service = app.get(AUDIT)
    return service.logger if service is not None else None


def check_external(settings) -> None:
    """What an external sidecar needs: one to forward to, and a Redis it reads."""
    if not settings.exporter_url:
        raise DemoError("EXPORTER_URL: required with an external sidecar (the one the engine "
                        "forwards latency records to), e.g. http://127.0.0.1:9322")
    if not settings.redis_url:
        raise DemoError("REDIS_URL: required with an external sidecar, so it can read the "
                        "engine's signals, positions and metrics (or set REDIS_HOST)")


@contextlib.asynccontextmanager
async def library_parts(settings, environ: Mapping[str, str] | None = None
                        ) -> AsyncIterator[EngineParts]:
    """The engine's parts built as a trading engine builds them: the cache on REDIS_URL,
    latency forwarded to EXPORTER_URL (when set), audit straight to Postgres (when
    POSTGRES_URL is set; none otherwise)."""
    env = os.environ if environ is None else environ
    settings = _engine_settings(settings, env)
    client = RedisClient(namespace=settings.redis_namespace, url=settings.redis_url)
    kit = LatencyLibrary.from_settings(settings)
    audit = None
    if settings.postgres_url:
        audit = AuditLogger.from_settings(settings)
    else:
        logger.warning("demo: POSTGRES_URL is not set, so the engine writes no audit events "
                       "(the sidecar's embedded SQLite store is its own)")
    try:
        if audit is not None:
            await audit.start()
        yield EngineParts(SignalCache(client, settings.signal_history_max), MetricsCache(client),
                          kit.monitor, kit.performance, audit)
    finally:
        try:
            if audit is not None:
                await audit.close()
        finally:
            await asyncio.to_thread(kit.close)
            await client.close()


# -- the embedded sidecar ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def embedded_sidecar(settings) -> AsyncIterator[tuple[web.Application, str]]:
    """Run the sidecar in this process on `settings`; yields the app and its base URL."""
    from ..app import create_app

    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.listen_host, settings.listen_port,
                           reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise PortError("--listen", f"cannot listen on {settings.listen}: "
                            f"{exc.strerror or exc}") from None
        sockets = site._server.sockets if site._server else []  # the real port, also for :0
        host, port = sockets[0].getsockname()[:2]
        host = "127.0.0.1" if host == "0.0.0.0" else host
        shown = f"[{host}]" if ":" in host else host
        yield app, f"http://{shown}:{port}"
    finally:
        await runner.cleanup()


def _sidecar_settings(settings, config: Path, workdir: Path, environ: Mapping[str, str]):
    changes: dict[str, Any] = {"config": str(config)}
    if not settings.postgres_url:
        for variable, (field, name) in _STATE_PATHS.items():
            if not environ.get(variable):
                changes[field] = str(workdir / name)
    return dataclasses.replace(settings, **changes)


# -- the whole demo ------------------------------------------------------------------------


_BEHAVIOUR = {
    "healthy": "healthy",
    "slow": "slow: answers after {delay:g} s, so degraded",
    "flaky": "flaky: fails 2 answers in 6",
    "down": "down: connections refused",
    "stream": "stream: WebSocket ticks every 250 ms, answers pings",
}


def banner(services: SimulatedServices, options: DemoOptions, sidecar_url: str | None,
           settings) -> str:
    """What the demo prints once everything runs: where to look."""
    lines = ["usdcop-exporter demo is running; Ctrl-C (SIGINT) or SIGTERM stops it.", ""]
    if sidecar_url:
        lines += [f"  sidecar       {sidecar_url}/metrics",
                  f"                {sidecar_url}/api/health/services",
                  f"                {sidecar_url}/api/cache/signals?type=latest",
                  f"                {sidecar_url}/api/health/latency?type=high&threshold=10",
                  f"                {sidecar_url}/api/audit/signals?limit=10"]
    else:
        lines.append(f"  sidecar       {settings.exporter_url} (external)")
    for spec in services.specs:
        kind = _BEHAVIOUR[spec.kind].format(delay=services.slow_delay)
        lines.append(f"  {spec.name:<13} {services.url(spec.name):<34} {kind}")
    where = (f"Redis {settings.redis_namespace}:*" if settings.redis_url
             else "the sidecar's in-memory cache")
    lines += ["", f"  engine        {', '.join(options.symbols)} every {options.tick:g} s, "
                  f"state in {where}"]
    if options.incident_cycle is not None:
        cycle = options.incident_cycle
        lines.append(f"  incidents     every {cycle / 60:g} min: trading halted at "
                     f"{cycle / 15:g} s for {cycle / 5:g} s, then a {PHANTOM_SYMBOL} position "
                     f"missing from the audit trail for {cycle * 7 / 15:g} s")
    if sidecar_url:
        lines += ["", "  Scrape it with Prometheus (job usdcop-exporter) to see the dashboards, "
                      "or run the compose stack: docker-compose --profile demo up -d"]
    return "\n".join(lines) + "\n"


async def run_demo(options: DemoOptions, settings, stop: asyncio.Event,
                   out: TextIO | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Run services, sidecar (embedded) and engine until `stop` is set; raises DemoError
    (nothing left running) when something cannot start."""
    env = os.environ if environ is None else environ
    out = out or sys.stdout
    services = SimulatedServices(list(options.specs), options.host, options.slow_delay)
    try:
        await services.start()
    except OSError as exc:
        raise PortError("--ports", f"{exc.strerror or exc}") from None
    workdir = Path(tempfile.mkdtemp(prefix="usdcop-demo-"))
    try:
        async with contextlib.AsyncExitStack() as stack:
            sidecar_url, first = None, None
            if options.embedded:
                config = workdir / "services.yaml"
                config.write_text(demo_config_text(
                    services, interval=options.probe_interval, environ=env,
                    desk=desk_section(options.symbols,
                                      max(options.tick, settings.mirror_interval))))
                sidecar = _sidecar_settings(settings, config, workdir, env)
                app, sidecar_url = await stack.enter_async_context(embedded_sidecar(sidecar))
                parts = app_parts(app, _engine_settings(settings, env).service_name)
                first = _mirror_now(app)
                logger.info("listening on {}", sidecar_url)
            else:
                check_external(settings)
                parts = await stack.enter_async_context(library_parts(settings, env))
            engine = DemoEngine(parts, symbols=options.symbols, seed=options.seed)
            incidents = None
            if options.incident_cycle is not None:
                incidents = await stack.enter_async_context(Incidents(
                    engine, sidecar_url or settings.exporter_url, settings.api_token,
                    options.incident_cycle))
            out.write(banner(services, options, sidecar_url, settings))
            out.flush()
            await engine.run(options.tick, stop,
                             _after_tick(first, incidents.step if incidents else None))
            logger.info("demo stopping after {} ticks", engine.ticks)
    finally:
        await services.close()
        shutil.rmtree(workdir, ignore_errors=True)
