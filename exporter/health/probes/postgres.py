"""Postgres prober: connect, SELECT 1, close."""

from __future__ import annotations

import math
from time import perf_counter

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ...config.model import ServiceConfig
from ..result import ProbeResult
from .base import ProbeContext
from .guard import TargetGuard, TargetNotAllowed, guard_for

# libpq's words for each failure, matched against the message's text.
_AUTH = ("password authentication failed", "no password supplied", "authentication failed",
         "role \"", "pg_hba.conf")
_DNS = ("failed to resolve host", "could not translate host name", "name or service not known")
_TIMEOUT = ("timeout expired",)
_CONNECT = ("connection refused", "no route to host", "network is unreachable",
            "connection reset", "server closed the connection", "could not connect")


def _short(message: str, secret: str | None) -> str:
    """The first line of a libpq message, from its FATAL part when there is one."""
    line = message.strip().splitlines()[0] if message.strip() else "connection failed"
    if "FATAL:" in line:
        line = line.split("FATAL:", 1)[1].strip()
    elif line.startswith("connection failed: "):
        line = line[len("connection failed: "):]
    if secret:
        line = line.replace(secret, "***")  # libpq does not echo it; be sure anyway
    return line[:200]


def classify(message: str) -> str:
    """The probe reason for a psycopg connection error message."""
    text = message.lower()
    for reason, words in (("other", _AUTH), ("dns", _DNS), ("timeout", _TIMEOUT), ("connect", _CONNECT)):
        if any(word in text for word in words):
            return reason
    return "other"


async def _allowed_hostaddr(guard: TargetGuard, params: dict) -> str:
    """`hostaddr` for libpq: an allowed address per host, so libpq connects to no other."""
    hosts = (params.get("host") or "").split(",")
    given = params.get("hostaddr")
    addrs = given.split(",") if given else [None] * len(hosts)
    ports = (params.get("port") or "5432").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    if len(addrs) != len(hosts) or len(ports) != len(hosts):
        raise TargetNotAllowed("host, hostaddr and port lists differ in length")
    out = []
    for host, addr, port in zip(hosts, addrs, ports, strict=True):
        number = int(port) if port.isdigit() else 5432
        if addr:
            guard.check(host or addr, addr, number)
            out.append(addr)
        else:
            out.append((await guard.resolve(host, number))[0])
    return ",".join(out)


async def probe_postgres(service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
    """Connect to Postgres, run SELECT 1, close."""
    start = perf_counter()
    try:
        params = conninfo_to_dict(service.url or "")
    except psycopg.Error:
        return ProbeResult.failure("other", perf_counter() - start, "invalid postgres URL")
    secret = params.get("password")
    # libpq wants whole seconds and treats 1 as 2; the hard limit is run_probe's anyway.
    timeout = max(2, math.ceil(ctx.timeout))
    extra_params: dict[str, str] = {}
    guard = guard_for(ctx.allowed_targets)
    if guard is not None:
        try:
            extra_params["hostaddr"] = await _allowed_hostaddr(guard, params)
        except TargetNotAllowed as exc:
            return ProbeResult.failure("other", perf_counter() - start, str(exc))
        except OSError as exc:
            return ProbeResult.failure("dns", perf_counter() - start,
                                       f"cannot resolve host: {exc.strerror or exc}")
    try:
        conn = await psycopg.AsyncConnection.connect(
            service.url or "", connect_timeout=timeout, autocommit=True, **extra_params
        )
    except psycopg.Error as exc:
        message = _short(str(exc), secret)
        reason = classify(str(exc))
        if reason == "other" and any(w in str(exc).lower() for w in _AUTH):
            message = f"authentication failed: {message}"
        return ProbeResult.failure(reason, perf_counter() - start, message)
    try:
        await conn.execute("SELECT 1")
        version = conn.info.server_version
    except psycopg.Error as exc:
        return ProbeResult.failure("other", perf_counter() - start, _short(str(exc), secret))
    finally:
        await conn.close()
    extra = {"server_version": f"{version // 10000}.{version % 10000}"} if version else {}
    return ProbeResult(success=True, duration_s=perf_counter() - start, extra=extra)
