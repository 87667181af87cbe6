"""Settings from the environment and flags: every variable, every bad value's message, secrets kept."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from exporter.settings import Settings, SettingsError, load_settings

CANARY = "Canary-7F3A91-Secret"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())


def test_defaults(not_a_terminal: None) -> None:
    s = load_settings({})
    assert s == Settings()
    assert (s.config, s.listen, s.shard, s.scheduler, s.service_name) == ("services.yaml", "0.0.0.0:9322", "0/1", True, "app")
    assert s.mirror_symbols == ("USDCOP",)
    assert (s.mirror_interval, s.mirror_max_symbols, s.mirror_max_custom) == (5.0, 50, 100)
    assert (s.signal_history_max, s.latency_window, s.latency_max_pairs) == (100, 10_000, 500)
    assert (s.audit_verify_interval, s.audit_checkpoint_events, s.audit_checkpoint_seconds) == (3600.0, 1000, 300.0)
    assert (s.audit_max_future_skew, s.audit_retention) == (300.0, 30 * 86400.0)
    assert (s.redis_url, s.postgres_url, s.postgres_admin_url, s.exporter_url) == (None, None, None, None)
    assert (s.api_token, s.admin_token, s.audit_checkpoint_key, s.web_config) == (None, None, None, None)
    assert (s.redis_namespace, s.audit_spool_max_bytes) == ("usdcop", 256 << 20)
    assert (s.audit_sqlite_path, s.audit_spool_dir, s.audit_checkpoint_dir) == (
        "./usdcop-audit.sqlite3", "./usdcop-spool", "./usdcop-checkpoints")
    assert (s.log_level, s.log_format) == ("info", "json")


def test_log_format_defaults_to_text_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert load_settings({}).log_format == "text"
    assert load_settings({"LOG_FORMAT": "JSON"}).log_format == "json"


def test_every_variable(tmp_path: Path, not_a_terminal: None) -> None:
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config: {}\n")
    env = {
        "EXPORTER_CONFIG": "/etc/usdcop/services.yaml",
        "EXPORTER_LISTEN": "[::1]:9400",
        "EXPORTER_WEB_CONFIG": str(web),
        "EXPORTER_API_TOKEN": "api-token-1234",
        "EXPORTER_ADMIN_TOKEN": "admin-token-5678",
        "EXPORTER_SHARD": "2/4",
        "EXPORTER_SCHEDULER": "off",
        "EXPORTER_SERVICE_NAME": "signal-engine",
        "MIRROR_SYMBOLS": "USDCOP, EURUSD,USDCOP,",
        "MIRROR_INTERVAL": "2s",
        "MIRROR_MAX_SYMBOLS": "10",
        "MIRROR_MAX_CUSTOM": "20",
        "SIGNAL_HISTORY_MAX": "250",
        "LATENCY_WINDOW": "5000",
        "LATENCY_MAX_PAIRS": "100",
        "AUDIT_VERIFY_INTERVAL": "30m",
        "AUDIT_CHECKPOINT_EVERY": "500 events or 1m",
        "AUDIT_MAX_FUTURE_SKEW": "1m",
        "EXPORTER_URL": "http://sidecar:9322/",
        "REDIS_URL": "redis://cache:6379/3",
        "REDIS_NAMESPACE": "usdcop_staging",
        "POSTGRES_URL": "postgresql://writer:w@db:5432/usdcop",
        "POSTGRES_ADMIN_URL": "postgresql://owner:o@db:5432/usdcop",
        "AUDIT_SQLITE_PATH": "/var/lib/usdcop/audit.sqlite3",
        "AUDIT_SPOOL_DIR": "/var/spool/usdcop",
        "AUDIT_SPOOL_MAX_BYTES": "1GiB",
        "AUDIT_RETENTION": "90d",
        "AUDIT_CHECKPOINT_KEY": "0123456789abcdef0123",
        "AUDIT_CHECKPOINT_DIR": "/var/lib/usdcop/checkpoints",
        "LOG_LEVEL": "WARN",
        "LOG_FORMAT": "text",
    }
    assert load_settings(env) == Settings(
        config="/etc/usdcop/services.yaml", listen_host="::1", listen_port=9400, web_config=str(web),
        api_token="api-token-1234", admin_token="admin-token-5678", shard_index=2, shard_count=4,
        scheduler=False, service_name="signal-engine", mirror_symbols=("USDCOP", "EURUSD"),
        mirror_interval=2.0, mirror_max_symbols=10, mirror_max_custom=20, signal_history_max=250,
        latency_window=5000, latency_max_pairs=100, audit_verify_interval=1800.0,
        audit_checkpoint_events=500, audit_checkpoint_seconds=60.0, audit_max_future_skew=60.0,
        exporter_url="http://sidecar:9322", redis_url="redis://cache:6379/3",
        redis_namespace="usdcop_staging", postgres_url="postgresql://writer:w@db:5432/usdcop",
        postgres_admin_url="postgresql://owner:o@db:5432/usdcop",
        audit_sqlite_path="/var/lib/usdcop/audit.sqlite3", audit_spool_dir="/var/spool/usdcop",
        audit_spool_max_bytes=1 << 30, audit_retention=90 * 86400.0,
        audit_checkpoint_key=b"0123456789abcdef0123", audit_checkpoint_dir="/var/lib/usdcop/checkpoints",
        log_level="warning", log_format="text",
    )


def test_flags_override_the_environment(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("{}\n")
    env = {"EXPORTER_CONFIG": "env.yaml", "EXPORTER_LISTEN": "0.0.0.0:1", "EXPORTER_SHARD": "0/2",
           "EXPORTER_SCHEDULER": "on", "LOG_LEVEL": "debug", "LOG_FORMAT": "text",
           "AUDIT_CHECKPOINT_DIR": "/env/checkpoints", "EXPORTER_WEB_CONFIG": "/nonexistent/web.yml"}
    s = load_settings(env, config="flag.yaml", listen="127.0.0.1:0", web_config=str(web), shard="1/2",
                      scheduler=False, log_level="fatal", log_format="json", checkpoint_dir="/flag/cp")
    assert (s.config, s.listen_host, s.listen_port, s.web_config) == ("flag.yaml", "127.0.0.1", 0, str(web))
    assert (s.shard, s.scheduler, s.log_level, s.log_format) == ("1/2", False, "critical", "json")
    assert s.audit_checkpoint_dir == "/flag/cp"
    # None means "flag not given": the environment applies.
    assert load_settings(env, config=None, web_config=str(web)).config == "env.yaml"


def test_an_unknown_flag_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="unknown flag override"):
        load_settings({}, lisen="0.0.0.0:1")


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [("127.0.0.1:0", "127.0.0.1", 0), ("[::1]:9322", "::1", 9322), (":9100", "0.0.0.0", 9100),
     ("localhost:65535", "localhost", 65535), ("[::]:9322", "::", 9322)],
)
def test_listen_forms(value: str, host: str, port: int) -> None:
    s = load_settings({"EXPORTER_LISTEN": value})
    assert (s.listen_host, s.listen_port) == (host, port)


@pytest.mark.parametrize(
    ("value", "events", "seconds"),
    [("1000", 1000, 300.0), ("5m", 1000, 300.0), ("200", 200, 300.0), ("10m", 1000, 600.0),
     ("1000,5m", 1000, 300.0), ("2m, 50", 50, 120.0), ("1000 events or 5m", 1000, 300.0),
     ("1 event or 30s", 1, 30.0), ("10 or 1h", 10, 3600.0)],
)
def test_checkpoint_every(value: str, events: int, seconds: float) -> None:
    s = load_settings({"AUDIT_CHECKPOINT_EVERY": value})
    assert (s.audit_checkpoint_events, s.audit_checkpoint_seconds) == (events, seconds)


@pytest.mark.parametrize(
    ("value", "level"),
    [("debug", "debug"), ("INFO", "info"), ("Warn", "warning"), ("warning", "warning"),
     ("error", "error"), ("FATAL", "critical"), ("critical", "critical")],
)
def test_log_levels(value: str, level: str) -> None:
    assert load_settings({"LOG_LEVEL": value}).log_level == level


@pytest.mark.parametrize(("value", "on"), [("on", True), ("OFF", False), ("true", True), ("0", False), ("1", True)])
def test_scheduler_switch(value: str, on: bool) -> None:
    assert load_settings({"EXPORTER_SCHEDULER": value}).scheduler is on


def test_redis_url_composed_from_host_port_password() -> None:
    s = load_settings({"REDIS_HOST": "cache.internal", "REDIS_PORT": "6380", "REDIS_PASSWORD": "p@ss/w:rd"})
    assert s.redis_url == "redis://:p%40ss%2Fw%3Ard@cache.internal:6380/0"
    assert load_settings({"REDIS_HOST": "::1"}).redis_url == "redis://[::1]:6379/0"
    both = {"REDIS_URL": "redis://primary:6379/1", "REDIS_HOST": "other", "REDIS_PASSWORD": "x"}
    assert load_settings(both).redis_url == "redis://primary:6379/1"


def test_postgres_admin_url_defaults_to_postgres_url() -> None:
    s = load_settings({"POSTGRES_URL": "postgresql://writer@db/usdcop"})
    assert s.postgres_admin_url == "postgresql://writer@db/usdcop"
    assert Settings(postgres_url="postgres://db/x").postgres_admin_url == "postgres://db/x"


def test_empty_variables_count_as_unset() -> None:
    assert load_settings({"EXPORTER_LISTEN": "", "EXPORTER_API_TOKEN": "", "REDIS_URL": ""}) == load_settings({})


def test_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "api").write_text("file-api-token\n")
    (tmp_path / "admin").write_bytes(b"file-admin-token\r\n")
    (tmp_path / "key").write_bytes(b"\x00\x01binary-key-material\xff\n")
    (tmp_path / "pg").write_text("postgresql://writer:pw@db/usdcop\n")
    (tmp_path / "redis").write_text("redis://:pw@cache:6379/0")
    s = load_settings({
        "EXPORTER_API_TOKEN_FILE": str(tmp_path / "api"),
        "EXPORTER_ADMIN_TOKEN_FILE": str(tmp_path / "admin"),
        "AUDIT_CHECKPOINT_KEY_FILE": str(tmp_path / "key"),
        "POSTGRES_URL_FILE": str(tmp_path / "pg"),
        "REDIS_URL_FILE": str(tmp_path / "redis"),
    })
    assert (s.api_token, s.admin_token) == ("file-api-token", "file-admin-token")
    assert s.audit_checkpoint_key == b"\x00\x01binary-key-material\xff"
    assert (s.postgres_url, s.redis_url) == ("postgresql://writer:pw@db/usdcop", "redis://:pw@cache:6379/0")


def _error(environ: dict[str, str], **flags: object) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(environ, **flags)
    return str(info.value)


@pytest.mark.parametrize(
    ("environ", "flags", "message"),
    [
        ({"EXPORTER_LISTEN": "9322"}, {}, "EXPORTER_LISTEN: invalid value '9322': expected HOST:PORT, e.g. 0.0.0.0:9322, 127.0.0.1:0 or [::1]:9322"),
        ({"EXPORTER_LISTEN": "::1:9322"}, {}, "EXPORTER_LISTEN: invalid value '::1:9322': put an IPv6 address in brackets, e.g. [::1]:9322"),
        ({"EXPORTER_LISTEN": "[zz]:1"}, {}, "EXPORTER_LISTEN: invalid value '[zz]:1': expected HOST:PORT, e.g. 0.0.0.0:9322, 127.0.0.1:0 or [::1]:9322"),
        ({"EXPORTER_LISTEN": "0.0.0.0:70000"}, {}, "EXPORTER_LISTEN: must be between 0 and 65535, got 70000"),
        ({"EXPORTER_LISTEN": "bad host:1"}, {}, "EXPORTER_LISTEN: invalid host in 'bad host:1': expected HOST:PORT, e.g. 0.0.0.0:9322, 127.0.0.1:0 or [::1]:9322"),
        ({}, {"listen": "0.0.0.0:port"}, "--listen: expected a whole number, got 'port'"),
        ({"EXPORTER_SHARD": "4/4"}, {}, "EXPORTER_SHARD: invalid value '4/4': need 0 <= i < N (shards are numbered from 0)"),
        ({"EXPORTER_SHARD": "1"}, {}, "EXPORTER_SHARD: invalid value '1': expected i/N, e.g. 0/1 or 2/4"),
        ({}, {"shard": "0/0"}, "--shard: invalid value '0/0': need 0 <= i < N (shards are numbered from 0)"),
        ({"EXPORTER_SCHEDULER": "maybe"}, {}, "EXPORTER_SCHEDULER: expected on or off (also true/false, 1/0), got 'maybe'"),
        ({"EXPORTER_WEB_CONFIG": "/nonexistent/web.yml"}, {}, "EXPORTER_WEB_CONFIG: cannot read the file '/nonexistent/web.yml'"),
        ({}, {"web_config": "/nonexistent/web.yml"}, "--web-config: cannot read the file '/nonexistent/web.yml'"),
        ({"EXPORTER_SERVICE_NAME": "my app"}, {}, "EXPORTER_SERVICE_NAME: invalid value 'my app': letters, digits, _ . -, up to 63"),
        ({"MIRROR_SYMBOLS": "USDCOP,usd"}, {}, "MIRROR_SYMBOLS: invalid symbol 'usd': 3 to 12 of A-Z and 0-9"),
        ({"MIRROR_SYMBOLS": "USDCOP,EURUSD", "MIRROR_MAX_SYMBOLS": "1"}, {}, "MIRROR_SYMBOLS: lists 2 symbols, more than MIRROR_MAX_SYMBOLS (1)"),
        ({"MIRROR_INTERVAL": "5"}, {}, "MIRROR_INTERVAL: invalid duration '5': missing unit; expected a number and a unit (ms, s, m, h, d), e.g. 250ms, 30s, 2m, 1h, 30d or 1m30s"),
        ({"MIRROR_INTERVAL": "0s"}, {}, "MIRROR_INTERVAL: must be longer than 0s, got '0s'"),
        ({"MIRROR_MAX_CUSTOM": "0"}, {}, "MIRROR_MAX_CUSTOM: must be between 1 and 100000, got 0"),
        ({"SIGNAL_HISTORY_MAX": "1e3"}, {}, "SIGNAL_HISTORY_MAX: expected a whole number, got '1e3'"),
        ({"LATENCY_WINDOW": "-1"}, {}, "LATENCY_WINDOW: expected a whole number, got '-1'"),
        ({"AUDIT_CHECKPOINT_EVERY": "5m or 10m"}, {}, "AUDIT_CHECKPOINT_EVERY: invalid value '5m or 10m': expected a count, a duration, or both, e.g. 1000, 5m, or '1000 events or 5m'"),
        ({"AUDIT_CHECKPOINT_EVERY": "0"}, {}, "AUDIT_CHECKPOINT_EVERY: must be between 1 and 10000000, got 0"),
        ({"AUDIT_CHECKPOINT_EVERY": "1000 events or"}, {}, "AUDIT_CHECKPOINT_EVERY: invalid value '1000 events or': expected a count, a duration, or both, e.g. 1000, 5m, or '1000 events or 5m'"),
        ({"AUDIT_RETENTION": "30"}, {}, "AUDIT_RETENTION: invalid duration '30': missing unit; expected a number and a unit (ms, s, m, h, d), e.g. 250ms, 30s, 2m, 1h, 30d or 1m30s"),
        ({"EXPORTER_URL": "sidecar:9322"}, {}, "EXPORTER_URL: invalid url 'sidecar:9322': expected http:// or https://host..."),
        ({"REDIS_NAMESPACE": "usdcop:prod"}, {}, "REDIS_NAMESPACE: invalid value 'usdcop:prod': letters, digits, _ . -, up to 64, no ':'"),
        ({"REDIS_PORT": "6380"}, {}, "REDIS_HOST: not set, but REDIS_PORT or REDIS_PASSWORD is; set REDIS_HOST or REDIS_URL"),
        ({"REDIS_HOST": "cache", "REDIS_PORT": "0"}, {}, "REDIS_PORT: must be between 1 and 65535, got 0"),
        ({"AUDIT_SPOOL_MAX_BYTES": "256MB"}, {}, "AUDIT_SPOOL_MAX_BYTES: invalid size '256MB': unknown unit 'MB'; write 256MiB (binary units, case-sensitive)"),
        ({"AUDIT_SPOOL_MAX_BYTES": "0"}, {}, "AUDIT_SPOOL_MAX_BYTES: must be more than 0 and at most 1024TiB, got '0'"),
        ({"LOG_LEVEL": "verbose"}, {}, "LOG_LEVEL: expected debug, info, warn, warning, error, fatal or critical, got 'verbose'"),
        ({}, {"log_format": "xml"}, "--log-format: expected json or text, got 'xml'"),
        ({}, {"config": "a\x00b"}, "--config: a path cannot contain a NUL character"),
    ],
)
def test_bad_values_name_the_variable(environ: dict[str, str], flags: dict[str, object], message: str) -> None:
    assert _error(environ, **flags) == message


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"EXPORTER_API_TOKEN": f"{CANARY} with spaces"}, "EXPORTER_API_TOKEN: a token must be 1 to 4096 visible ASCII characters without spaces"),
        ({"EXPORTER_API_TOKEN": CANARY, "EXPORTER_ADMIN_TOKEN": CANARY}, "EXPORTER_ADMIN_TOKEN: must differ from EXPORTER_API_TOKEN"),
        ({"EXPORTER_API_TOKEN": CANARY, "EXPORTER_API_TOKEN_FILE": "/x"}, "EXPORTER_API_TOKEN: set EXPORTER_API_TOKEN or EXPORTER_API_TOKEN_FILE, not both"),
        ({"AUDIT_CHECKPOINT_KEY": CANARY[:15]}, "AUDIT_CHECKPOINT_KEY: an HMAC key needs at least 16 bytes"),
        ({"REDIS_URL": f"http://:{CANARY}@cache"}, "REDIS_URL: invalid url: expected redis:// or rediss:// or unix://host..."),
        ({"REDIS_URL": f"redis://:{CANARY}@cache:99999"}, "REDIS_URL: invalid url: bad port or address"),
        ({"REDIS_HOST": "cache", "REDIS_PASSWORD": f"{CANARY}\udcff"}, "REDIS_PASSWORD: the value is not valid UTF-8"),
        ({"POSTGRES_URL": f"mysql://u:{CANARY}@db/x"}, "POSTGRES_URL: invalid url: expected postgresql:// or postgres://host..."),
        ({"POSTGRES_ADMIN_URL": f"postgresql://u:{CANARY}@db/x\n"}, "POSTGRES_ADMIN_URL: invalid url: contains whitespace or control characters"),
        ({"EXPORTER_URL": f"ftp://u:{CANARY}@sidecar"}, "EXPORTER_URL: invalid url 'ftp://u:***@sidecar': expected http:// or https://host..."),
    ],
)
def test_bad_secrets_are_named_never_shown(environ: dict[str, str], message: str) -> None:
    text = _error(environ)
    assert text == message
    assert CANARY not in text and CANARY[:15] not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "EXPORTER_API_TOKEN_FILE: '{path}' is empty"),
        (b"\n", "EXPORTER_API_TOKEN_FILE: '{path}' is empty"),
        (CANARY.encode() + b"\n\n", "EXPORTER_API_TOKEN: a token must be 1 to 4096 visible ASCII characters without spaces".replace("EXPORTER_API_TOKEN:", "EXPORTER_API_TOKEN_FILE:")),
        (b"x" * (64 * 1024 + 1), "EXPORTER_API_TOKEN_FILE: '{path}' is larger than 64KiB"),
    ],
)
def test_bad_secret_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    text = _error({"EXPORTER_API_TOKEN_FILE": str(path)})
    assert text == message.format(path=path)
    assert CANARY not in text


def test_missing_secret_file_names_the_file_variable(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    assert _error({"POSTGRES_URL_FILE": str(path)}) == f"POSTGRES_URL_FILE: cannot read '{path}': No such file or directory"


def test_repr_redacts_every_secret() -> None:
    s = load_settings({
        "EXPORTER_API_TOKEN": CANARY + "-api",
        "EXPORTER_ADMIN_TOKEN": CANARY + "-admin",
        "AUDIT_CHECKPOINT_KEY": CANARY + "-key",
        "POSTGRES_URL": f"postgresql://writer:{CANARY}@db/usdcop",
        "POSTGRES_ADMIN_URL": f"postgresql://owner:{CANARY}@db/usdcop?sslpassword={CANARY}",
        "REDIS_HOST": "cache", "REDIS_PASSWORD": CANARY,
        "EXPORTER_URL": f"https://lib:{CANARY}@sidecar:9322",
    })
    for text in (repr(s), str(s), f"{s}", str(s.redacted())):
        assert CANARY not in text
    assert "api_token='***'" in repr(s)
    assert "postgres_url='postgresql://writer:***@db/usdcop'" in repr(s)
    assert "redis_url='redis://:***@cache:6379/0'" in repr(s)
    assert s.api_token == CANARY + "-api"  # the real value is still there for the code that needs it


def test_connection_caps_and_cache_limits() -> None:
    s = load_settings({})
    assert (s.max_connections, s.max_connections_per_client) == (512, 128)
    assert (s.cache_max_symbols, s.cache_max_signal_bytes, s.cache_max_bytes) == (200, 64 << 10, 256 << 20)
    assert load_settings({"CACHE_MAX_BYTES": "1GiB"}).cache_max_bytes == 1 << 30
    # the per-address cap follows the process cap unless it is set
    assert load_settings({"EXPORTER_MAX_CONNECTIONS": "100"}).max_connections_per_client == 25
    assert load_settings({"EXPORTER_MAX_CONNECTIONS": "2"}).max_connections_per_client == 1
    s = load_settings({"EXPORTER_MAX_CONNECTIONS": "100", "EXPORTER_MAX_CONNECTIONS_PER_CLIENT": "60",
                       "CACHE_MAX_SYMBOLS": "20", "CACHE_MAX_SIGNAL_BYTES": "16KiB"})
    assert (s.max_connections, s.max_connections_per_client) == (100, 60)
    assert (s.cache_max_symbols, s.cache_max_signal_bytes) == (20, 16 << 10)
    s = load_settings({"EXPORTER_MAX_CONNECTIONS": "100"}, max_connections="1000",
                      max_connections_per_client="10")
    assert (s.max_connections, s.max_connections_per_client) == (1000, 10)
    assert load_settings({"CACHE_MAX_SIGNAL_BYTES": "2048"}).cache_max_signal_bytes == 2048


@pytest.mark.parametrize(
    ("environ", "flags", "message"),
    [
        ({"EXPORTER_MAX_CONNECTIONS": "0"}, {}, "EXPORTER_MAX_CONNECTIONS: must be between 1 and 1000000, got 0"),
        ({}, {"max_connections": "many"}, "--max-connections: expected a whole number, got 'many'"),
        ({"EXPORTER_MAX_CONNECTIONS": "10", "EXPORTER_MAX_CONNECTIONS_PER_CLIENT": "11"}, {},
         "EXPORTER_MAX_CONNECTIONS_PER_CLIENT: must be at most EXPORTER_MAX_CONNECTIONS (10), got 11"),
        ({}, {"max_connections_per_client": "0"}, "--max-connections-per-client: must be between 1 and 1000000, got 0"),
        ({"CACHE_MAX_SYMBOLS": "0"}, {}, "CACHE_MAX_SYMBOLS: must be between 1 and 100000, got 0"),
        ({"CACHE_MAX_SIGNAL_BYTES": "64KB"}, {}, "CACHE_MAX_SIGNAL_BYTES: invalid size '64KB': unknown unit 'KB'; write 64KiB (binary units, case-sensitive)"),
        ({"CACHE_MAX_SIGNAL_BYTES": "100"}, {}, "CACHE_MAX_SIGNAL_BYTES: must be between 1KiB and 16MiB, got '100'"),
        ({"CACHE_MAX_BYTES": "64KiB"}, {}, "CACHE_MAX_BYTES: must be between 1MiB and 1024TiB, got '64KiB'"),
    ],
)
def test_bad_limits_name_the_variable(environ: dict[str, str], flags: dict[str, object], message: str) -> None:
    assert _error(environ, **flags) == message
