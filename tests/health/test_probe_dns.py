"""The DNS prober against a real authoritative server (dnslib) on loopback UDP and TCP."""

import pytest

from exporter.config.model import ServiceConfig
from exporter.health.probes import ProbeContext, run_probe
from tests.support.dns_server import dns_targets


@pytest.fixture(scope="module")
def zone():
    with dns_targets() as t:
        yield t


def svc(server, name, kind="A", **kw):
    return ServiceConfig(name="dns-internal", type="dns", server=server, query_name=name,
                         query_type=kind, **kw)


async def probe(service, timeout=2.0, allowed=(), trace=None):
    return await run_probe(service, ProbeContext(timeout=timeout, allowed_targets=allowed, trace=trace))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(("name", "kind", "expect"), [
    ("trading-api.internal", "A", r"^trading-api\.internal\.\s+\d+\s+IN\s+A\s+10\."),
    ("trading-api.internal", "AAAA", r"IN\s+AAAA\s+fd00::5$"),
    ("md.internal", "CNAME", r"CNAME\s+trading-api\.internal\.$"),
    ("notes.internal", "TXT", r'TXT\s+"v=1 desk"'),
])
async def test_answers_match(zone, transport, name, kind, expect):
    r = await probe(svc(zone.server, name, kind, transport=transport, expect_answer=expect))
    assert (r.success, r.reason) == (True, None), r.message
    assert set(r.phases) == {"resolve", "query"}
    assert r.facts["answer_rrs"] == 1 and r.extra == {"rcode": "NOERROR"}


async def test_soa_serial(zone):
    r = await probe(svc(zone.server, "internal", "SOA"))
    assert r.success and r.facts["serial"] == 2026120501


async def test_no_record_matches_expect_answer(zone):
    r = await probe(svc(zone.server, "trading-api.internal", expect_answer=r"IN\s+A\s+192\.168\."))
    assert (r.success, r.reason) == (False, "answer")
    assert r.message == "no answer record matched expect_answer (1 record(s))"


async def test_nxdomain_is_rcode(zone):
    r = await probe(svc(zone.server, "nope.internal"))
    assert (r.reason, r.message) == ("rcode", "rcode NXDOMAIN is not in valid_rcodes")


async def test_nxdomain_can_be_valid(zone):
    r = await probe(svc(zone.server, "nope.internal", valid_rcodes=("NXDOMAIN",)))
    assert r.success and r.extra["rcode"] == "NXDOMAIN"


async def test_servfail_is_rcode(zone):
    r = await probe(svc(zone.server, "servfail.internal", transport="tcp"))
    assert (r.reason, r.message) == ("rcode", "rcode SERVFAIL is not in valid_rcodes")


async def test_server_that_never_answers_is_timeout(zone):
    r = await probe(svc(zone.silent, "trading-api.internal"), timeout=0.3)
    assert (r.success, r.reason) == (False, "timeout")


async def test_closed_tcp_port_is_connect(zone):
    r = await probe(svc(zone.silent, "trading-api.internal", transport="tcp"))
    assert r.reason == "connect"


async def test_server_outside_allowed_targets_gets_no_packet(zone):
    before = zone.resolver.queries
    r = await probe(svc(zone.server, "trading-api.internal"), allowed=("10.0.0.0/8",))
    assert r.reason == "other" and "not in allowed_targets" in r.message
    assert zone.resolver.queries == before and "query" not in r.phases


async def test_trace_names_the_steps(zone):
    lines = []
    r = await probe(svc(zone.server, "trading-api.internal"), trace=lines.append)
    assert r.success
    text = "\n".join(lines)
    assert "asking 127.0.0.1" in text and "rcode NOERROR" in text and "answer record: " in text


def test_query_names_with_underscores_and_root_dot_are_valid_config():
    from exporter.config import ConfigError, parse_config

    for name in ("_pricing._tcp.internal", "trading-api.internal.", "5.0.0.10.in-addr.arpa"):
        text = f"services:\n  - name: d\n    type: dns\n    server: 127.0.0.1:53\n    query_name: {name}\n"
        assert parse_config(text, "s.yaml").services[0].query_name == name
    for bad in ("a..b", "-x.internal", "with space"):
        text = f"services:\n  - name: d\n    type: dns\n    server: 127.0.0.1:53\n    query_name: '{bad}'\n"
        with pytest.raises(ConfigError, match="query_name': invalid value"):
            parse_config(text, "s.yaml")


async def test_srv_name_is_asked_as_written(zone):
    r = await probe(svc(zone.server, "_pricing._tcp.internal", "SRV", valid_rcodes=("NXDOMAIN",)))
    assert r.success and r.extra["rcode"] == "NXDOMAIN"
