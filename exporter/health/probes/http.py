"""HTTP prober: one request on a fresh connection, phases, TLS expiry, a capped body,
then the worse of HTTP status, body and conditions decides."""

from __future__ import annotations

import asyncio
import ssl
import time
from time import perf_counter
from typing import Any

import aiohttp
from aiohttp import client_exceptions as cx

from ...config.model import ServiceConfig
from ...config.redact import redact_url
from ...desk.clock_skew import body_time, estimate_skew
from ..bodies import Body, interpret
from ..conditions import evaluate
from ..result import ProbeResult
from .base import ProbeContext
from .guard import TargetNotAllowed, guard_for
from .http_client import GUARD, TIMELINE, USER_AGENT, Timeline, create_session, is_probe_session
from .tls import client_context

MAX_REDIRECTS = 10  # redirects followed at most when follow_redirects is on
CHUNK = 64 * 1024


class _Failed(Exception):
    """A probe failure already mapped to a reason."""

    def __init__(self, reason: str, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.http_status = http_status


def _os_detail(exc: BaseException) -> str:
    err = getattr(exc, "os_error", None) or exc.__cause__ or exc
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return text[:160]


def _where(exc: BaseException) -> str:
    if isinstance(exc, cx.ClientConnectorError):
        return f"{exc.host}:{exc.port}: "
    return ""


def _map_error(exc: Exception, timeout: float) -> _Failed:
    """A client exception as a probe failure; messages name host:port, never the URL."""
    if isinstance(exc, cx.ClientConnectorError) and isinstance(exc.os_error, TargetNotAllowed):
        return _Failed("other", str(exc.os_error))
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's own timeouts derive from it
        return _Failed("timeout", f"no answer within {timeout:g}s")
    if isinstance(exc, cx.ClientConnectorDNSError):
        return _Failed("dns", f"{_where(exc)}cannot resolve: {_os_detail(exc)}")
    if isinstance(exc, cx.ClientConnectorCertificateError):
        return _Failed("tls", f"{_where(exc)}certificate: {exc.certificate_error}"[:200])
    if isinstance(exc, cx.ClientSSLError | cx.ServerFingerprintMismatch | ssl.SSLError):
        return _Failed("tls", f"{_where(exc)}TLS handshake: {_os_detail(exc)}"[:200])
    if isinstance(exc, cx.TooManyRedirects):
        last = exc.history[-1].status if exc.history else None
        return _Failed("status", f"more than {MAX_REDIRECTS} redirects", last)
    if isinstance(exc, cx.ClientConnectorError):
        return _Failed("connect", f"{_where(exc)}{_os_detail(exc)}")
    if isinstance(exc, cx.ServerDisconnectedError | cx.ClientOSError | ConnectionError):
        return _Failed("connect", f"connection dropped: {_os_detail(exc)}")
    if isinstance(exc, cx.ClientPayloadError):
        cause = exc.__cause__
        if cause is not None and "encoding" in type(cause).__name__.lower():
            return _Failed("bad_body", "body cannot be decompressed")
        return _Failed("connect", "connection dropped during the body")
    if isinstance(exc, cx.InvalidURL | cx.NonHttpUrlRedirectClientError):
        return _Failed("other", "invalid URL or redirect target")
    if isinstance(exc, cx.ClientResponseError):
        first = (str(exc.message).strip().splitlines() or ["unparsable"])[0].rstrip(": ")
        return _Failed("other", f"invalid HTTP response: {first}"[:200])
    if isinstance(exc, OSError):
        return _Failed("connect", _os_detail(exc))
    return _Failed("other", f"{type(exc).__name__}: {exc}"[:200])


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes | None:
    """The body, decompressed, or None once it passes `cap` bytes (read no further)."""
    buf = bytearray()
    while True:
        # aiohttp inflates in bounded steps, so a gzip bomb costs at most cap + a chunk.
        chunk = await resp.content.read(min(CHUNK, cap + 1 - len(buf)))
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > cap:
            return None


def _headers(service: ServiceConfig) -> list[tuple[str, str]]:
    headers = list(service.headers)
    if not any(k.lower() == "user-agent" for k, _ in headers):
        headers.append(("User-Agent", USER_AGENT))
    return headers


async def _exchange(
    service: ServiceConfig, ctx: ProbeContext, session: aiohttp.ClientSession, timeline: Timeline
) -> tuple[int, bytes | None, str | None, tuple[str | None, float, float]]:
    """Send the request and read the body: (status, body or None when too large, content type,
    (Date header, wall time sent, wall time answered))."""
    try:
        sslctx = client_context(service.tls)
    except OSError as exc:
        raise _Failed("tls", f"cannot read ca_file: {exc.strerror or exc}") from None
    sent = time.time()
    resp = await session.request(
        service.method,
        service.url,
        headers=_headers(service),
        allow_redirects=service.follow_redirects,
        max_redirects=MAX_REDIRECTS + 1,  # aiohttp counts the redirect that trips the limit
        ssl=sslctx,
        server_hostname=service.tls.server_name,
        trace_request_ctx=timeline,
        timeout=aiohttp.ClientTimeout(total=ctx.timeout),
    )
    try:
        timeline.status = resp.status
        clock = (resp.headers.get("Date"), sent, time.time())
        content_type = resp.headers.get("Content-Type")
        if service.body_format == "none" or service.method == "HEAD":
            body: bytes | None = b""
        else:
            body = await _read_capped(resp, service.max_body)
        timeline.body_done = perf_counter()
        return resp.status, body, content_type, clock
    finally:
        # Closing (not releasing) drops the connection: nothing more is read from it.
        resp.close()


def _facts(status: int, elapsed: float, body: Body | None, expiry: float | None) -> dict[str, Any]:
    facts: dict[str, Any] = {"STATUS": status, "RESPONSE_TIME": elapsed}
    if body is not None and body.error is None:
        facts["BODY"] = body.value
    if expiry is not None:
        facts["CERTIFICATE_EXPIRATION"] = expiry - time.time()
    return facts


async def probe_http(service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
    """Probe an HTTP(S) endpoint (docs/probes.md)."""
    timeline = Timeline()
    token = TIMELINE.set(timeline)
    guard_token = GUARD.set(guard_for(ctx.allowed_targets))
    shared = is_probe_session(ctx.http)
    # Another session could neither time the phases nor see the certificate of a small
    # answer (aiohttp lets go of the connection before the prober looks).
    session = ctx.http if shared else create_session()
    ctx.note(f"requesting {service.method} {redact_url(service.url or '')}"
             + (f" with headers {', '.join(k + ': ***' for k, _ in service.headers)}"
                if service.headers else ""))
    try:
        status, raw, content_type, clock = await _exchange(service, ctx, session, timeline)
    except _Failed as failed:
        _note_phases(ctx, timeline)
        ctx.note(f"failure ({failed.reason}): {failed.message}")
        return _failure(failed, timeline)
    except Exception as exc:  # CancelledError is a BaseException and passes through
        failed = _map_error(exc, ctx.timeout)
        _note_phases(ctx, timeline)
        ctx.note(f"failure ({failed.reason}): {failed.message}")
        return _failure(failed, timeline)
    finally:
        TIMELINE.reset(token)
        GUARD.reset(guard_token)
        if not shared:
            await session.close()
    elapsed = perf_counter() - timeline.start
    expiry = timeline.cert_expiry()
    _note_phases(ctx, timeline)
    ctx.note(f"HTTP {status}, body of {len(raw) if raw is not None else 'more than max_body'} bytes")

    body = None
    if raw is not None and service.body_format != "none":
        body = interpret(raw, content_type, service.body_format)
    outcomes = evaluate(service.conditions, _facts(status, elapsed, body, expiry))

    reason = message = None
    if not service.status_expected(status):
        reason, message = "status", f"HTTP {status} is not in expect_status"
    elif raw is None:
        reason, message = "body_too_large", f"body larger than max_body ({service.max_body} bytes)"
    elif body is not None and body.error:
        reason, message = "bad_body", body.error
    elif body is not None and body.reported == "unhealthy":
        reason, message = "reported_unhealthy", f"service reports unhealthy ({body.format} format)"
    else:
        failed = [o for o in outcomes if not o.success]
        if failed:
            reason = "condition"
            message = f"{failed[0].condition}: {failed[0].detail}"[:200]
    ctx.note("decision: " + ("success" if reason is None else f"failure ({reason}): {message}"))
    return ProbeResult(
        success=reason is None,
        duration_s=elapsed,
        reason=reason,
        message=message,
        reported=body.reported if body is not None else None,
        http_status=status,
        phases=timeline.phases(),
        tls_expiry=expiry,
        details=dict(body.details) if body is not None else {},
        reported_metadata=body.metadata if body is not None else None,
        conditions=outcomes,
        body_format=body.format if body is not None else service.body_format,
        extra={"redirects": len(timeline.hops) - 1} if len(timeline.hops) > 1 else {},
        clock_skew_s=_skew(timeline, clock, body),
    )


def _skew(timeline: Timeline, clock: tuple[str | None, float, float], body: Body | None
          ) -> float | None:
    """The service's clock against ours, from the final answer's Date header and body time."""
    date_header, sent, received = clock
    hop = timeline.hops[-1] if timeline.hops else None
    if hop is not None and hop.conn_end is not None and hop.headers is not None:
        # Narrow the wait to request-sent .. headers-received on the connection used.
        offset = time.time() - perf_counter()
        sent, received = hop.conn_end + offset, hop.headers + offset
    stamp = body_time(body.value) if body is not None and body.error is None else None
    return estimate_skew(date_header, stamp, sent, received)


def _note_phases(ctx: ProbeContext, timeline: Timeline) -> None:
    if ctx.trace is not None:
        phases = ", ".join(f"{k} {v:.6f}s" for k, v in timeline.phases().items())
        ctx.note(f"phases: {phases or 'none'}")


def _failure(failed: _Failed, timeline: Timeline) -> ProbeResult:
    return ProbeResult.failure(
        failed.reason,
        perf_counter() - timeline.start,
        failed.message,
        http_status=failed.http_status if failed.http_status is not None else timeline.status,
        phases={k: v for k, v in timeline.phases().items() if v > 0},
        tls_expiry=timeline.cert_expiry(),
    )
