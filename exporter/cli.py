"""The `usdcop-exporter` command: serve, check-config, probe (and the sub-commands of features).

The only place that configures logging and the process (signals, exit codes).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web
from loguru import logger

from ._version import __version__
from .config.errors import CheckImportError, ConfigError, ConfigErrors
from .log import LEVELS, configure_logging
from .loops import LOOPS, LoopUnavailable, default_loop, loop_factory
from .settings import SettingsError, load_settings
from .units import plural

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
STOP_GRACE = 10.0  # seconds to stop cleanly after SIGTERM/SIGINT
MAX_DESCRIPTORS = 1 << 20  # the soft open-file limit is raised up to this (and the hard limit)
GC_YOUNG = 10_000  # container allocations between young collections (Python's default: 700)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usdcop-exporter",
        description="Observability sidecar for the USD/COP trading stack: probes services, "
        "exports Prometheus metrics, mirrors Redis trading state, keeps the audit trail.",
    )
    parser.add_argument("--version", action="version", version=f"usdcop-exporter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the sidecar",
                           description="Run the sidecar. Settings come from the environment "
                           "(see docs/configuration.md); flags override them.")
    serve.add_argument("--config", help="services file (EXPORTER_CONFIG, default services.yaml)")
    serve.add_argument("--listen", help="HOST:PORT to listen on; port 0 picks a free one "
                       "(EXPORTER_LISTEN, default 0.0.0.0:9322)")
    serve.add_argument("--web-config", help="exporter-toolkit web configuration file: TLS, "
                       "basic auth (EXPORTER_WEB_CONFIG)")
    serve.add_argument("--shard", help="i/N: probe only the services hashing to shard i of N "
                       "(EXPORTER_SHARD, default 0/1)")
    serve.add_argument("--checkpoint-dir", metavar="DIR",
                       help="audit checkpoints outside the database (AUDIT_CHECKPOINT_DIR, "
                       "default ./usdcop-checkpoints)")
    serve.add_argument("--max-connections", help="connections served at once; more are "
                       "answered 429 except health and scrape requests "
                       "(EXPORTER_MAX_CONNECTIONS, default 512)")
    serve.add_argument("--max-connections-per-client", help="connections one client address "
                       "(an IPv6 /64) may hold (EXPORTER_MAX_CONNECTIONS_PER_CLIENT, default a "
                       "quarter of --max-connections)")
    serve.add_argument("--no-scheduler", action="store_true",
                       help="probe only when asked (/probe, POST /api/health/services)")
    serve.add_argument("--log-level", help="debug, info, warn, error, fatal (LOG_LEVEL)")
    serve.add_argument("--log-format", help="json or text (LOG_FORMAT; default json unless "
                       "stderr is a terminal)")
    serve.add_argument("--loop", choices=LOOPS, help="event loop: uvloop (the default on "
                       "Linux) or asyncio (Python's own)")
    serve.set_defaults(func=cmd_serve)

    for name, func, summary, description, arguments in (
        ("check-config", cmd_check_config, "validate a services file and exit",
         "Validate a services file without starting anything. Exit 0 when valid, 1 "
         "otherwise, naming every error (up to 20), one a line.",
         (("file", "the services file"),)),
        ("probe", cmd_probe, "probe one service once and print its health",
         "Probe one configured service and print its health as JSON. Exit 0 healthy or "
         "degraded, 1 unhealthy, 2 usage or configuration error.",
         (("name", "the service's name in the services file"),
          ("--config", "services file (EXPORTER_CONFIG, default services.yaml)"))),
    ):
        command = sub.add_parser(name, help=summary, description=description)
        for argument, text in arguments:
            command.add_argument(argument, help=text)
        command.set_defaults(func=func)

    for module in _feature_clis():
        module.add_parser(sub)
    return parser


def _feature_clis() -> list:
    """Sub-commands contributed by features (audit, demo) when present."""
    modules = []
    for name in ("exporter.audit.cli", "exporter.demo.cli"):
        try:
            modules.append(__import__(name, fromlist=["add_parser"]))
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise
    return modules


def _fail(code: int, message: str) -> int:
    print(f"usdcop-exporter: {message}", file=sys.stderr)
    return code


def cmd_check_config(args: argparse.Namespace) -> int:
    """check-config FILE."""
    from .config.loader import import_checks, load_config

    try:
        config = load_config(args.file)
        import_checks(config)  # a python check that cannot be imported is an error here too
    except ConfigErrors as exc:
        for error in exc.errors:
            _fail(EXIT_FAIL, str(error))
        if exc.more:
            _fail(EXIT_FAIL, f"{args.file}: {exc.more} more errors not shown")
        return EXIT_FAIL
    except ConfigError as exc:
        return _fail(EXIT_FAIL, str(exc))
    print(f"{args.file}: ok, {plural(len(config.services), 'service')}")
    return EXIT_OK


def cmd_probe(args: argparse.Namespace) -> int:
    """probe NAME."""
    from dataclasses import replace

    from .config.loader import load_config
    from .health.checker import HealthChecker
    from .health.registry import ServiceRegistry

    # Only the services file matters here: serve's other settings are not read, so a bad
    # EXPORTER_LISTEN in the environment does not stop a one-off probe.
    path = args.config or os.environ.get("EXPORTER_CONFIG") or "services.yaml"
    level = os.environ.get("LOG_LEVEL", "info").lower()
    configure_logging(level if level in LEVELS else "info", "text")
    try:
        config = load_config(path)
    except ConfigError as exc:
        return _fail(EXIT_USAGE, str(exc))
    service = config.service(args.name)
    if service is None:
        names = ", ".join(s.name for s in config.services) or "none"
        return _fail(EXIT_USAGE, f"no service named {args.name!r} in {path}; its services: {names}")
    # One probe decides: flap-control thresholds need a history a one-off probe has not got.
    single = replace(service, failure_threshold=1, success_threshold=1)

    async def run() -> dict:
        checker = HealthChecker(ServiceRegistry(replace(config, services=(single,))))
        return await checker.check_service(args.name)

    with asyncio.Runner(loop_factory=loop_factory(default_loop())) as runner:
        health = runner.run(run())
    print(json.dumps(health, indent=2))
    return EXIT_FAIL if health["status"] == "unhealthy" else EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """serve."""
    try:
        settings = load_settings(
            config=args.config, listen=args.listen, web_config=args.web_config, shard=args.shard,
            scheduler="off" if args.no_scheduler else None, log_level=args.log_level,
            log_format=args.log_format, checkpoint_dir=args.checkpoint_dir,
            max_connections=args.max_connections,
            max_connections_per_client=args.max_connections_per_client,
        )
    except SettingsError as exc:
        return _fail(EXIT_USAGE, str(exc))
    loop_name = args.loop or default_loop()
    try:
        factory = loop_factory(loop_name)
    except LoopUnavailable as exc:
        return _fail(EXIT_USAGE, str(exc))
    configure_logging(settings.log_level, settings.log_format)
    _raise_descriptor_limit()
    from .app import create_app

    try:
        app = create_app(settings)
    except CheckImportError as exc:  # the file is valid; the code it names is missing
        return _fail(EXIT_FAIL, f"configuration error: {exc}")
    except ConfigError as exc:
        return _fail(EXIT_USAGE, f"configuration error: {exc}")
    app.on_startup.append(_settle_gc)  # runs after every cleanup_ctx start-up
    # A loop factory, not a policy, so that nothing outside this call changes.
    logger.info("event loop: {}", loop_name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_serve(app, settings))


def _raise_descriptor_limit() -> None:
    """Lift the soft limit on open files to the hard one (as Go programs do at start).

    Every connection is a descriptor, including the ones over the connection caps that are
    only answered 429; at the common soft limit of 1,024 a flood would make accept() fail
    and stall the listener for everyone.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = MAX_DESCRIPTORS if hard == resource.RLIM_INFINITY else min(hard, MAX_DESCRIPTORS)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the open-file limit from {}: {}", soft, exc)


async def _settle_gc(_app: web.Application) -> None:
    """Keep the cyclic garbage collector from stalling the loop once started.

    A full collection walks every object alive; with a thousand services that took
    ~100 ms, and every probe in flight read that much longer. Everything built during
    start-up (modules, configuration, states) is moved out of its sight (gc.freeze), and
    young collections run every GC_YOUNG allocations instead of 700: each stays a few
    milliseconds, and fewer short-lived objects survive into the old generations.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 10, 10)


async def _serve(app: web.Application, settings) -> int:
    from .api.keys import RELOADER
    from .api.limits import make_site

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    try:
        await runner.setup()
        # Header-read deadline, connection cap, and TLS from the web configuration.
        site = make_site(runner, app, settings.listen_host, settings.listen_port)
        await site.start()
    except (OSError, ConfigError) as exc:
        logger.error("cannot start: {}", exc)
        await runner.cleanup()
        return EXIT_USAGE

    reloads: set[asyncio.Task] = set()  # referenced until done, so none is collected early

    def on_hup() -> None:
        async def reload() -> None:
            try:
                await app[RELOADER].reload()
            except ConfigError:
                pass  # logged by the reloader; the running configuration stays
            except Exception:
                logger.exception("reload failed; the running configuration stays")
        task = loop.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    if settings.api_token is None and settings.admin_token is None:
        logger.warning("no EXPORTER_API_TOKEN or EXPORTER_ADMIN_TOKEN: write routes are open "
                       "to anyone who can reach this port; admin routes are refused")
    bound = runner.addresses  # the real port, also for :0
    host, port = bound[0][:2] if bound else (settings.listen_host, settings.listen_port)
    shown = f"[{host}]" if ":" in host else host
    logger.info("listening on {}://{}:{}", site.name.partition(":")[0], shown, port)
    await stop.wait()
    logger.info("stopping")
    try:
        await asyncio.wait_for(runner.cleanup(), STOP_GRACE)
    except TimeoutError:
        logger.error("clean stop took longer than {} s", STOP_GRACE)
        return EXIT_FAIL
    logger.info("stopped")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`audit export | head`): no traceback, and no second error
        # when Python flushes stdout on the way out.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAIL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
