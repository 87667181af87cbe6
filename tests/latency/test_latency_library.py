"""The engine-side kit built from the environment: defaults, bad values named, forwarding on."""

from __future__ import annotations

import asyncio

import prometheus_client
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.api.latency import MONITOR
from exporter.config.errors import ConfigError
from exporter.latency import LatencyLibrary, PairLimitError
from tests.support.tools import free_port


def test_defaults_stay_in_process():
    kit = LatencyLibrary.from_env({})
    assert kit.forwarder is None
    assert kit.monitor.window_size == 10_000 and kit.guard.max_pairs == 500
    assert kit.performance.service_name == "app"
    kit.monitor.record_latency("lib-default", "op", 12)
    kit.performance.end_operation(kit.performance.start_operation("step"))
    assert (
        kit.registry.get_sample_value(
            "usdcop_operation_latency_seconds_count", {"service": "lib-default", "operation": "op"}
        )
        == 1
    )
    assert (
        kit.registry.get_sample_value(
            "usdcop_operation_latency_seconds_count", {"service": "app", "operation": "step"}
        )
        == 1
    )
    assert (
        prometheus_client.REGISTRY.get_sample_value(
            "usdcop_operation_latency_seconds_count", {"service": "lib-default", "operation": "op"}
        )
        is None
    )
    kit.close()


def test_monitor_and_performance_share_one_guard():
    kit = LatencyLibrary.from_env({"LATENCY_MAX_PAIRS": "1", "LATENCY_WINDOW": "3"})
    kit.monitor.record_latency("svc", "op", 1)
    with pytest.raises(PairLimitError):
        kit.performance.start_operation("another")
    for _ in range(5):
        kit.monitor.record_latency("svc", "op", 1)
    assert len(kit.monitor) == 3
    assert kit.registry.get_sample_value("usdcop_latency_pairs_rejected_total") == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LATENCY_WINDOW": "0"}, "field 'LATENCY_WINDOW': must be an integer between 1 and"),
        ({"LATENCY_WINDOW": "ten"}, "field 'LATENCY_WINDOW': must be an integer"),
        ({"LATENCY_MAX_PAIRS": "-5"}, "field 'LATENCY_MAX_PAIRS': must be an integer"),
        ({"EXPORTER_SERVICE_NAME": "my app"}, "field 'EXPORTER_SERVICE_NAME': must match"),
        (
            {"EXPORTER_URL": "localhost:9322"},
            "field 'EXPORTER_URL': forwarding url must be http(s)",
        ),
        ({"EXPORTER_API_TOKEN": "a", "EXPORTER_API_TOKEN_FILE": "/x"}, "not both"),
        (
            {"EXPORTER_API_TOKEN_FILE": "/nonexistent/token"},
            "field 'EXPORTER_API_TOKEN_FILE': cannot read",
        ),
    ],
)
def test_bad_environment_is_named(env, message):
    with pytest.raises(ConfigError) as err:
        LatencyLibrary.from_env(env)
    assert message in str(err.value)


def test_secret_never_in_the_error(tmp_path):
    empty = tmp_path / "token"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        LatencyLibrary.from_env({"EXPORTER_API_TOKEN_FILE": str(empty)})
    with pytest.raises(ConfigError) as err:
        LatencyLibrary.from_env({"EXPORTER_API_TOKEN": "hunter2", "EXPORTER_API_TOKEN_FILE": "/x"})
    assert "hunter2" not in str(err.value)


async def test_forwarding_from_the_environment(aiohttp_server, make_latency_app, tmp_path):
    seen = []

    @web.middleware
    async def note(request, handler):
        seen.append(request.headers.get("Authorization"))
        return await handler(request)

    server = await aiohttp_server(
        make_latency_app(CollectorRegistry(), middlewares=[note]),
        host="127.0.0.1",
        port=free_port(),
    )
    token = tmp_path / "token"
    token.write_text("file-token\n")
    kit = LatencyLibrary.from_env(
        {
            "EXPORTER_URL": str(server.make_url("")),
            "EXPORTER_API_TOKEN_FILE": str(token),
            "EXPORTER_SERVICE_NAME": "usdcop-engine",
        }
    )
    try:

        @kit.performance.measure("execute_trade")
        async def trade():
            return "done"

        assert await trade() == "done"
        kit.monitor.record_latency("trading-engine", "process_signal", 42.0)
        assert await asyncio.to_thread(kit.forwarder.flush, 30)
    finally:
        await asyncio.to_thread(kit.close)
    monitor = server.app[MONITOR]
    assert monitor.get_latency_stats("usdcop-engine", "execute_trade")["count"] == 1
    assert monitor.get_latency_stats("trading-engine", "process_signal")["mean_ms"] == 42.0
    assert set(seen) == {"Bearer file-token"}


def test_from_the_sidecar_settings():
    from exporter.settings import load_settings

    settings = load_settings(
        {
            "LATENCY_WINDOW": "7",
            "LATENCY_MAX_PAIRS": "3",
            "EXPORTER_SERVICE_NAME": "engine-2",
            "EXPORTER_URL": "http://127.0.0.1:9/",
            "EXPORTER_API_TOKEN": "t0k",
        }
    )
    kit = LatencyLibrary.from_settings(settings)
    try:
        assert (kit.monitor.window_size, kit.guard.max_pairs) == (7, 3)
        assert kit.performance.service_name == "engine-2"
        assert (
            kit.forwarder is not None
            and kit.forwarder.url == "http://127.0.0.1:9/api/health/latency"
        )
    finally:
        kit.close()
    assert LatencyLibrary.from_settings(load_settings({})).forwarder is None
