"""Redis and Postgres probes against private servers that are stopped, frozen (SIGSTOP)
and restarted: a clear reason each time, the API keeps answering while a probe hangs,
and the first probe after the server is back is healthy again. No restart needed."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp
import pytest

from tests.support.private_pg import PrivatePostgres
from tests.support.tools import require_initdb

from .conftest import running

pytestmark = pytest.mark.slow

RECOVERY: dict[str, float] = {}  # case -> seconds from "server back" to a healthy answer


async def _probe(http, base, name):
    async with http.post(base + "/api/health/services", json={"service": name}) as resp:
        assert resp.status == 200
        health = await resp.json()
    return health["status"], health["metadata"]["probe"].get("reason"), health["metadata"]["probe"].get("message")


async def _recovered(http, base, name, case):
    start = time.monotonic()
    status, reason, message = await _probe(http, base, name)
    assert (status, reason) == ("healthy", None), (case, message)
    RECOVERY[case] = time.monotonic() - start


async def test_redis_stopped_frozen_restarted(make_sidecar, private_redis):
    app = make_sidecar(f"services:\n  - {{name: cache, type: redis, url: '{private_redis.url}', timeout: 1s}}\n")
    async with running(app) as base, aiohttp.ClientSession() as http:
        assert (await _probe(http, base, "cache"))[0] == "healthy"

        await asyncio.to_thread(private_redis.stop)
        status, reason, message = await _probe(http, base, "cache")
        assert (status, reason) == ("unhealthy", "connect")
        assert message == f"127.0.0.1:{private_redis.port}: cannot connect"
        await asyncio.to_thread(private_redis.start)
        await _recovered(http, base, "cache", "redis stopped, started")

        private_redis.freeze()
        try:
            hanging = asyncio.create_task(_probe(http, base, "cache"))
            async with http.get(base + "/api/health/services") as resp:  # answers meanwhile
                assert resp.status == 200
            status, reason, message = await hanging
            assert (status, reason) == ("unhealthy", "timeout")
        finally:
            private_redis.thaw()
        await _recovered(http, base, "cache", "redis frozen, thawed")

        await asyncio.to_thread(private_redis.restart)
        await _recovered(http, base, "cache", "redis restarted")


@pytest.fixture(scope="module")
def private_pg():
    """One private Postgres cluster for this module (initdb costs a few seconds)."""
    require_initdb()
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


def _postmaster_pid(server: PrivatePostgres) -> int:
    return int((server.data / "postmaster.pid").read_text().splitlines()[0])


async def test_postgres_stopped_frozen_restarted(make_sidecar, private_pg):
    app = make_sidecar(f"services:\n  - {{name: db, type: postgres, url: '{private_pg.dsn()}', timeout: 1s}}\n")
    async with running(app) as base, aiohttp.ClientSession() as http:
        assert (await _probe(http, base, "db"))[0] == "healthy"

        await asyncio.to_thread(private_pg.stop)
        status, reason, message = await _probe(http, base, "db")
        assert (status, reason) == ("unhealthy", "connect"), message
        assert "refused" in message.lower()
        await asyncio.to_thread(private_pg.start)
        await _recovered(http, base, "db", "postgres stopped, started")

        pid = _postmaster_pid(private_pg)
        os.kill(pid, signal.SIGSTOP)
        try:
            hanging = asyncio.create_task(_probe(http, base, "db"))
            async with http.get(base + "/healthz") as resp:
                assert resp.status == 200
            status, reason, message = await hanging
            assert (status, reason) == ("unhealthy", "timeout"), message
        finally:
            os.kill(pid, signal.SIGCONT)
        await _recovered(http, base, "db", "postgres frozen, thawed")

        await asyncio.to_thread(private_pg.stop, "immediate")  # a crash
        assert (await _probe(http, base, "db"))[:2] == ("unhealthy", "connect")
        await asyncio.to_thread(private_pg.start)
        await _recovered(http, base, "db", "postgres crashed, restarted")


def teardown_module(module):
    if RECOVERY:
        print("\nrecovery (first probe after the server is back):")
        for case, seconds in RECOVERY.items():
            print(f"  {case:30} healthy on the first probe, {seconds * 1000:.0f} ms")
