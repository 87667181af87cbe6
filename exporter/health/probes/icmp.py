"""ICMP prober: `count` echo requests to `host`, one after another; success when at least
one is answered.

Phases: `resolve` and `rtt` (the best round trip); the share of requests left unanswered
is reported as facts["loss_ratio"] (usdcop_probe_icmp_loss_ratio). All unanswered is
reason `unreachable` when the network said so (no route, destination unreachable), else
`timeout`. The resolved address passes allowed_targets before a packet is sent.

Unprivileged ICMP datagram sockets are used where net.ipv4.ping_group_range allows them,
raw sockets otherwise (root or CAP_NET_RAW); the configuration refuses type icmp when
neither can be opened.
"""

from __future__ import annotations

import functools
import socket
from time import perf_counter

from icmplib import AsyncSocket, ICMPRequest, ICMPv4Socket, ICMPv6Socket
from icmplib.exceptions import (
    DestinationUnreachable,
    ICMPError,
    ICMPLibError,
    ICMPSocketError,
    TimeoutExceeded,
)
from icmplib.utils import unique_identifier

from ...config.model import ServiceConfig
from ..result import ProbeResult
from .base import ProbeContext
from .connect import Failed, Timer, resolve

MARGIN = 0.05  # seconds kept before the hard timeout to judge the requests ourselves


@functools.cache
def privileged() -> bool:
    """False when an unprivileged ICMP datagram socket can be opened, else True (raw)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
        return False
    except OSError:
        return True


async def probe_icmp(service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
    """Ping `host` `count` times."""
    timer = Timer()
    host = service.host or ""
    count = service.count
    rtts: list[float] = []
    unreachable: str | None = None
    facts: dict[str, object] = {}
    try:
        infos = await resolve(host, 0, ctx, timer, socket.SOCK_DGRAM)
        family, address = infos[0][0], infos[0][4][0]
        facts["ip_protocol"] = 6 if family == socket.AF_INET6 else 4
        kind = ICMPv6Socket if family == socket.AF_INET6 else ICMPv4Socket
        raw = privileged()
        budget = (ctx.timeout - timer.elapsed() - min(MARGIN, ctx.timeout / 10)) / count
        ctx.note(f"sending {count} echo request(s) to {address} over a "
                 f"{'raw' if raw else 'datagram'} socket, {budget:.3f}s each")
        try:
            icmp = kind(None, raw)
        except ICMPLibError as exc:
            raise Failed("other", f"cannot open an ICMP socket: {exc}") from None
        ident = unique_identifier()
        with AsyncSocket(icmp) as sock:
            for sequence in range(count):
                request = ICMPRequest(destination=address, id=ident, sequence=sequence)
                try:
                    sock.send(request)
                    reply = await sock.receive(request, max(budget, 0.001))
                    reply.raise_for_status()
                except TimeoutExceeded:
                    ctx.note(f"request {sequence}: no answer")
                    continue
                except DestinationUnreachable as exc:
                    unreachable = str(exc)
                    ctx.note(f"request {sequence}: {exc}")
                    continue
                except ICMPSocketError as exc:
                    unreachable = str(exc)
                    ctx.note(f"request {sequence}: cannot send: {exc}")
                    continue
                except ICMPError as exc:
                    ctx.note(f"request {sequence}: {exc}")
                    continue
                rtt = reply.time - request.time
                rtts.append(rtt)
                ctx.note(f"request {sequence}: reply in {rtt * 1000:.3f} ms")
        timer.restart()
    except Failed as failed:
        ctx.note(f"failure ({failed.reason}): {failed.message}")
        return ProbeResult.failure(failed.reason, timer.elapsed(), failed.message,
                                   phases=timer.phases, facts=facts)
    facts["loss_ratio"] = 1.0 - len(rtts) / count
    if not rtts:
        if unreachable:
            reason, message = "unreachable", f"{host}: {unreachable}"
        else:
            reason, message = "timeout", f"{host}: none of {count} echo request(s) answered"
        ctx.note(f"failure ({reason}): {message}")
        return ProbeResult.failure(reason, timer.elapsed(), message, phases=timer.phases,
                                   facts=facts)
    timer.phases["rtt"] = min(rtts)
    ctx.note(f"success: {len(rtts)} of {count} answered, best {min(rtts) * 1000:.3f} ms")
    return ProbeResult(success=True, duration_s=perf_counter() - timer.start, phases=timer.phases,
                       facts=facts, extra={"loss_ratio": facts["loss_ratio"]})
