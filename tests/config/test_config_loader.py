"""services.yaml that is valid loads into exactly the expected frozen dataclasses."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import trustme

from exporter.config import (
    Condition,
    Config,
    ConfigError,
    Defaults,
    ServiceConfig,
    TLSConfig,
    build_service_config,
    diff_configs,
    load_config,
    parse_config,
    resolve_check,
    service_from_options,
)

GOOD = Path(__file__).parent / "good"
REPO = Path(__file__).resolve().parents[2]
CANARY = "canary-7f3a91-secret"


def test_spec_example_loads_to_the_expected_dataclasses() -> None:
    path = GOOD / "spec-example.yaml"
    config = load_config(path, environ={"TRADING_API_TOKEN": CANARY})
    assert config.source == str(path)
    assert config.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert config.defaults == Defaults()
    assert config.allowed_targets == ("127.0.0.0/8", "10.0.0.0/8", "trading-api.internal:8001")
    assert config.services == (
        ServiceConfig(
            name="trading-api",
            type="http",
            url="http://localhost:8001/health",
            method="GET",
            headers=(("Authorization", f"Bearer {CANARY}"),),
            expect_status=("2xx",),
            body_format="auto",
            max_body=1 << 20,
            follow_redirects=False,
            tls=TLSConfig(verify=True, ca_file=None, server_name=None),
            conditions=(
                Condition("[STATUS] == 200", "STATUS", (), "==", 200.0),
                Condition("[RESPONSE_TIME] < 800ms", "RESPONSE_TIME", (), "<", 0.8),
                Condition("[BODY].details.error_rate < 0.05", "BODY", ("details", "error_rate"), "<", 0.05),
            ),
            labels=(("team", "trading"), ("tier", "critical")),
        ),
        ServiceConfig(name="websocket", type="tcp", url="http://localhost:8080", address="localhost:8080"),
        ServiceConfig(name="redis", type="redis", url="redis://localhost:6379/0"),
        ServiceConfig(name="postgres", type="postgres", url="postgresql://localhost:5432/usdcop"),
        ServiceConfig(name="model-server", type="python", check="mypackage.checks:model_ready", critical=False),
    )
    assert [svc.line for svc in config.services] == [9, 23, 26, 29, 32]


def test_defaults_fill_unset_fields_and_services_override_them() -> None:
    config = load_config(GOOD / "overrides.yaml", environ={})
    assert config.defaults == Defaults(interval=15.0, timeout=2.0, failure_threshold=3, critical=False)
    edge, quiet = config.services
    assert edge == ServiceConfig(
        name="edge", type="http", url="https://edge.internal:8443/status",
        interval=90.0, timeout=2.0, degraded_latency=0.25, failure_threshold=3, success_threshold=2,
        critical=True, method="HEAD", expect_status=("200", "204", "3xx"), body_format="none",
        max_body=64 << 10, follow_redirects=True,
        tls=TLSConfig(verify=False, server_name="edge.example.com"),
        conditions=(
            Condition("[STATUS] != 503", "STATUS", (), "!=", 503.0),
            Condition("[CERTIFICATE_EXPIRATION] > 14d", "CERTIFICATE_EXPIRATION", (), ">", 14 * 86400.0),
        ),
    )
    assert quiet == ServiceConfig(
        name="quiet_one", type="tcp", address="[::1]:9000", interval=15.0, timeout=2.0,
        failure_threshold=3, critical=False,
        conditions=(Condition("[RESPONSE_TIME] <= 1.5s", "RESPONSE_TIME", (), "<=", 1.5),),
    )
    assert (edge.line, quiet.line) == (9, 24)


def test_the_shipped_services_yaml_loads_without_any_environment() -> None:
    config = load_config(REPO / "services.yaml", environ={})
    by_name = {svc.name: svc for svc in config.services}
    assert list(by_name) == ["trading-api", "ml-analytics", "pipeline-api", "websocket", "postgres", "redis"]
    assert by_name["trading-api"].url == "http://localhost:8001/health"
    assert by_name["ml-analytics"].url == "http://localhost:8002/health"
    assert by_name["pipeline-api"].url == "http://localhost:8000/health"
    assert (by_name["websocket"].type, by_name["websocket"].url) == ("websocket", "ws://localhost:8080/ws")
    assert (by_name["websocket"].send, by_name["websocket"].expect) == ('{"op": "ping"}', '"(pong|tick)"')
    assert by_name["postgres"].url == "postgresql://localhost:5432/usdcop"
    assert by_name["redis"].url == "redis://localhost:6379/0"
    assert all(len(svc.labels) <= 5 for svc in config.services)


def test_the_shipped_services_yaml_follows_the_environment() -> None:
    environ = {
        "TRADING_API_URL": "http://trading:9001",
        "ML_ANALYTICS_URL": "https://ml.internal",
        "PIPELINE_API_URL": "http://pipeline:9000",
        "WS_URL": "ws://stream.internal:9080",
        "POSTGRES_URL": "postgresql://writer:pw@db:5432/usdcop",
        "REDIS_URL": "rediss://cache:6380/2",
    }
    by_name = {svc.name: svc for svc in load_config(REPO / "services.yaml", environ=environ).services}
    assert by_name["trading-api"].url == "http://trading:9001/health"
    assert by_name["ml-analytics"].url == "https://ml.internal/health"
    assert by_name["pipeline-api"].url == "http://pipeline:9000/health"
    assert by_name["websocket"].url == "ws://stream.internal:9080/ws"
    assert by_name["postgres"].url == "postgresql://writer:pw@db:5432/usdcop"
    assert by_name["redis"].url == "rediss://cache:6380/2"


def test_empty_service_list_is_valid() -> None:
    config = parse_config("services: []\n")
    assert config.services == ()
    assert config.source == "<string>"
    assert config.digest == hashlib.sha256(b"services: []\n").hexdigest()


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("${HOST:-localhost}", {}, "http://localhost:8001/x"),
        ("${HOST:-localhost}", {"HOST": ""}, "http://localhost:8001/x"),
        ("${HOST:-localhost}", {"HOST": "api.internal"}, "http://api.internal:8001/x"),
        ("${HOST}", {"HOST": "api.internal"}, "http://api.internal:8001/x"),
        ("${HOST:-a}-$${HOST}", {}, "http://a-${HOST}:8001/x"),
    ],
)
def test_env_expansion(text: str, environ: dict[str, str], expected: str) -> None:
    yaml_text = f'services:\n  - name: api\n    url: "http://{text}:8001/x"\n'
    if "$$" in text:  # a literal ${...} cannot be a host; check the expansion through a label
        yaml_text = f'services:\n  - name: api\n    url: http://h/x\n    labels: {{l: "{text}"}}\n'
        assert parse_config(yaml_text, environ=environ).services[0].labels == (("l", "a-${HOST}"),)
        return
    assert parse_config(yaml_text, environ=environ).services[0].url == expected


def test_expanded_strings_may_stand_for_numbers_and_booleans() -> None:
    text = (
        "services:\n  - name: api\n    url: http://h/x\n"
        "    failure_threshold: ${FT:-3}\n    critical: ${CRIT}\n    expect_status: [\"${CODE}\"]\n"
    )
    svc = parse_config(text, environ={"CRIT": "false", "CODE": "204"}).services[0]
    assert (svc.failure_threshold, svc.critical, svc.expect_status) == (3, False, ("204",))


def test_os_environ_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USDCOP_TEST_TARGET", "from-os-environ")
    svc = parse_config("services:\n  - name: api\n    url: http://${USDCOP_TEST_TARGET}/x\n").services[0]
    assert svc.url == "http://from-os-environ/x"


def test_ca_file_is_resolved_relative_to_the_config_file(tmp_path: Path) -> None:
    ca = trustme.CA()
    (tmp_path / "certs").mkdir()
    ca.cert_pem.write_to_path(str(tmp_path / "certs" / "ca.pem"))
    (tmp_path / "services.yaml").write_text(
        "services:\n  - name: api\n    url: https://localhost:8443/\n    tls: {ca_file: certs/ca.pem}\n"
    )
    config = load_config(tmp_path / "services.yaml", environ={})
    assert config.services[0].tls.ca_file == str(tmp_path / "certs" / "ca.pem")


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yaml", environ={})
    assert str(info.value) == f"{tmp_path / 'absent.yaml'}: cannot read the file: No such file or directory"
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    assert str(info.value) == f"{tmp_path}: cannot read the file: Is a directory"


def test_a_file_over_one_mebibyte_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    padding = "# " + "x" * 78 + "\n"
    path.write_text("services: []\n" + padding * (1 + (1 << 20) // len(padding)))
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == f"{path}: file is larger than 1MiB ({(1 << 20) + 1} bytes)"


def test_very_deep_nesting_is_refused_without_recursion() -> None:
    depth = 100_000
    with pytest.raises(ConfigError) as info:
        parse_config("services: " + "[" * depth + "]" * depth + "\n")
    assert str(info.value) == "<string>:1: nested deeper than 32 levels"


def test_a_thousand_services_load() -> None:
    items = "".join(f"  - name: svc-{i}\n    url: http://10.0.{i // 250}.{i % 250}:8000/health\n" for i in range(1000))
    config = parse_config("services:\n" + items)
    assert len(config.services) == 1000
    assert config.services[999].line == 2 + 2 * 999


def test_config_is_frozen() -> None:
    config = parse_config("services:\n  - name: api\n    url: http://h/x\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.services[0].url = "http://elsewhere/"  # type: ignore[misc]


def test_diff_configs_names_added_removed_and_changed() -> None:
    old = parse_config(
        "services:\n  - name: a\n    url: http://h/a\n  - name: b\n    url: http://h/b\n"
        "  - name: c\n    url: http://h/c\n"
    )
    new = parse_config(
        "# moved around: lines differ, but only real changes count\n"
        "services:\n  - name: c\n    url: http://h/c\n  - name: b\n    url: http://h/b2\n"
        "  - name: d\n    url: http://h/d\n"
    )
    diff = diff_configs(old, new)
    assert diff == (("d",), ("a",), ("b",))
    assert (diff.added, diff.removed, diff.changed) == (("d",), ("a",), ("b",))
    assert diff_configs(new, new) == ((), (), ())


def test_a_changed_default_changes_the_services_that_use_it() -> None:
    old = parse_config("services:\n  - name: a\n    url: http://h/a\n  - name: b\n    url: http://h/b\n    interval: 30s\n")
    new = parse_config("defaults: {interval: 10s}\n" + "services:\n  - name: a\n    url: http://h/a\n  - name: b\n    url: http://h/b\n    interval: 30s\n")
    assert diff_configs(old, new) == ((), (), ("a",))


def test_build_service_config_takes_python_values() -> None:
    svc = build_service_config({"name": "trading-api", "url": "http://localhost:8001/health",
                                "interval": 30, "timeout": "2s", "max_body": 4096,
                                "conditions": ["[STATUS] == 200"], "labels": {"team": "trading"}})
    assert (svc.interval, svc.timeout, svc.max_body) == (30.0, 2.0, 4096)
    assert svc.conditions[0].value == 200.0

    async def ready() -> dict:
        return {"success": True}

    custom = build_service_config({"name": "custom", "interval": 60}, check_fn=ready)
    assert (custom.type, custom.check, custom.check_fn) == ("python", None, ready)
    with pytest.raises(ConfigError) as info:
        build_service_config({"name": "api", "url": "http://h/", "interval": 0})
    assert str(info.value) == "service 'api': field 'interval': must be more than 0s and at most 1d, got 0"
    with pytest.raises(ConfigError) as info:
        build_service_config({"name": "api", "url": "http://h/", "retries": 3})
    assert str(info.value) == "service 'api': field 'retries': unknown field"


def test_service_from_options_is_what_register_needs() -> None:
    async def probe() -> dict:
        return {"success": True, "latency_ms": 1.0}

    svc = service_from_options("trading-api", url="http://localhost:8001/health", interval=30, timeout="5s",
                               follow_redirects=True, critical=False)
    assert svc == ServiceConfig(name="trading-api", type="http", url="http://localhost:8001/health",
                                follow_redirects=True, critical=False)
    custom = service_from_options("custom-service", interval=60, health_check=probe,
                                  defaults=Defaults(timeout=2.0, failure_threshold=3))
    assert (custom.type, custom.interval, custom.timeout, custom.failure_threshold) == ("python", 60.0, 2.0, 3)
    assert custom.check_fn is probe
    with pytest.raises(ConfigError) as info:
        service_from_options("Bad Name", url="http://h/")
    assert str(info.value) == (
        "service 'Bad Name': field 'name': invalid value 'Bad Name': lower-case letters, digits, _ and -, "
        "up to 63, starting with a letter or digit"
    )
    with pytest.raises(ConfigError) as info:
        service_from_options("api", url="http://h/", interval="30")
    assert str(info.value).startswith("service 'api': field 'interval': invalid duration '30': missing unit")


def test_resolve_check_imports_module_and_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "usdcop_checks_fixture.py").write_text("async def ready():\n    return {'success': True}\nNOT_CALLABLE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_check("usdcop_checks_fixture:ready").__name__ == "ready"
    with pytest.raises(ConfigError) as info:
        resolve_check("usdcop_checks_fixture:NOT_CALLABLE")
    assert str(info.value) == (
        "check 'usdcop_checks_fixture:NOT_CALLABLE': usdcop_checks_fixture:NOT_CALLABLE is not callable (it is int)"
    )
    with pytest.raises(ConfigError) as info:
        resolve_check("usdcop_no_such_module_xyz:ready")
    assert str(info.value) == (
        "check 'usdcop_no_such_module_xyz:ready': cannot import usdcop_no_such_module_xyz: "
        "ModuleNotFoundError: No module named 'usdcop_no_such_module_xyz'"
    )
    with pytest.raises(ConfigError) as info:
        resolve_check("no colon")
    assert str(info.value) == "invalid check 'no colon': expected module.path:function"


def test_loading_changes_nothing_on_disk(tmp_path: Path) -> None:
    shutil.copy(GOOD / "overrides.yaml", tmp_path / "services.yaml")
    before = sorted(os.listdir(tmp_path))
    config = load_config(tmp_path / "services.yaml", environ={})
    assert isinstance(config, Config)
    assert sorted(os.listdir(tmp_path)) == before
