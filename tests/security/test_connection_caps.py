"""Connection caps against hostile clients: one address cannot take every connection,
/healthz, /readyz and /metrics are answered from a reserve when the caps are full, and
idle keep-alive connections are closed after a short idle time. The last test floods a
real `usdcop-exporter serve` process with 1,000 idle and 700 header-dripping connections
from one address."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from exporter.api.limits import KEEPALIVE_TIMEOUT, WEB_SECURITY
from exporter.cli import main
from exporter.security.server import ConnectionGuard, client_key
from tests.support.sidecars import Sidecar, clean_env

from .conftest import HASH, limit_count, running
from .test_basic_auth import basic
from .test_limits import read_response

SERVICES = "services:\n  - name: svc\n    type: tcp\n    address: 127.0.0.1:1\n"


@pytest.fixture
def app(make_sidecar):
    return make_sidecar(SERVICES)


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


async def connect(base: str, source: str):
    port = int(base.rsplit(":", 1)[1])
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def exchange(base: str, source: str, path: str) -> tuple[int, dict, bytes]:
    """One request on a fresh connection from `source`; (status, headers, body)."""
    reader, writer = await connect(base, source)
    try:
        writer.write(request(path))
        return await asyncio.wait_for(read_response(reader), 10)
    finally:
        writer.close()


async def hold(base: str, source: str, count: int) -> list:
    """`count` admitted connections from `source`, each served once and then kept idle."""
    held = []
    for _ in range(count):
        reader, writer = await connect(base, source)
        writer.write(request("/healthz"))
        assert (await read_response(reader))[0] == 200
        held.append(writer)
    return held


def test_client_key_groups_an_ipv6_host_by_its_64():
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::7") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:10.1.2.3") == client_key("10.1.2.3") == "10.1.2.3"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key(None) == "" and client_key("") == ""


def test_serve_refuses_a_bad_cap_with_exit_2(capsys):
    assert main(["serve", "--max-connections", "10", "--max-connections-per-client", "20"]) == 2
    err = capsys.readouterr().err
    assert "--max-connections-per-client: must be at most EXPORTER_MAX_CONNECTIONS (10), got 20" in err


async def test_one_address_cannot_take_every_connection(app, registry):
    guard = ConnectionGuard(max_connections=8, max_per_client=2)
    async with running(app, guard) as base:
        held = await hold(base, "127.0.0.2", 2)
        status, headers, body = await exchange(base, "127.0.0.2", "/api/health/services")
        assert status == 429 and headers["retry-after"] == "1" and headers["connection"] == "close"
        answer = json.loads(body)
        assert answer["error"] == "too_many_connections" and "from this address" in answer["detail"]
        # another address is served as usual: one client's flood is its own problem
        status, headers, _ = await exchange(base, "127.0.0.1", "/api/health/services")
        assert status == 200
        assert guard.per_client["127.0.0.2"] == 2
        for writer in held:
            writer.close()
        async with asyncio.timeout(5):
            while guard.open:
                await asyncio.sleep(0.01)
        assert guard.admitted == 0 and guard.per_client == {}
        status, _, _ = await exchange(base, "127.0.0.2", "/api/health/services")
        assert status == 200
    assert limit_count(registry, "connections_per_client") == 1
    assert limit_count(registry, "connections") == 0


async def test_health_and_scrape_routes_are_answered_from_the_reserve(app, registry):
    guard = ConnectionGuard(max_connections=2, max_per_client=1, reserved=1)
    async with running(app, guard) as base:
        held = await hold(base, "127.0.0.2", 1) + await hold(base, "127.0.0.3", 1)
        assert guard.admitted == 2
        for path in ("/healthz", "/readyz", "/metrics"):
            status, headers, body = await exchange(base, "127.0.0.4", path)
            assert status == 200, (path, body[:200])
            assert headers["connection"] == "close"  # the reserve's place is not kept
        status, headers, body = await exchange(base, "127.0.0.4", "/api/health/services")
        assert status == 429 and json.loads(body)["error"] == "too_many_connections"
        # the address that holds its share is over its own cap, and still gets its scrape
        status, _, _ = await exchange(base, "127.0.0.2", "/metrics")
        assert status == 200
        # the reserve is bounded: with its one place taken, a health check is refused too
        assert guard.take_reserve()
        status, _, body = await exchange(base, "127.0.0.4", "/healthz")
        assert status == 429
        guard.give_back_reserve()
        assert guard.reserve_in_use == 0
        for writer in held:
            writer.close()
    assert limit_count(registry, "connections") == 2
    assert limit_count(registry, "connections_per_client") == 0


async def test_a_refusal_from_the_reserve_closes_the_connection_too(make_sidecar):
    app = make_sidecar(SERVICES, web_config=f"basic_auth_users:\n  prometheus: {HASH}\n")
    guard = ConnectionGuard(max_connections=1, max_per_client=1)
    async with running(app, guard) as base:
        held = await connect(base, "127.0.0.2")  # takes the only place
        app[WEB_SECURITY]._now.basic_auth._queue = 0  # every password check is refused: 429
        for headers in ("", f"Authorization: {basic('prometheus', 'pw')}\r\n"):
            reader, writer = await connect(base, "127.0.0.3")
            writer.write(f"GET /metrics HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
            status, answer, _ = await asyncio.wait_for(read_response(reader), 10)
            assert status == (429 if headers else 401)  # refused, from the reserve
            assert answer["connection"] == "close"  # and not kept open
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
        assert guard.reserve_in_use == 0
        held[1].close()


async def test_an_idle_keep_alive_connection_is_closed_after_a_short_idle_time(app):
    async with running(app) as base:
        reader, writer = await connect(base, "127.0.0.1")
        writer.write(request("/healthz"))
        status, headers, _ = await read_response(reader)
        assert status == 200 and headers.get("connection", "keep-alive").lower() != "close"
        started = time.monotonic()
        # the server closes it: EOF, well before the former 75 s
        assert await asyncio.wait_for(reader.read(), KEEPALIVE_TIMEOUT + 10) == b""
        assert time.monotonic() - started >= KEEPALIVE_TIMEOUT - 1
        writer.close()


# -- a real process under a flood from one address ----------------------------------------

IDLE, DRIPPING = 1000, 700
ATTACKER = "127.0.0.2"
ROOT = Path(__file__).resolve().parents[2]
FLOOD_SECONDS = 13.0  # past the 10 s header deadline: cut connections come straight back


def _enough_descriptors(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {needed} sockets needed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))  # the sidecar inherits it


@pytest.mark.slow
async def test_a_flood_of_idle_and_dripping_connections_leaves_health_and_scrapes_answering(tmp_path):
    _enough_descriptors(2 * (IDLE + DRIPPING) + 512)
    cfg = tmp_path / "services.yaml"
    cfg.write_text(SERVICES)
    sidecar = Sidecar(["--config", str(cfg)], clean_env(tmp_path)).wait_ready()
    port = int(sidecar.base.rsplit(":", 1)[1])
    flood = subprocess.Popen([sys.executable, "-m", "tests.support.flood", str(port), ATTACKER,
                              str(IDLE), str(DRIPPING)], cwd=ROOT, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    checks: list[tuple[str, str, int | str, float]] = []
    try:
        assert await asyncio.to_thread(flood.stdout.readline) == "ready\n"
        ended = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < ended:
            for source in ("127.0.0.1", ATTACKER):  # another address, and the attacker's own
                connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
                async with aiohttp.ClientSession(connector=connector) as http:
                    for path in ("/healthz", "/metrics"):
                        started = time.monotonic()
                        try:
                            async with http.get(sidecar.base + path,
                                                timeout=aiohttp.ClientTimeout(total=1.0)) as resp:
                                await resp.read()
                                outcome: int | str = resp.status
                        except (TimeoutError, aiohttp.ClientError) as exc:
                            outcome = type(exc).__name__
                        checks.append((source, path, outcome, time.monotonic() - started))
            await asyncio.sleep(0.2)
        scraped = await asyncio.to_thread(sidecar.get, "/metrics")
    finally:
        opened_text, _ = await asyncio.to_thread(flood.communicate, "", 60)
        code = sidecar.stop()
    opened = int(opened_text.split()[-1])
    failed = [c for c in checks if c[2] != 200]
    assert not failed, f"{len(failed)} of {len(checks)} checks failed, e.g. {failed[:5]}"
    assert len(checks) >= 40
    assert opened > IDLE + DRIPPING  # the header deadline cut some, and they came back
    status, text = scraped
    assert status == 200
    header_cuts = float(re.search(r'usdcop_limit_rejections_total\{limit="header"\} (\S+)', text)[1])
    assert header_cuts >= 1
    assert code == 0
    assert not [line for line in sidecar.lines if "out of system resource" in line]


@pytest.mark.slow
def test_serve_lifts_its_open_file_limit_to_the_hard_limit(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard limit leaves nothing to raise")
    cfg = tmp_path / "services.yaml"
    cfg.write_text(SERVICES)

    # the soft limit many hosts start services with is 1,024; start this one lower still
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        sidecar = Sidecar(["--config", str(cfg)], clean_env(tmp_path))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        sidecar.wait_ready()
        limits = Path(f"/proc/{sidecar.proc.pid}/limits").read_text()
    finally:
        sidecar.stop()
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    wanted = str(1 << 20 if hard == resource.RLIM_INFINITY else min(hard, 1 << 20))
    assert line.split()[3] == wanted, line
