"""A real authoritative DNS server (dnslib) on free loopback UDP and TCP ports, and a UDP
port that never answers.

Zone: trading-api.internal A 10.0.0.5 and AAAA fd00::5; md.internal CNAME
trading-api.internal; notes.internal TXT "v=1 desk"; internal SOA (serial 2026120501).
servfail.internal answers SERVFAIL; every other name NXDOMAIN.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
from dataclasses import dataclass

from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, SOA, TXT, A, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer

ZONE = {
    ("trading-api.internal.", "A"): [RR("trading-api.internal.", QTYPE.A, rdata=A("10.0.0.5"), ttl=60)],
    ("trading-api.internal.", "AAAA"): [RR("trading-api.internal.", QTYPE.AAAA, rdata=AAAA("fd00::5"), ttl=60)],
    ("md.internal.", "CNAME"): [RR("md.internal.", QTYPE.CNAME, rdata=CNAME("trading-api.internal."), ttl=60)],
    ("notes.internal.", "TXT"): [RR("notes.internal.", QTYPE.TXT, rdata=TXT("v=1 desk"), ttl=60)],
    ("internal.", "SOA"): [RR("internal.", QTYPE.SOA, ttl=60, rdata=SOA(
        "ns.internal.", "ops.internal.", (2026120501, 3600, 600, 86400, 60)))],
}


class _Resolver(BaseResolver):
    def __init__(self) -> None:
        self.queries = 0

    def resolve(self, request, handler):
        self.queries += 1
        reply = request.reply()
        name = str(DNSLabel(request.q.qname)).lower()
        kind = QTYPE[request.q.qtype]
        if name == "servfail.internal.":
            reply.header.rcode = RCODE.SERVFAIL
        elif (name, kind) in ZONE:
            for rr in ZONE[(name, kind)]:
                reply.add_answer(rr)
        elif not any(n == name for n, _ in ZONE):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


@dataclass
class DNSTargets:
    port: int
    silent_port: int
    resolver: _Resolver

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def silent(self) -> str:
        return f"127.0.0.1:{self.silent_port}"


def _free_udp_and_tcp() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no port free on both UDP and TCP")


@contextmanager
def dns_targets():
    """The server on one port (UDP and TCP), and a UDP socket that reads and never answers."""
    resolver = _Resolver()
    port = _free_udp_and_tcp()
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    servers = [DNSServer(resolver, port=port, address="127.0.0.1", logger=quiet),
               DNSServer(resolver, port=port, address="127.0.0.1", tcp=True, logger=quiet)]
    for server in servers:
        server.start_thread()
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        yield DNSTargets(port, silent.getsockname()[1], resolver)
    finally:
        for server in servers:
            server.stop()
            server.server.server_close()
        silent.close()
