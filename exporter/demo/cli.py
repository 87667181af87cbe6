"""`usdcop-exporter demo`: simulated services, a simulated trading engine and a sidecar."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys

from loguru import logger

from ..config.services import valid_host
from ..log import configure_logging
from ..settings import SettingsError, load_settings
from ..units import UnitError, parse_duration
from .incidents import DEFAULT_CYCLE
from .runner import STOP_GRACE, DemoError, DemoOptions, PortError, run_demo
from .services import DEFAULT_LAYOUT, DEFAULT_SLOW_DELAY, default_specs

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
_SYMBOL = re.compile(r"[A-Z0-9]{3,12}")
_DESCRIPTION = """\
Run a self-contained demonstration on loopback: four simulated services (trading-api
healthy, ml-analytics slow, pipeline-api flaky, websocket a WebSocket stream of ticks),
a simulated trading engine writing signals, positions, financial and custom metrics, latency records and
audit events through the library, and a sidecar probing and exporting all of it.
Every 15 minutes the demo's risk desk halts trading for 3 minutes (the engine stops
sending orders), then leaves a USDBRL position in Redis that the audit trail never
recorded for 7 minutes (a position mismatch and a risk-limit breach). It prints the
URLs, runs until SIGINT or SIGTERM, and leaves nothing behind.

Settings come from the environment as for `serve` (REDIS_URL, POSTGRES_URL, ...):
without them the embedded sidecar uses its in-memory cache and a temporary SQLite
audit store. With --sidecar external no sidecar is started: the engine writes to
Redis (REDIS_URL) and Postgres (POSTGRES_URL) and forwards latency records to the
sidecar at EXPORTER_URL, as a real trading engine does (the compose demo profile runs
this, with DEMO_SIDECAR=external and DEMO_HOST=0.0.0.0).
"""
SIDECAR_MODES = ("embedded", "external")
DEFAULT_LISTEN = "127.0.0.1:9322"  # the embedded sidecar: loopback, the port Prometheus expects


def _seconds(text: str) -> float:
    """A duration: plain seconds (2, 0.5) or with a unit (250ms, 2s, 1m)."""
    try:
        value = float(text) if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text) else parse_duration(text)
    except UnitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0.05 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 50ms and 1h, got {text!r}")
    return value


def _ports(text: str) -> tuple[int, int, int, int]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != len(DEFAULT_LAYOUT) or not all(p.isdigit() and len(p) <= 5 for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected {len(DEFAULT_LAYOUT)} port numbers for "
            f"{', '.join(n for n, _, _ in DEFAULT_LAYOUT)}, e.g. 8001,8002,8000,8080 "
            f"(0 picks a free port), got {text!r}")
    ports = tuple(int(p) for p in parts)
    if any(p > 65535 for p in ports):
        raise argparse.ArgumentTypeError(f"ports are 0 to 65535, got {text!r}")
    if len({p for p in ports if p}) != len([p for p in ports if p]):
        raise argparse.ArgumentTypeError(f"each service needs its own port, got {text!r}")
    return ports  # type: ignore[return-value]


def _symbols(text: str) -> tuple[str, ...]:
    symbols = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [s for s in symbols if not _SYMBOL.fullmatch(s)]
    if not symbols or bad or len(symbols) > 10:
        raise argparse.ArgumentTypeError(
            f"expected 1 to 10 symbols of 3 to 12 characters A-Z 0-9, got {text!r}")
    return symbols


def _seed(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,18}", text):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `demo` sub-command to the CLI's sub-parsers."""
    demo = subparsers.add_parser(
        "demo", help="run simulated services, a simulated trading engine and a sidecar",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--listen",
                      help=f"HOST:PORT of the embedded sidecar (default {DEFAULT_LISTEN}; "
                      "port 0 picks a free one)")
    demo.add_argument("--host", help="address the simulated services listen on "
                      "(DEMO_HOST, default 127.0.0.1)")
    demo.add_argument("--ports", type=_ports, default=None,
                      help="ports of trading-api, ml-analytics, pipeline-api, websocket "
                      "(default 8001,8002,8000,8080, as the shipped services.yaml)")
    demo.add_argument("--tick", type=_seconds, default=2.0,
                      help="time between two engine rounds (default 2s)")
    demo.add_argument("--probe-interval", type=_seconds, default=5.0,
                      help="probe interval of the embedded sidecar (default 5s)")
    demo.add_argument("--slow-delay", type=_seconds, default=DEFAULT_SLOW_DELAY,
                      help=f"how long the slow service takes to answer (default "
                      f"{DEFAULT_SLOW_DELAY:g}s: slower than the 2s degraded_latency the shipped "
                      "services.yaml gives ml-analytics)")
    demo.add_argument("--symbols", type=_symbols, default=None,
                      help="symbols the engine trades (default USDCOP,EURCOP)")
    demo.add_argument("--incident-cycle", type=_seconds, default=DEFAULT_CYCLE,
                      help="how often the scripted desk incidents repeat (default 15m): a "
                      "trading halt, then a position missing from the audit trail")
    demo.add_argument("--no-incidents", action="store_true",
                      help="no scripted desk incidents")
    demo.add_argument("--seed", type=_seed, default=None,
                      help="random seed, for a repeatable run")
    demo.add_argument("--sidecar", help="embedded: run a sidecar in this process; external: "
                      "start none, write to Redis/Postgres and forward to EXPORTER_URL "
                      "(DEMO_SIDECAR, default embedded)")
    demo.add_argument("--log-level", help="debug, info, warn, error, fatal (LOG_LEVEL)")
    demo.add_argument("--log-format", help="json or text (LOG_FORMAT)")
    demo.set_defaults(func=cmd_demo)
    return demo


def _fail(code: int, message: str) -> int:
    print(f"usdcop-exporter demo: {message}", file=sys.stderr)
    return code


def _choice(flag_value: str | None, flag: str, variable: str, default: str) -> tuple[str, str]:
    """(value, the name to blame): the flag, else the variable, else the default."""
    if flag_value is not None:
        return flag_value, flag
    value = os.environ.get(variable)
    return (value, variable) if value else (default, flag)


def _options(args: argparse.Namespace) -> DemoOptions:
    mode, name = _choice(args.sidecar, "--sidecar", "DEMO_SIDECAR", "embedded")
    if mode not in SIDECAR_MODES:
        raise SettingsError(name, f"expected embedded or external, got {mode[:40]!r}")
    host, name = _choice(args.host, "--host", "DEMO_HOST", "127.0.0.1")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not valid_host(bare):
        raise SettingsError(name, f"invalid address {host[:64]!r}: e.g. 127.0.0.1, 0.0.0.0 or ::1")
    return DemoOptions(
        specs=tuple(default_specs(args.ports)), host=bare, slow_delay=args.slow_delay,
        tick=args.tick, probe_interval=args.probe_interval,
        symbols=args.symbols or DemoOptions.symbols, seed=args.seed,
        embedded=mode == "embedded",
        incident_cycle=None if args.no_incidents else args.incident_cycle)


def cmd_demo(args: argparse.Namespace) -> int:
    """demo: run until SIGINT/SIGTERM; 0 after a clean stop, 2 when it cannot start."""
    try:
        settings = load_settings(listen=args.listen or DEFAULT_LISTEN, log_level=args.log_level,
                                 log_format=args.log_format)
        options = _options(args)
    except (SettingsError, ValueError) as exc:
        return _fail(EXIT_USAGE, str(exc))
    configure_logging(settings.log_level, settings.log_format)
    given = {flag for flag, value in (("--listen", args.listen), ("--ports", args.ports))
             if value is not None}
    return asyncio.run(_main(options, settings, given))


def _blame(exc: PortError, given: set[str]) -> str:
    """The message for an address the demo cannot take: the flag when it was given, else
    the default's name and the flag that changes it."""
    if exc.flag in given:
        return f"{exc.flag}: {exc}"
    other = {"--listen": "--listen HOST:PORT", "--ports": "--ports A,B,C,D"}[exc.flag]
    return f"{exc} (the default; choose another with {other}, port 0 picks a free one)"


async def _main(options: DemoOptions, settings, given: set[str]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(run_demo(options, settings, stop))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        logger.info("stopping")
        try:
            await asyncio.wait_for(task, STOP_GRACE)
        except TimeoutError:
            logger.error("clean stop took longer than {} s", STOP_GRACE)
            return EXIT_FAIL
    stopping.cancel()
    try:
        task.result()
    except PortError as exc:
        return _fail(EXIT_USAGE, _blame(exc, given))
    except DemoError as exc:
        return _fail(EXIT_USAGE, str(exc))
    logger.info("stopped")
    return EXIT_OK
