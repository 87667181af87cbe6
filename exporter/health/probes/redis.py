"""Redis prober: connect, PING, INFO server (version and uptime, if allowed), close."""

from __future__ import annotations

import socket
from time import perf_counter

import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.connection import UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ...config.model import ServiceConfig
from ..result import ProbeResult
from .base import ProbeContext
from .guard import TargetGuard, TargetNotAllowed, guard_for


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _failure(exc: Exception, where: str, start: float) -> ProbeResult:
    elapsed = perf_counter() - start
    blocked = exc
    while blocked is not None and not isinstance(blocked, TargetNotAllowed):
        blocked = blocked.__cause__ or blocked.__context__
    if blocked is not None:
        return ProbeResult.failure("other", elapsed, str(blocked))
    # Messages are built here from host:port only: redis-py's own may echo the URL.
    if isinstance(exc, rx.AuthenticationError) or (
        isinstance(exc, rx.ResponseError) and str(exc).startswith(("NOAUTH", "WRONGPASS"))
    ):
        return ProbeResult.failure("other", elapsed, f"{where}: authentication failed")
    if isinstance(exc, rx.TimeoutError):
        return ProbeResult.failure("timeout", elapsed, f"{where}: no answer in time")
    if isinstance(exc, rx.BusyLoadingError):
        return ProbeResult.failure("other", elapsed, f"{where}: Redis is loading its dataset")
    if isinstance(exc, rx.ConnectionError):
        if _caused_by(exc, socket.gaierror):
            return ProbeResult.failure("dns", elapsed, f"{where}: cannot resolve host")
        return ProbeResult.failure("connect", elapsed, f"{where}: cannot connect")
    if isinstance(exc, rx.ResponseError):
        return ProbeResult.failure("other", elapsed, f"{where}: error reply {str(exc).split()[0]}")
    return ProbeResult.failure("other", elapsed, f"{where}: {type(exc).__name__}")


def _guarded(cls: type, guard: TargetGuard) -> type:
    """`cls` connecting only to addresses `guard` allows (TLS still checks the host name)."""
    if issubclass(cls, UnixDomainSocketConnection):
        class Refused(cls):  # type: ignore[misc, valid-type]
            async def _connect(self):
                raise TargetNotAllowed(f"unix socket {self.path} is not covered by allowed_targets")
        return Refused

    class Guarded(cls):  # type: ignore[misc, valid-type]
        _address: str | None = None

        async def _connect(self):
            self._address = (await guard.resolve(self.host, self.port))[0]
            await super()._connect()

        def _connection_arguments(self):
            kwargs = dict(super()._connection_arguments())
            if self._address is not None:
                if kwargs.get("ssl") is not None:
                    kwargs["server_hostname"] = self.host
                kwargs["host"] = self._address
            return kwargs

    return Guarded


async def probe_redis(service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
    """PING a Redis server on a connection of its own (no pool, no retries)."""
    start = perf_counter()
    try:
        client = aioredis.Redis.from_url(
            service.url or "",
            socket_timeout=ctx.timeout,
            socket_connect_timeout=ctx.timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            single_connection_client=True,
            driver_info=None,  # no CLIENT SETINFO round trips
        )
    except (ValueError, TypeError):
        return ProbeResult.failure("other", perf_counter() - start, "invalid redis URL")
    guard = guard_for(ctx.allowed_targets)
    if guard is not None:  # connections are made on first use, so this is in time
        pool = client.connection_pool
        pool.connection_class = _guarded(pool.connection_class, guard)
    kwargs = client.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
    try:
        await client.ping()
        extra, details = {}, {}
        try:
            info = await client.info("server")
        except rx.ResponseError:
            info = {}  # INFO may be renamed or denied by ACL; PING already answered
        if "redis_version" in info:
            extra["redis_version"] = str(info["redis_version"])
        if isinstance(info.get("uptime_in_seconds"), int):
            details["uptime"] = float(info["uptime_in_seconds"])
        return ProbeResult(success=True, duration_s=perf_counter() - start, details=details, extra=extra)
    except Exception as exc:  # CancelledError passes through
        return _failure(exc, where, start)
    finally:
        await client.aclose()
