"""HTTP prober: one request on a fresh connection, phases, TLS expiry, a capped body,
then the worse of HTTP status, body and conditions decides."""

from __future__ import annotations

import asyncio
import time
from time import perf_counter
from typing import Any

from ...config.model import ServiceConfig
from ...desk.clock_skew import body_time, estimate_skew
from ..bodies import Body, interpret
from ..conditions import evaluate
from ..result import ProbeResult
from .base import ProbeContext
from .guard import guard_for
from .http_timeline import Timeline
from .http_wire import MAX_REDIRECTS, Answer, WireError, exchange
from .tls import client_context

__all__ = ["MAX_REDIRECTS", "probe_http"]


async def _exchange(service: ServiceConfig, ctx: ProbeContext, timeline: Timeline
                    ) -> tuple[Answer, float]:
    """The final answer and the wall time the request went out."""
    tls = None
    if service.url is not None and service.url[:6].lower() == "https:" or service.follow_redirects:
        try:
            tls = (client_context(service.tls), service.tls.server_name)
        except OSError as exc:
            raise WireError("tls", f"cannot read ca_file: {exc.strerror or exc}") from None
    sent = time.time()
    # The deadline, as asyncio.timeout() holds it but with one timer and no context
    # manager (~15-25 µs less CPU per probe): when it fires, this task is cancelled, and
    # that cancellation, ours alone, becomes TimeoutError; any other passes through.
    task = asyncio.current_task()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()  # type: ignore[union-attr]

    handle = asyncio.get_running_loop().call_later(ctx.timeout, expire)
    try:
        answer = await exchange(
            service.url or "", service.method, service.headers, cap=service.max_body,
            read_body=service.body_format != "none" and service.method != "HEAD",
            follow_redirects=service.follow_redirects, tls=tls,
            guard=guard_for(ctx.allowed_targets), timeline=timeline, ctx=ctx,
        )
    except asyncio.CancelledError:
        if expired and task.uncancel() == 0:  # type: ignore[union-attr]
            raise TimeoutError from None
        raise
    finally:
        handle.cancel()
    timeline.body_done = answer.finished_at
    return answer, sent


def _facts(status: int, elapsed: float, body: Body | None, expiry: float | None) -> dict[str, Any]:
    facts: dict[str, Any] = {"STATUS": status, "RESPONSE_TIME": elapsed}
    if body is not None and body.error is None:
        facts["BODY"] = body.value
    if expiry is not None:
        facts["CERTIFICATE_EXPIRATION"] = expiry - time.time()
    return facts


async def probe_http(service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
    """Probe an HTTP(S) endpoint: its duration ends when the answer's last byte arrived."""
    timeline = Timeline()
    try:
        answer, sent = await _exchange(service, ctx, timeline)
    except WireError as failed:
        ctx.note(f"decision: {failed.reason}: {failed.message}")
        return _failure(failed, timeline)
    except TimeoutError:
        failed = WireError("timeout", f"no answer within {ctx.timeout:g}s")
        ctx.note(f"decision: timeout: {failed.message}")
        return _failure(failed, timeline)
    elapsed = answer.finished_at - timeline.start
    expiry = timeline.cert_expiry()
    status, raw, content_type = answer.status, answer.body, answer.content_type
    clock = (answer.date, sent, time.time())

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
    result = ProbeResult(
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
        extra={"redirects": answer.hops} if answer.hops else {},
        clock_skew_s=_skew(timeline, clock, body),
    )
    ctx.note(f"decision: {'success' if reason is None else reason}"
             + (f": {message}" if message else ""))
    return result


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


def _failure(failed: WireError, timeline: Timeline) -> ProbeResult:
    return ProbeResult.failure(
        failed.reason,
        perf_counter() - timeline.start,
        failed.message,
        http_status=failed.http_status if failed.http_status is not None else timeline.status,
        phases={k: v for k, v in timeline.phases().items() if v > 0},
        tls_expiry=timeline.cert_expiry(),
    )
