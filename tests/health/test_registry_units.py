"""ServiceRegistry.register: numbers are seconds, and millisecond-sized ones are refused."""

import pytest

from exporter.config.errors import ConfigError
from exporter.health.checker import HealthChecker
from exporter.health.registry import ServiceRegistry

URL = "http://127.0.0.1:1/health"


def test_milliseconds_passed_as_seconds_are_refused_saying_the_unit():
    registry = ServiceRegistry()
    with pytest.raises(ConfigError) as info:
        registry.register("api", url=URL, check_interval=30000, timeout=5000)
    assert str(info.value) == (
        "service 'api': field 'timeout': must be more than 0s and at most 10m, got 5000: "
        "the unit is seconds (5000 s is 1h23m20s); for milliseconds write '5000ms'"
    )
    with pytest.raises(ConfigError) as info:
        registry.register("api", url=URL, check_interval=90_000_000)
    assert info.value.field == "interval"
    assert "at most 1d, got 90000000: the unit is seconds (90000000 s is 1041d16h)" in str(info.value)
    assert "api" not in registry and registry.version == 0  # nothing registered
    checker = HealthChecker()
    with pytest.raises(ConfigError, match="the unit is seconds"):
        checker.register_service("api", url=URL, timeout=601)
    assert checker.states == {}


def test_seconds_and_strings_within_the_limits_are_taken():
    registry = ServiceRegistry()
    svc = registry.register("api", url=URL, check_interval=86400, timeout=600)
    assert (svc.interval, svc.timeout) == (86400.0, 600.0)
    svc = registry.register("api", url=URL, check_interval="30s", timeout="5000ms")
    assert (svc.interval, svc.timeout) == (30.0, 5.0)
