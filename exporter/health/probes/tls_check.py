"""TLS prober (type tls): connect to `address`, complete a TLS handshake, read the leaf
certificate's expiry, then judge `conditions` ([CERTIFICATE_EXPIRATION], [RESPONSE_TIME]).

Phases: resolve, connect, tls. A refused or unverifiable handshake fails with reason `tls`
and says why (expired, wrong host, untrusted issuer ...).
"""

from __future__ import annotations

import time

from ...config.model import ServiceConfig
from ...config.services import split_host_port
from ..conditions import evaluate
from ..result import ProbeResult
from .base import ProbeContext
from .connect import Failed, Timer, close, open_stream


async def probe_tls(service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
    """Handshake with `address` and judge its certificate."""
    timer = Timer()
    host, port = split_host_port(service.address or "") or ("", 0)
    try:
        _, writer, expiry = await open_stream(host, port, ctx, timer, service.tls)
    except Failed as failed:
        ctx.note(f"failure ({failed.reason}): {failed.message}")
        return ProbeResult.failure(failed.reason, timer.elapsed(), failed.message,
                                   phases=timer.phases, facts=timer.facts)
    await close(writer)
    elapsed = timer.elapsed()
    facts = {"RESPONSE_TIME": elapsed}
    if expiry is not None:
        facts["CERTIFICATE_EXPIRATION"] = expiry - time.time()
    outcomes = evaluate(service.conditions, facts)
    failed = [o for o in outcomes if not o.success]
    for outcome in outcomes:
        ctx.note(f"condition {outcome.condition}: {'holds' if outcome.success else 'fails'}"
                 + (f" ({outcome.detail})" if outcome.detail else ""))
    if failed:
        message = f"{failed[0].condition}: {failed[0].detail}"[:200]
        ctx.note(f"failure (condition): {message}")
        return ProbeResult.failure("condition", elapsed, message, phases=timer.phases,
                                   tls_expiry=expiry, conditions=outcomes, facts=timer.facts)
    ctx.note("success")
    return ProbeResult(success=True, duration_s=elapsed, phases=timer.phases, tls_expiry=expiry,
                       conditions=outcomes, facts=timer.facts)
