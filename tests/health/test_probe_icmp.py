"""The ICMP prober against loopback (this suite runs as root, so raw sockets work; an
unprivileged datagram socket is used instead where ping_group_range allows it)."""

from exporter.config.model import ServiceConfig
from exporter.health.probes import ProbeContext, run_probe


def svc(host, count=1):
    return ServiceConfig(name="gateway-ping", type="icmp", host=host, count=count)


async def probe(service, allowed=(), trace=None):
    return await run_probe(service, ProbeContext(timeout=2.0, allowed_targets=allowed, trace=trace))


async def test_loopback_answers_every_request():
    r = await probe(svc("127.0.0.1", count=3))
    assert (r.success, r.reason) == (True, None), r.message
    assert set(r.phases) == {"resolve", "rtt"} and r.phases["rtt"] > 0
    assert r.facts == {"ip_protocol": 4, "loss_ratio": 0.0}


async def test_ipv6_loopback_by_name():
    r = await probe(svc("::1", count=2))
    assert r.success and r.facts["ip_protocol"] == 6


async def test_unresolvable_name_is_dns():
    r = await probe(svc("no-such-host.invalid"))
    assert r.reason == "dns"


async def test_outside_allowed_targets_no_packet():
    lines = []
    r = await probe(svc("127.0.0.1"), allowed=("10.0.0.0/8",), trace=lines.append)
    assert r.reason == "other" and "not in allowed_targets" in r.message
    assert "rtt" not in r.phases and not any("sending" in line for line in lines)


async def test_an_allowed_address_lets_the_echo_through():
    r = await probe(svc("localhost"), allowed=("127.0.0.1",))
    assert r.success, r.message
