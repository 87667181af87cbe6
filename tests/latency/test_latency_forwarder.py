"""Forwarding library records to a real sidecar on loopback: arrival, batching, auth, drops."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.api.latency import MONITOR
from exporter.latency import Forwarder, LatencyLibrary, LatencyMetrics, LatencyRecord
from tests.support.tools import free_port

TOKEN = "s3cret-token"


class Sidecar:
    """A real latency sidecar; it notes each request and checks the bearer token."""

    def __init__(self, server, requests):
        self.server = server
        self.requests = requests
        self.url = str(server.make_url("")).rstrip("/")

    @property
    def monitor(self):
        return self.server.app[MONITOR]


@pytest.fixture
async def sidecar(aiohttp_server, make_latency_app):
    requests = []

    @web.middleware
    async def bearer(request, handler):
        requests.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response(
                {"error": "unauthorized", "detail": "bad token", "field": None}, status=401
            )
        return await handler(request)

    app = make_latency_app(CollectorRegistry(), middlewares=[bearer])
    server = await aiohttp_server(app, host="127.0.0.1", port=free_port())
    return Sidecar(server, requests)


async def test_records_and_operations_arrive_at_the_sidecar(sidecar):
    kit = LatencyLibrary.build(exporter_url=sidecar.url, token=TOKEN, service_name="engine")
    try:
        for i in range(250):
            kit.monitor.record_latency(
                "trading-engine",
                "process_signal",
                10 + i % 5,
                success=i % 10 != 0,
                trace_id=f"t{i}",
            )
        with kit.performance.measure("model_inference"):
            pass
        assert await asyncio.to_thread(kit.forwarder.flush, 30)
    finally:
        await asyncio.to_thread(kit.close)
    got = sidecar.monitor.get_latency_stats("trading-engine", "process_signal")
    assert got["count"] == 250
    assert got["success_ratio"] == 0.9
    assert got["mean_ms"] == kit.monitor.get_latency_stats("trading-engine")["mean_ms"]
    assert sidecar.monitor.get_latency_stats("engine", "model_inference")["count"] == 1
    assert set(sidecar.requests) == {f"Bearer {TOKEN}"}
    assert kit.forwarder.sent == 251 and kit.forwarder.dropped == 0
    # batched: far fewer requests than records (the default batch is 500)
    assert 1 <= len(sidecar.requests) < 10
    assert kit.registry.get_sample_value("usdcop_forwarder_dropped_total") == 0


async def test_batches_are_bounded(sidecar):
    forwarder = Forwarder(sidecar.url, TOKEN, batch_size=100)
    try:
        for i in range(250):
            assert forwarder.submit(LatencyRecord("svc", "op", float(i)))
        assert await asyncio.to_thread(forwarder.flush, 30)
    finally:
        await asyncio.to_thread(forwarder.close)
    assert sidecar.monitor.get_latency_stats("svc", "op")["count"] == 250
    assert len(sidecar.requests) >= 3  # never more than 100 per request
    assert forwarder.sent == 250


async def test_a_refused_batch_is_dropped_and_counted(sidecar):
    registry = CollectorRegistry()
    forwarder = Forwarder(sidecar.url, "wrong-token", LatencyMetrics(registry), retries=3)
    try:
        for _ in range(7):
            forwarder.submit(LatencyRecord("svc", "op", 1.0))
        assert await asyncio.to_thread(forwarder.flush, 30)
    finally:
        await asyncio.to_thread(forwarder.close)
    assert forwarder.dropped == 7 and forwarder.sent == 0
    assert registry.get_sample_value("usdcop_forwarder_dropped_total") == 7
    assert len(sidecar.requests) == 1  # a 401 is final: no retries
    assert len(sidecar.monitor) == 0


async def test_sidecar_away_drops_and_counts():
    registry = CollectorRegistry()
    forwarder = Forwarder(
        f"http://127.0.0.1:{free_port()}", TOKEN, LatencyMetrics(registry), retries=1, backoff=0
    )
    try:
        for _ in range(5):
            assert forwarder.submit(LatencyRecord("svc", "op", 1.0))  # accepted into the buffer
        assert await asyncio.to_thread(forwarder.flush, 30)
    finally:
        await asyncio.to_thread(forwarder.close)
    assert forwarder.dropped == 5
    assert registry.get_sample_value("usdcop_forwarder_dropped_total") == 5


async def test_a_hung_sidecar_never_blocks_the_caller(aiohttp_server):
    entered, release = asyncio.Event(), asyncio.Event()
    received = []

    async def slow(request):
        entered.set()
        await release.wait()
        received.extend((await request.json())["records"])
        return web.json_response({"accepted": 1})

    app = web.Application()
    app.router.add_post("/api/health/latency", slow)
    server = await aiohttp_server(app, host="127.0.0.1", port=free_port())
    registry = CollectorRegistry()
    forwarder = Forwarder(
        str(server.make_url("/")),
        None,
        LatencyMetrics(registry),
        max_queue=5,
        batch_size=1,
        timeout=60,
    )
    try:
        assert forwarder.submit(LatencyRecord("svc", "op", 0.0))
        await entered.wait()  # the sender is now stuck in its request
        assert [forwarder.submit(LatencyRecord("svc", "op", float(i))) for i in range(1, 8)] == [
            True
        ] * 5 + [False] * 2
        assert forwarder.dropped == 2
        assert registry.get_sample_value("usdcop_forwarder_dropped_total") == 2
        release.set()
        assert await asyncio.to_thread(forwarder.flush, 30)
    finally:
        await asyncio.to_thread(forwarder.close)
    assert [r["latency_ms"] for r in received] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert "Authorization" not in str(received)


async def test_close_sends_what_is_queued_and_then_refuses(sidecar):
    forwarder = Forwarder(sidecar.url + "/", TOKEN, linger=60)
    forwarder.submit(LatencyRecord("svc", "op", 5.0, trace_id="abc"))
    await asyncio.to_thread(forwarder.close)
    assert sidecar.monitor.get_latency_stats("svc", "op")["count"] == 1
    assert not forwarder.submit(LatencyRecord("svc", "op", 5.0))
    assert forwarder.dropped == 1
    await asyncio.to_thread(forwarder.close)  # idempotent


@pytest.mark.parametrize(
    ("url", "kwargs", "message"),
    [
        ("ftp://host", {}, r"must be http\(s\)://host"),
        ("http://", {}, r"must be http\(s\)://host"),
        ("http://user:pw@host", {}, "credentials"),
        ("http://host?x=1", {}, "query"),
        ("http://host", {"batch_size": 1001}, "batch_size must be between 1 and 1000"),
        ("http://host", {"max_queue": 0}, "max_queue >= 1"),
    ],
)
def test_bad_forwarder_arguments(url, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Forwarder(url, **kwargs)
