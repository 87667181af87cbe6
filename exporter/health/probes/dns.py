"""DNS prober: one query of `query_type` for `query_name`, sent to the configured server
over UDP or TCP (never through the system resolver), judged by its rcode and, with
`expect_answer`, by a regex one answer record (in zone-file text form) must match.

Phases: `resolve` (the server's own name, when it is one) and `query`. The server's
address passes allowed_targets before any packet leaves.
"""

from __future__ import annotations

import asyncio
import re
import socket

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from ...config.model import ServiceConfig
from ...config.services import split_host_port
from ..result import ProbeResult
from .base import ProbeContext
from .connect import Failed, Timer, resolve


async def _udp(query: dns.message.Message, info: tuple, port: int) -> dns.message.Message:
    """Send `query` over a connected UDP socket and wait for the answer that matches it
    (a stray or spoofed datagram is skipped; an ICMP port unreachable is ConnectionRefusedError)."""
    loop = asyncio.get_running_loop()
    family, _, _, _, addr = info
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, addr)
        await loop.sock_sendall(sock, query.to_wire())
        while True:
            wire = await loop.sock_recv(sock, 65535)
            try:
                answer = dns.message.from_wire(wire)
            except dns.exception.DNSException:
                continue
            if answer.id == query.id and query.is_response(answer):
                return answer
    finally:
        sock.close()


def _records(section: list) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


def _facts(answer: dns.message.Message) -> dict[str, object]:
    facts: dict[str, object] = {
        "answer_rrs": sum(len(r) for r in answer.answer),
        "authority_rrs": sum(len(r) for r in answer.authority),
        "additional_rrs": sum(len(r) for r in answer.additional),
    }
    for rrset in (*answer.answer, *answer.authority):
        if rrset.rdtype == dns.rdatatype.SOA:
            facts["serial"] = rrset[0].serial
            break
    return facts


async def probe_dns(service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
    """Ask `server` for `query_name`/`query_type`."""
    timer = Timer()
    host, port = split_host_port(service.server or "") or ("", 0)
    kind = socket.SOCK_DGRAM if service.transport == "udp" else socket.SOCK_STREAM
    try:
        infos = await resolve(host, port, ctx, timer, kind)
        address = infos[0][4][0]
        query = dns.message.make_query(service.query_name or ".", service.query_type)
        ctx.note(f"asking {address} port {port} over {service.transport} for "
                 f"{service.query_name} {service.query_type}")
        try:
            if service.transport == "udp":
                answer = await _udp(query, infos[0], port)
            else:
                answer = await dns.asyncquery.tcp(query, address, port=port)
        except (OSError, EOFError) as exc:
            detail = getattr(exc, "strerror", None) or type(exc).__name__
            raise Failed("connect", f"{service.server}: {detail}") from None
        except dns.exception.DNSException as exc:
            raise Failed("other", f"{service.server}: unusable answer: {exc}"[:200]) from None
        finally:
            timer.lap("query")
        facts = _facts(answer)
        rcode = dns.rcode.to_text(answer.rcode())
        ctx.note(f"answer: rcode {rcode}, {facts['answer_rrs']} answer, "
                 f"{facts['authority_rrs']} authority, {facts['additional_rrs']} additional records")
        wanted = service.expect_answer is not None or ctx.trace is not None
        records = _records(answer.answer) if wanted else []
        for line in records:
            ctx.note(f"answer record: {line}")
        if rcode not in service.valid_rcodes:
            raise _Judged("rcode", f"rcode {rcode} is not in valid_rcodes", facts, rcode)
        if service.expect_answer is not None:
            pattern = re.compile(service.expect_answer)
            if not any(pattern.search(line) for line in records):
                raise _Judged("answer", f"no answer record matched expect_answer "
                                        f"({len(records)} record(s))", facts, rcode)
    except _Judged as judged:
        ctx.note(f"failure ({judged.reason}): {judged.message}")
        return ProbeResult.failure(judged.reason, timer.elapsed(), judged.message,
                                   phases=timer.phases, facts={**judged.facts, "query_succeeded": 1},
                                   extra={"rcode": judged.rcode})
    except Failed as failed:
        ctx.note(f"failure ({failed.reason}): {failed.message}")
        return ProbeResult.failure(failed.reason, timer.elapsed(), failed.message,
                                   phases=timer.phases, facts={"query_succeeded": 0})
    ctx.note("success")
    return ProbeResult(success=True, duration_s=timer.elapsed(), phases=timer.phases,
                       facts={**facts, "query_succeeded": 1}, extra={"rcode": rcode})


class _Judged(Failed):
    """An answer arrived and was judged a failure."""

    def __init__(self, reason: str, message: str, facts: dict[str, object], rcode: str) -> None:
        super().__init__(reason, message)
        self.facts = facts
        self.rcode = rcode
