"""The demo's simulated services, probed by the sidecar's own checker over loopback."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from exporter.config.loader import parse_config
from exporter.demo.config import demo_config, demo_config_text
from exporter.demo.services import (
    FLAKY_CYCLE,
    PortInUse,
    ServiceSpec,
    SimulatedServices,
    default_specs,
)
from exporter.health.checker import HealthChecker
from exporter.health.registry import ServiceRegistry

SLOW = 0.3


@pytest.fixture
async def services():
    async with SimulatedServices(default_specs((0, 0, 0, 0)), slow_delay=SLOW) as running:
        yield running


async def test_healthy_answers_the_seed_health_format(services):
    async with aiohttp.ClientSession() as session:
        async with session.get(services.url("trading-api")) as resp:
            assert resp.status == 200
            body = await resp.json()
        async with session.head(services.url("trading-api")) as resp:
            assert resp.status == 200
        async with session.get(services.url("trading-api").replace("/health", "/other")) as resp:
            assert resp.status == 404
    assert body["service"] == "trading-api" and body["status"] == "healthy"
    assert set(body) == {"service", "status", "latency_ms", "last_check", "details", "metadata"}
    assert set(body["details"]) == {"uptime", "requests_per_minute", "error_rate",
                                    "memory_usage_mb"}
    assert body["last_check"].endswith("+00:00")


async def test_flaky_fails_two_answers_in_six(services):
    async with aiohttp.ClientSession() as session:
        codes = []
        for _ in range(2 * FLAKY_CYCLE):
            async with session.get(services.url("pipeline-api")) as resp:
                body = await resp.json()
                codes.append((resp.status, body["status"]))
    cycle = [(200, "healthy")] * 3 + [(503, "unhealthy")] * 2 + [(200, "healthy")]
    assert codes == cycle * 2


async def test_down_refuses_connections():
    async with SimulatedServices([ServiceSpec("gone", "down", 0)]) as down:
        host, port = down.address("gone").rsplit(":", 1)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=2).close()
        config = parse_config(demo_config_text(down, interval=1.0), "demo.yaml")
        health = await HealthChecker(ServiceRegistry(config)).check_service("gone")
        assert (health["status"], health["metadata"]["probe"]["reason"]) == ("unhealthy", "connect")


async def test_stream_pushes_ticks_and_answers_pings(services):
    async with aiohttp.ClientSession() as session, session.ws_connect(services.url("websocket")) as ws:
        first = await ws.receive_json(timeout=5)
        assert (first["type"], first["symbol"], first["seq"]) == ("tick", "USDCOP", 1)
        await ws.send_str('{"op": "ping"}')
        while (message := await ws.receive_json(timeout=5)).get("type") == "tick":
            pass
        assert message == {"op": "pong"}


async def test_the_sidecar_sees_each_behaviour(services):
    """The generated services file is valid for the real loader, and the real checker
    finds healthy, degraded (slow), the stream healthy over WebSocket and the flaky one's
    failures."""
    config = parse_config(demo_config_text(services, interval=1.0), "demo.yaml")
    checker = HealthChecker(ServiceRegistry(config))
    got = {name: await checker.check_service(name) for name in
           ("trading-api", "ml-analytics", "websocket")}
    assert got["trading-api"]["status"] == "healthy"
    assert got["trading-api"]["details"]["requests_per_minute"] > 0
    assert got["ml-analytics"]["status"] == "degraded"
    assert got["ml-analytics"]["latency_ms"] >= SLOW * 1000
    assert got["websocket"]["status"] == "healthy"
    assert config.service("websocket").type == "websocket"
    phases = checker.states["websocket"].last_result.phases
    assert {"connect", "handshake", "first_message"} <= set(phases)
    # pipeline-api needs two failures in a row (failure_threshold 2): answers 4 and 5.
    flaky = [(await checker.check_service("pipeline-api"))["status"] for _ in range(FLAKY_CYCLE)]
    assert flaky == ["healthy", "healthy", "healthy", "healthy", "unhealthy", "healthy"]


def test_config_refers_to_secrets_by_variable(services):
    doc = demo_config(services, environ={"REDIS_URL": "redis://:secret@h/0",
                                         "POSTGRES_URL": "postgresql://u:pw@h/db"})
    by_name = {s["name"]: s for s in doc["services"]}
    assert by_name["redis"]["url"] == "${REDIS_URL}"
    assert by_name["postgres"]["url"] == "${POSTGRES_URL}"
    assert "secret" not in demo_config_text(services, environ={"REDIS_URL": "redis://:secret@h/0"})
    assert "redis" not in {s["name"] for s in demo_config(services, environ={})["services"]}


async def test_a_taken_port_names_the_service_and_binds_nothing():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        free_port = free.getsockname()[1]
        free.close()
        sims = SimulatedServices([ServiceSpec("a", "healthy", free_port),
                                  ServiceSpec("b", "slow", port)])
        with pytest.raises(PortInUse, match=rf"b \(slow\): cannot bind 127\.0\.0\.1:{port}"):
            await sims.start()
        # All or nothing: the first service's port was given back.
        with socket.socket() as again:
            again.bind(("127.0.0.1", free_port))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"specs": [ServiceSpec("a", "healthy", 0), ServiceSpec("a", "slow", 0)]}, "unique"),
    ({"slow_delay": -1}, "slow_delay"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimulatedServices(**kwargs)


@pytest.mark.parametrize(("args", "message"), [
    (("x", "sleepy", 0), "kind must be one of healthy, slow, flaky, down"),
    (("x", "healthy", 70000), "port must be 0 to 65535"),
])
def test_bad_specs_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        ServiceSpec(*args)
