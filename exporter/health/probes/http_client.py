"""The HTTP client side of probing: a session that opens a fresh connection per probe and
times each phase the way blackbox_exporter names them (resolve, connect, tls,
processing, transfer).

aiohttp joins the TCP connect and the TLS handshake in one call; `PhaseConnector`
connects plainly first and then starts TLS on that connection, so the two are timed
apart, and it reads the peer certificate's expiry while it holds the TLS transport.
The http prober uses a shared session only when `is_probe_session()` says it was made
here; for any other it opens a session of its own per probe.
"""

from __future__ import annotations

import contextvars
import ssl
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import aiohttp
from aiohttp.client_exceptions import (
    ClientConnectorCertificateError,
    ClientConnectorError,
    ClientConnectorSSLError,
)

from .guard import TargetGuard, TargetNotAllowed
from .tls import peer_cert_expiry

USER_AGENT = "usdcop-exporter"


@dataclass
class Hop:
    """Timestamps (perf_counter) of one request of a probe; a redirect adds a hop."""

    start: float
    dns_start: float | None = None
    dns_end: float | None = None
    conn_start: float | None = None
    conn_end: float | None = None
    tcp_done: float | None = None
    tls_done: float | None = None
    headers: float | None = None
    first_byte: float | None = None  # the answer's first byte, when the prober saw it
    cert_expiry: float | None = None


@dataclass
class Timeline:
    """Everything one HTTP probe timed, filled by trace callbacks and the connector."""

    start: float = field(default_factory=perf_counter)
    hops: list[Hop] = field(default_factory=list)
    body_done: float | None = None
    status: int | None = None  # HTTP status of the final response, once it arrived

    @property
    def hop(self) -> Hop:
        """The request in progress."""
        if not self.hops:  # the connector used outside a traced request
            self.hops.append(Hop(self.start))
        return self.hops[-1]

    def phases(self) -> dict[str, float]:
        """Seconds per phase, summed over redirects as blackbox_exporter does: processing
        ends at the answer's first byte when it was seen, else at its headers."""
        out = dict.fromkeys(("resolve", "connect", "tls", "processing", "transfer"), 0.0)
        for hop in self.hops:
            resolve = _span(hop.dns_start, hop.dns_end)
            tls = _span(hop.tcp_done, hop.tls_done)
            out["resolve"] += resolve
            out["tls"] += tls
            out["connect"] += max(0.0, _span(hop.conn_start, hop.conn_end) - resolve - tls)
            out["processing"] += _span(hop.conn_end, hop.first_byte or hop.headers)
        last = self.hops[-1] if self.hops else None
        answered = last.first_byte or last.headers if last is not None else None
        if answered is not None and self.body_done is not None:
            out["transfer"] = max(0.0, self.body_done - answered)
        return out

    def cert_expiry(self) -> float | None:
        """The earliest certificate expiry seen over all hops."""
        seen = [h.cert_expiry for h in self.hops if h.cert_expiry is not None]
        return min(seen) if seen else None


def _span(a: float | None, b: float | None) -> float:
    return max(0.0, b - a) if a is not None and b is not None else 0.0


# The connector has no handle on the request's trace context; the probe's task has.
TIMELINE: contextvars.ContextVar[Timeline | None] = contextvars.ContextVar(
    "usdcop_probe_timeline", default=None
)
# allowed_targets of the probe in progress, checked on the resolved addresses of each hop.
GUARD: contextvars.ContextVar[TargetGuard | None] = contextvars.ContextVar(
    "usdcop_probe_guard", default=None
)


class PhaseConnector(aiohttp.TCPConnector):
    """A TCPConnector that connects, then starts TLS, so each is timed on its own."""

    async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        req, client_timeout = kwargs["req"], kwargs["timeout"]
        guard = GUARD.get()
        if guard is not None:
            try:
                kwargs["addr_infos"] = guard.filter_infos(req.url.host or "", req.port, kwargs["addr_infos"])
            except TargetNotAllowed as exc:
                raise ClientConnectorError(req.connection_key, exc) from None
        sslcontext = kwargs.pop("ssl", None)
        server_hostname = kwargs.pop("server_hostname", None)
        timeline = TIMELINE.get()
        if not sslcontext:
            transport, proto = await super()._wrap_create_connection(*args, ssl=None, **kwargs)
            if timeline is not None:
                timeline.hop.tcp_done = perf_counter()
            return transport, proto
        plain, _ = await super()._wrap_create_connection(*args, ssl=None, **kwargs)
        if timeline is not None:
            timeline.hop.tcp_done = perf_counter()
        # A fresh protocol for the TLS layer, as aiohttp does for TLS through a proxy.
        proto = self._factory()
        try:
            transport = await self._loop.start_tls(
                plain, proto, sslcontext, server_hostname=server_hostname,
                ssl_handshake_timeout=client_timeout.total or None,
            )
        except ssl.CertificateError as exc:
            plain.abort()
            raise ClientConnectorCertificateError(req.connection_key, exc) from exc
        except ssl.SSLError as exc:
            plain.abort()
            raise ClientConnectorSSLError(req.connection_key, exc) from exc
        except BaseException:
            plain.abort()
            raise
        if transport is None:
            plain.abort()
            raise ClientConnectorSSLError(req.connection_key, OSError("TLS did not start"))
        proto.connection_made(transport)
        if timeline is not None:
            timeline.hop.tls_done = perf_counter()
            timeline.hop.cert_expiry = peer_cert_expiry(transport.get_extra_info("ssl_object"))
        return transport, proto


def _trace_config() -> aiohttp.TraceConfig:
    def now(attr: str):
        async def record(_session: Any, trace_ctx: Any, _params: Any) -> None:
            timeline = trace_ctx.trace_request_ctx
            if isinstance(timeline, Timeline):
                setattr(timeline.hop, attr, perf_counter())

        return record

    async def request_start(_session: Any, trace_ctx: Any, _params: Any) -> None:
        timeline = trace_ctx.trace_request_ctx
        if isinstance(timeline, Timeline):
            timeline.hops.append(Hop(perf_counter()))

    async def request_redirect(_session: Any, trace_ctx: Any, _params: Any) -> None:
        # aiohttp signals request start once; each redirect ends a hop and starts the next.
        timeline = trace_ctx.trace_request_ctx
        if isinstance(timeline, Timeline):
            at = perf_counter()
            timeline.hop.headers = at
            timeline.hops.append(Hop(at))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(request_start)
    trace.on_dns_resolvehost_start.append(now("dns_start"))
    trace.on_dns_resolvehost_end.append(now("dns_end"))
    trace.on_connection_create_start.append(now("conn_start"))
    trace.on_connection_create_end.append(now("conn_end"))
    trace.on_request_redirect.append(request_redirect)
    trace.on_request_end.append(now("headers"))
    return trace


def create_session() -> aiohttp.ClientSession:
    """A ClientSession for probes: fresh connection and DNS lookup per probe, no cookies,
    no proxies from the environment, no connection limit, phases traced."""
    connector = PhaseConnector(force_close=True, use_dns_cache=False, limit=0)
    session = aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trace_configs=[_trace_config()],
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"User-Agent": USER_AGENT},
    )
    # aiohttp silently retries an idempotent request once when the server drops the
    # connection; a probe must report that drop, not hide it behind a second attempt.
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session


def is_probe_session(session: Any) -> bool:
    """True for an open session made by `create_session()`."""
    return (
        isinstance(session, aiohttp.ClientSession)
        and not session.closed
        and isinstance(session.connector, PhaseConnector)
    )
