"""The TCP prober against a real listener, a closed port and a name that does not resolve."""

import pytest

from exporter.config.model import ServiceConfig
from exporter.health.probes import ProbeContext, run_probe
from exporter.health.probes.tcp import target
from tests.support.tools import free_port


async def probe(**kw):
    return await run_probe(ServiceConfig(name="ws", type="tcp", **kw), ProbeContext(timeout=2.0))


async def test_listener_by_address(targets):
    r = await probe(address=targets.tcp_address)
    assert (r.success, r.reason) == (True, None)
    assert set(r.phases) == {"resolve", "connect"}
    await targets.wait_until(lambda: targets.tcp_accepted == 1)


async def test_listener_by_url(targets):
    r = await probe(url=f"http://127.0.0.1:{targets.tcp_port}/ignored")
    assert r.success
    await targets.wait_until(lambda: targets.tcp_accepted == 1)


async def test_silent_listener_still_counts_as_up(targets):
    assert (await probe(address=targets.silent_tcp_address)).success


async def test_closed_port():
    port = free_port()
    r = await probe(address=f"127.0.0.1:{port}")
    assert (r.success, r.reason) == (False, "connect")
    assert r.message.startswith(f"127.0.0.1:{port}: ")


async def test_unresolvable_name():
    r = await probe(address="no-such-host.invalid:8080")
    assert r.reason == "dns" and r.message.startswith("no-such-host.invalid: cannot resolve")


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"address": "localhost:8080"}, ("localhost", 8080)),
        ({"address": "[::1]:9000"}, ("::1", 9000)),
        ({"url": "http://localhost:8080/ws"}, ("localhost", 8080)),
        ({"url": "https://example.internal/"}, ("example.internal", 443)),
        ({"url": "redis://cache:6380/0"}, ("cache", 6380)),
        ({"url": "postgresql://db/x"}, ("db", 5432)),
    ],
)
def test_target(kw, expected):
    assert target(ServiceConfig(name="t", type="tcp", **kw)) == expected


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"address": "nocolon"}, "address 'nocolon' is not host:port"),
        ({"address": "host:http"}, "address 'host:http' is not host:port"),
        ({"address": "host:70000"}, "port 70000 is out of range"),
        ({"url": "foo://host/"}, "url of scheme 'foo' has no port"),
        ({}, "neither address nor url is set"),
    ],
)
async def test_bad_target_is_other(kw, message):
    r = await probe(**kw)
    assert (r.reason, r.message) == ("other", message)
