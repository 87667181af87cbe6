"""No SSRF through probes: allowed_targets is checked on the address actually connected
to, for every protocol and every redirect hop; blocked probes never reach the target."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from exporter.config.model import ServiceConfig
from exporter.health.probes import ProbeContext, run_probe
from exporter.health.probes.guard import TargetGuard, TargetNotAllowed
from tests.support.targets import targets  # noqa: F401  (the fixture)

from .conftest import running

PG = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/11"


async def probe(allowed: tuple[str, ...], **service):
    svc = ServiceConfig(name="svc", **service)
    return await run_probe(svc, ProbeContext(timeout=3.0, allowed_targets=allowed))


def test_guard_networks_pairs_and_mapped_addresses():
    guard = TargetGuard(("10.0.0.0/8", "192.168.1.7/32", "api.internal:8001", "[fd00::1]:443", "127.0.0.1:9000"))
    assert guard.allows("x", "10.2.3.4", 1)
    assert guard.allows("x", "::ffff:10.2.3.4", 1)  # IPv4-mapped IPv6 is the IPv4 address
    assert guard.allows("x", "192.168.1.7", 22) and not guard.allows("x", "192.168.1.8", 22)
    assert guard.allows("API.Internal.", "172.16.0.9", 8001)  # by the name the service uses
    assert not guard.allows("api.internal", "172.16.0.9", 8002)
    assert guard.allows("fd00::1", "fd00::1%eth0", 443)
    assert guard.allows("localhost", "127.0.0.1", 9000) and not guard.allows("localhost", "127.0.0.1", 9001)
    assert not guard.allows("x", "not an address", 1)
    with pytest.raises(TargetNotAllowed, match=r"^evil.example:80 resolves to 169.254.169.254:80, which is not in allowed_targets$"):
        guard.check("evil.example", "169.254.169.254", 80)
    with pytest.raises(TargetNotAllowed, match=r"^\[::1\]:80 is not in allowed_targets$"):
        guard.check("::1", "::1", 80)


async def test_http_probe_blocked_never_reaches_the_target(targets):  # noqa: F811
    url = targets.url("/healthy")
    ok = await probe(("127.0.0.0/8",), type="http", url=url)
    assert ok.success
    blocked = await probe(("10.0.0.0/8",), type="http", url=url)
    assert (blocked.success, blocked.reason) == (False, "other")
    assert blocked.message == f"127.0.0.1:{targets.port} is not in allowed_targets"
    assert targets.hits["/healthy"] == 1  # only the allowed probe arrived


async def test_http_probe_by_name_is_judged_on_the_resolved_address(targets):  # noqa: F811
    url = f"http://localhost:{targets.port}/healthy"
    assert (await probe((f"localhost:{targets.port}",), type="http", url=url)).success
    blocked = await probe(("10.0.0.0/8",), type="http", url=url)
    assert blocked.reason == "other"
    assert blocked.message.startswith(f"localhost:{targets.port} resolves to ")
    assert blocked.message.endswith(", which is not in allowed_targets")


async def test_every_redirect_hop_is_checked(targets, aiohttp_server):  # noqa: F811
    elsewhere_hits = []

    async def secret(request):
        elsewhere_hits.append(request.path)
        return web.json_response({"status": "healthy"})

    app = web.Application()
    app.router.add_get("/metadata", secret)
    elsewhere = await aiohttp_server(app, host="127.0.0.1")
    target_url = f"http://127.0.0.1:{elsewhere.port}/metadata"
    url = targets.url(f"/redirect?to={target_url}")
    only_first = (f"127.0.0.1:{targets.port}",)
    result = await probe(only_first, type="http", url=url, follow_redirects=True)
    assert (result.success, result.reason) == (False, "other")
    assert result.message == f"127.0.0.1:{elsewhere.port} is not in allowed_targets"
    assert targets.hits["/redirect"] == 1 and elsewhere_hits == []
    # Redirects are off by default: the 302 itself is the answer.
    plain = await probe(only_first, type="http", url=url)
    assert (plain.reason, plain.http_status) == ("status", 302) and elsewhere_hits == []
    # Both allowed: followed.
    both = (f"127.0.0.1:{targets.port}", f"127.0.0.1:{elsewhere.port}")
    assert (await probe(both, type="http", url=url, follow_redirects=True)).success
    assert elsewhere_hits == ["/metadata"]


async def test_tcp_probe(targets):  # noqa: F811
    blocked = await probe(("10.0.0.0/8",), type="tcp", address=targets.tcp_address)
    assert (blocked.reason, blocked.message) == ("other", f"{targets.tcp_address} is not in allowed_targets")
    assert targets.tcp_accepted == 0
    assert (await probe((targets.tcp_address,), type="tcp", address=targets.tcp_address)).success
    await targets.wait_until(lambda: targets.tcp_accepted == 1)


async def test_redis_probe():
    assert (await probe(("127.0.0.1/32",), type="redis", url=REDIS)).success
    blocked = await probe(("10.0.0.0/8",), type="redis", url=REDIS)
    assert (blocked.reason, blocked.message) == ("other", "127.0.0.1:6379 is not in allowed_targets")
    by_name = await probe(("10.0.0.0/8",), type="redis", url="redis://localhost:6379/11")
    assert "localhost:6379 resolves to" in by_name.message
    unix = await probe(("127.0.0.0/8",), type="redis", url="unix:///tmp/redis.sock")
    assert (unix.reason, unix.message) == ("other", "unix socket /tmp/redis.sock is not covered by allowed_targets")


async def test_postgres_probe():
    assert (await probe(("127.0.0.1:5432",), type="postgres", url=PG)).success
    assert (await probe(("127.0.0.0/8",), type="postgres", url=PG.replace("127.0.0.1", "localhost"))).success
    blocked = await probe(("10.0.0.0/8",), type="postgres", url=PG)
    assert (blocked.reason, blocked.message) == ("other", "127.0.0.1:5432 is not in allowed_targets")
    given = await probe(("10.0.0.0/8",), type="postgres", url=PG + "?hostaddr=127.0.0.1")
    assert given.reason == "other"
    socket_dir = await probe(("127.0.0.0/8",), type="postgres", url="postgresql:///postgres?host=/var/run/postgresql")
    assert socket_dir.message == "unix socket /var/run/postgresql is not covered by allowed_targets"


async def test_sidecar_probe_refused_by_allowed_targets(make_sidecar, targets):  # noqa: F811
    app = make_sidecar(f"services:\n  - name: api\n    url: {targets.url('/healthy')}\n"
                       "allowed_targets: [10.0.0.0/8]\n")
    async with running(app) as base, aiohttp.ClientSession() as http:
        async with http.post(base + "/api/health/services", json={"service": "api"}) as resp:
            assert resp.status == 200
            health = await resp.json()
    assert health["status"] == "unhealthy"
    assert health["metadata"]["probe"]["reason"] == "other"
    assert "is not in allowed_targets" in health["metadata"]["probe"]["message"]
    assert targets.hits["/healthy"] == 0
