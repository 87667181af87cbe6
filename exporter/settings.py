"""Process settings from the environment and command-line flags (flags win)."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import quote, urlsplit

from .config.redact import REDACTED, redact_url
from .config.services import valid_host
from .fields import FieldError, between
from .units import MAX_SIZE, UnitError, parse_duration, parse_size

# Flag name (as load_settings takes it) -> the variable it overrides.
FLAGS = {
    "config": "EXPORTER_CONFIG",
    "listen": "EXPORTER_LISTEN",
    "web_config": "EXPORTER_WEB_CONFIG",
    "shard": "EXPORTER_SHARD",
    "scheduler": "EXPORTER_SCHEDULER",
    "log_level": "LOG_LEVEL",
    "log_format": "LOG_FORMAT",
    "checkpoint_dir": "AUDIT_CHECKPOINT_DIR",
    "max_connections": "EXPORTER_MAX_CONNECTIONS",
    "max_connections_per_client": "EXPORTER_MAX_CONNECTIONS_PER_CLIENT",
}
LOG_LEVELS = {"debug": "debug", "info": "info", "warn": "warning", "warning": "warning",
              "error": "error", "fatal": "critical", "critical": "critical"}
_SECRET_FIELDS = ("api_token", "admin_token", "audit_checkpoint_key")
_URL_FIELDS = ("exporter_url", "redis_url", "postgres_url", "postgres_admin_url")
_SWITCH = {"on": True, "true": True, "1": True, "yes": True,
           "off": False, "false": False, "0": False, "no": False}
_SYMBOL = re.compile(r"[A-Z0-9]{3,12}")
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_DECIMAL = re.compile(r"\+?[0-9]{1,9}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")
_EVERY_SPLIT = re.compile(r"\s*(?:,|\bor\b)\s*")
_EVENTS = re.compile(r"([0-9]{1,9})(?:\s*events?)?")
PER_CLIENT_SHARE = 4  # by default one client address may hold a quarter of the connections
MAX_SECRET_FILE = 64 << 10
MIN_CHECKPOINT_KEY = 16


def default_per_client(max_connections: int) -> int:
    """The per-address connection cap that goes with a process cap: a quarter, at least 1."""
    return max(1, max_connections // PER_CLIENT_SHARE)


class SettingsError(ValueError):
    """A bad setting; names the variable or flag, never the value of a secret."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message
        super().__init__(f"{name}: {message}")


@dataclass(frozen=True, repr=False)
class Settings:
    """Everything the process is configured with (docs/configuration.md); durations in seconds."""

    config: str = "services.yaml"
    listen_host: str = "0.0.0.0"
    listen_port: int = 9322
    web_config: str | None = None
    max_connections: int = 512
    max_connections_per_client: int = 128  # a quarter of max_connections unless set
    api_token: str | None = None
    admin_token: str | None = None
    shard_index: int = 0
    shard_count: int = 1
    scheduler: bool = True
    service_name: str = "app"
    mirror_symbols: tuple[str, ...] = ("USDCOP",)
    mirror_interval: float = 5.0
    mirror_max_symbols: int = 50
    mirror_max_custom: int = 100
    signal_history_max: int = 100
    cache_max_symbols: int = 200
    cache_max_signal_bytes: int = 64 << 10
    cache_max_bytes: int = 256 << 20
    latency_window: int = 10_000
    latency_max_pairs: int = 500
    audit_verify_interval: float = 3600.0
    audit_checkpoint_events: int = 1000
    audit_checkpoint_seconds: float = 300.0
    audit_max_future_skew: float = 300.0
    exporter_url: str | None = None
    redis_url: str | None = None
    redis_namespace: str = "usdcop"
    postgres_url: str | None = None
    postgres_admin_url: str | None = None  # None: the same as postgres_url
    audit_sqlite_path: str = "./usdcop-audit.sqlite3"
    audit_spool_dir: str = "./usdcop-spool"
    audit_spool_max_bytes: int = 256 << 20
    audit_retention: float = 30 * 86400.0
    audit_checkpoint_key: bytes | None = None
    audit_checkpoint_dir: str = "./usdcop-checkpoints"
    log_level: str = "info"
    log_format: str = "json"

    def __post_init__(self) -> None:
        if self.postgres_admin_url is None and self.postgres_url is not None:
            object.__setattr__(self, "postgres_admin_url", self.postgres_url)

    @property
    def listen(self) -> str:
        """`HOST:PORT` as the listener is configured (IPv6 in brackets)."""
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"

    @property
    def shard(self) -> str:
        """`i/N` as the API reports it."""
        return f"{self.shard_index}/{self.shard_count}"

    def redacted(self) -> dict[str, Any]:
        """Every field, with tokens and keys hidden and URL passwords replaced by ***."""
        out: dict[str, Any] = {}
        for fld in fields(self):
            value = getattr(self, fld.name)
            if fld.name in _SECRET_FIELDS and value is not None:
                value = REDACTED
            elif fld.name in _URL_FIELDS and value is not None:
                value = redact_url(value)
            out[fld.name] = value
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({inner})"

    __str__ = __repr__


class _Source:
    """Where values come from: flags first, then the environment; empty counts as unset."""

    def __init__(self, environ: Mapping[str, str], flags: Mapping[str, Any]) -> None:
        self.environ = environ
        self.by_variable = {FLAGS[k]: (k, v) for k, v in flags.items() if v is not None}

    def get(self, variable: str) -> tuple[Any, str] | None:
        """(value, name to blame in errors) or None when unset."""
        if variable in self.by_variable:
            flag, value = self.by_variable[variable]
            return value, "--" + flag.replace("_", "-")
        value = self.environ.get(variable)
        return (value, variable) if value else None

    def secret(self, variable: str) -> tuple[bytes, str] | None:
        """The raw secret from `variable` or the file named by `variable_FILE`."""
        direct = self.environ.get(variable)
        path = self.environ.get(variable + "_FILE")
        if direct and path:
            raise SettingsError(variable, f"set {variable} or {variable}_FILE, not both")
        if direct:
            return direct.encode("utf-8", "surrogateescape"), variable
        if not path:
            return None
        name = variable + "_FILE"
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_SECRET_FILE + 1)
        except OSError as exc:
            raise SettingsError(name, f"cannot read {path!r}: {exc.strerror or exc}") from None
        if len(data) > MAX_SECRET_FILE:
            raise SettingsError(name, f"{path!r} is larger than 64KiB")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        if not data:
            raise SettingsError(name, f"{path!r} is empty")
        return data, name


def _text_secret(src: _Source, variable: str) -> tuple[str, str] | None:
    got = src.secret(variable)
    if got is None:
        return None
    data, name = got
    try:
        return data.decode("utf-8"), name
    except UnicodeDecodeError:
        raise SettingsError(name, "the value is not valid UTF-8") from None


def _token(src: _Source, variable: str) -> str | None:
    got = _text_secret(src, variable)
    if got is None:
        return None
    value, name = got
    if not _TOKEN.fullmatch(value):
        raise SettingsError(name, "a token must be 1 to 4096 visible ASCII characters without spaces")
    return value


def _integer(value: str, name: str, low: int, high: int) -> int:
    if not _DECIMAL.fullmatch(value):
        raise SettingsError(name, f"expected a whole number, got {value!r}")
    try:
        return between(int(value), name, low, high)
    except FieldError as exc:
        raise SettingsError(name, exc.message) from None


def _duration(value: str, name: str) -> float:
    try:
        seconds = parse_duration(value)
    except UnitError as exc:
        raise SettingsError(name, str(exc)) from None
    if seconds <= 0:
        raise SettingsError(name, f"must be longer than 0s, got {value!r}")
    return seconds


def _listen(value: str, name: str) -> tuple[str, int]:
    form = "expected HOST:PORT, e.g. 0.0.0.0:9322, 127.0.0.1:0 or [::1]:9322"
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise SettingsError(name, f"invalid value {value!r}: {form}") from None
    else:
        host, sep, port = value.rpartition(":")
        if ":" in host:
            raise SettingsError(name, f"invalid value {value!r}: put an IPv6 address in brackets, e.g. [::1]:9322")
        host = host or "0.0.0.0"
        if sep and not valid_host(host):
            raise SettingsError(name, f"invalid host in {value!r}: {form}")
    if not sep:
        raise SettingsError(name, f"invalid value {value!r}: {form}")
    return host, _integer(port, name, 0, 65535)


def _shard(value: str, name: str) -> tuple[int, int]:
    match = re.fullmatch(r"([0-9]{1,5})/([0-9]{1,5})", value)
    if not match:
        raise SettingsError(name, f"invalid value {value!r}: expected i/N, e.g. 0/1 or 2/4")
    index, count = int(match[1]), int(match[2])
    if not 0 <= index < count:
        raise SettingsError(name, f"invalid value {value!r}: need 0 <= i < N (shards are numbered from 0)")
    return index, count


def _switch(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _SWITCH:
        return _SWITCH[value.lower()]
    raise SettingsError(name, f"expected on or off (also true/false, 1/0), got {value!r}")


def _symbols(value: str, name: str) -> tuple[str, ...]:
    symbols = [s.strip() for s in value.split(",") if s.strip()]
    for symbol in symbols:
        if not _SYMBOL.fullmatch(symbol):
            raise SettingsError(name, f"invalid symbol {symbol[:20]!r}: 3 to 12 of A-Z and 0-9")
    return tuple(dict.fromkeys(symbols))


def _checkpoint_every(value: str, name: str) -> tuple[int | None, float | None]:
    """`1000`, `5m`, `1000,5m` or `1000 events or 5m`: whichever comes first."""
    events: int | None = None
    seconds: float | None = None
    for part in _EVERY_SPLIT.split(value.strip()):
        count = _EVENTS.fullmatch(part)
        if count and events is None:
            events = _integer(count[1], name, 1, 10_000_000)
        elif not count and seconds is None and part:
            seconds = _duration(part, name)
        else:
            raise SettingsError(name, f"invalid value {value!r}: expected a count, a duration, or both, "
                                      "e.g. 1000, 5m, or '1000 events or 5m'")
    return events, seconds


def _url(value: str, name: str, schemes: tuple[str, ...], secret: bool, need_host: bool = True) -> str:
    shown = "" if secret else f" {redact_url(value)!r}"
    wanted = " or ".join(f"{s}://" for s in schemes)
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise SettingsError(name, f"invalid url{shown}: contains whitespace or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise SettingsError(name, f"invalid url{shown}: bad port or address") from None
    if parts.scheme.lower() not in schemes or (need_host and not parts.hostname):
        raise SettingsError(name, f"invalid url{shown}: expected {wanted}host...")
    return value


def _redis_url(src: _Source) -> str | None:
    got = _text_secret(src, "REDIS_URL")
    if got is not None:
        value, name = got
        return _url(value, name, ("redis", "rediss", "unix"), secret=True, need_host=False)
    host = src.environ.get("REDIS_HOST")
    port = src.environ.get("REDIS_PORT")
    password = _text_secret(src, "REDIS_PASSWORD")
    if not host:
        if port or password:
            raise SettingsError("REDIS_HOST", "not set, but REDIS_PORT or REDIS_PASSWORD is; set REDIS_HOST or REDIS_URL")
        return None
    if not valid_host(host):
        raise SettingsError("REDIS_HOST", f"invalid host {host[:64]!r}")
    number = _integer(port, "REDIS_PORT", 1, 65535) if port else 6379
    auth = f":{quote(password[0], safe='')}@" if password else ""
    where = f"[{host}]" if ":" in host else host
    return f"redis://{auth}{where}:{number}/0"


def _path(value: str, name: str) -> str:
    if "\x00" in value:
        raise SettingsError(name, "a path cannot contain a NUL character")
    return value


def _stderr_is_tty() -> bool:
    stream = sys.stderr
    try:
        return bool(stream and stream.isatty())
    except (AttributeError, ValueError):
        return False


def load_settings(environ: Mapping[str, str] | None = None, **flag_overrides: Any) -> Settings:
    """Settings from `environ` (default os.environ), overridden by flags given as typed."""
    unknown = sorted(set(flag_overrides) - set(FLAGS))
    if unknown:
        raise TypeError(f"unknown flag override(s): {', '.join(unknown)}")
    src = _Source(os.environ if environ is None else environ, flag_overrides)
    kw: dict[str, Any] = {}
    for section in (_server, _caps, _limits, _storage, _audit, _logging):
        kw.update(section(src))
    return Settings(**kw)


def _server(src: _Source) -> dict[str, Any]:
    """Where and how the sidecar serves: listen address, tokens, shard, scheduler, name."""
    kw: dict[str, Any] = {}
    value = src.get
    if got := value("EXPORTER_CONFIG"):
        kw["config"] = _path(*got)
    if got := value("EXPORTER_LISTEN"):
        kw["listen_host"], kw["listen_port"] = _listen(*got)
    if got := value("EXPORTER_WEB_CONFIG"):
        path, name = got
        if not os.path.isfile(_path(path, name)) or not os.access(path, os.R_OK):
            raise SettingsError(name, f"cannot read the file {path!r}")
        kw["web_config"] = path
    kw["api_token"] = _token(src, "EXPORTER_API_TOKEN")
    kw["admin_token"] = _token(src, "EXPORTER_ADMIN_TOKEN")
    if kw["admin_token"] is not None and kw["admin_token"] == kw["api_token"]:
        raise SettingsError("EXPORTER_ADMIN_TOKEN", "must differ from EXPORTER_API_TOKEN")
    if got := value("EXPORTER_SHARD"):
        kw["shard_index"], kw["shard_count"] = _shard(*got)
    if got := value("EXPORTER_SCHEDULER"):
        kw["scheduler"] = _switch(*got)
    if got := value("EXPORTER_SERVICE_NAME"):
        if not _SERVICE_NAME.fullmatch(got[0]):
            raise SettingsError(got[1], f"invalid value {got[0][:64]!r}: letters, digits, _ . -, up to 63")
        kw["service_name"] = got[0]
    if got := value("EXPORTER_URL"):
        kw["exporter_url"] = _url(*got, ("http", "https"), secret=False).rstrip("/")
    return kw


def _limits(src: _Source) -> dict[str, Any]:
    """The counts the mirror, the signal history and the latency monitor keep at most."""
    kw: dict[str, Any] = {}
    value = src.get
    if got := value("MIRROR_SYMBOLS"):
        kw["mirror_symbols"] = _symbols(*got)
    for variable, key, low, high in (
        ("MIRROR_MAX_SYMBOLS", "mirror_max_symbols", 1, 100_000),
        ("MIRROR_MAX_CUSTOM", "mirror_max_custom", 1, 100_000),
        ("SIGNAL_HISTORY_MAX", "signal_history_max", 1, 1_000_000),
        ("LATENCY_WINDOW", "latency_window", 1, 10_000_000),
        ("LATENCY_MAX_PAIRS", "latency_max_pairs", 1, 1_000_000),
    ):
        if got := value(variable):
            kw[key] = _integer(got[0], got[1], low, high)
    symbols = kw.get("mirror_symbols", Settings.mirror_symbols)
    cap = kw.get("mirror_max_symbols", Settings.mirror_max_symbols)
    if len(symbols) > cap:
        raise SettingsError("MIRROR_SYMBOLS", f"lists {len(symbols)} symbols, more than MIRROR_MAX_SYMBOLS ({cap})")
    if got := value("MIRROR_INTERVAL"):
        kw["mirror_interval"] = _duration(*got)
    return kw


def _storage(src: _Source) -> dict[str, Any]:
    """Redis and Postgres: where they are and how to reach them."""
    kw: dict[str, Any] = {"redis_url": _redis_url(src)}
    if got := src.get("REDIS_NAMESPACE"):
        if not _NAMESPACE.fullmatch(got[0]):
            raise SettingsError(got[1], f"invalid value {got[0][:64]!r}: letters, digits, _ . -, up to 64, no ':'")
        kw["redis_namespace"] = got[0]
    for variable, key in (("POSTGRES_URL", "postgres_url"), ("POSTGRES_ADMIN_URL", "postgres_admin_url")):
        if secret := _text_secret(src, variable):
            kw[key] = _url(*secret, ("postgresql", "postgres"), secret=True, need_host=False)
    return kw


def _audit(src: _Source) -> dict[str, Any]:
    """The audit trail: timing, retention, checkpoints, files and the checkpoint key."""
    kw: dict[str, Any] = {}
    value = src.get
    for variable, key in (
        ("AUDIT_VERIFY_INTERVAL", "audit_verify_interval"),
        ("AUDIT_MAX_FUTURE_SKEW", "audit_max_future_skew"),
        ("AUDIT_RETENTION", "audit_retention"),
    ):
        if got := value(variable):
            kw[key] = _duration(*got)
    if got := value("AUDIT_CHECKPOINT_EVERY"):
        events, seconds = _checkpoint_every(*got)
        if events is not None:
            kw["audit_checkpoint_events"] = events
        if seconds is not None:
            kw["audit_checkpoint_seconds"] = seconds
    for variable, key in (
        ("AUDIT_SQLITE_PATH", "audit_sqlite_path"),
        ("AUDIT_SPOOL_DIR", "audit_spool_dir"),
        ("AUDIT_CHECKPOINT_DIR", "audit_checkpoint_dir"),
    ):
        if got := value(variable):
            kw[key] = _path(*got)
    if got := value("AUDIT_SPOOL_MAX_BYTES"):
        kw["audit_spool_max_bytes"] = _spool_bytes(*got)
    if key := src.secret("AUDIT_CHECKPOINT_KEY"):
        if len(key[0]) < MIN_CHECKPOINT_KEY:
            raise SettingsError(key[1], f"an HMAC key needs at least {MIN_CHECKPOINT_KEY} bytes")
        kw["audit_checkpoint_key"] = key[0]
    return kw


def _logging(src: _Source) -> dict[str, Any]:
    """LOG_LEVEL and LOG_FORMAT (text on a terminal, JSON otherwise)."""
    kw: dict[str, Any] = {}
    if got := src.get("LOG_LEVEL"):
        level = str(got[0]).lower()
        if level not in LOG_LEVELS:
            raise SettingsError(got[1], f"expected debug, info, warn, warning, error, fatal or critical, got {got[0]!r}")
        kw["log_level"] = LOG_LEVELS[level]
    if got := src.get("LOG_FORMAT"):
        if str(got[0]).lower() not in ("json", "text"):
            raise SettingsError(got[1], f"expected json or text, got {got[0]!r}")
        kw["log_format"] = str(got[0]).lower()
    else:
        kw["log_format"] = "text" if _stderr_is_tty() else "json"
    return kw


def _caps(src: _Source) -> dict[str, int]:
    """The connection caps (the per-address one a quarter of the process one unless set) and
    the signal cache's bounds."""
    kw: dict[str, int] = {}
    total = Settings.max_connections
    if got := src.get("EXPORTER_MAX_CONNECTIONS"):
        total = _integer(str(got[0]), got[1], 1, 1_000_000)
    per_client = default_per_client(total)
    if got := src.get("EXPORTER_MAX_CONNECTIONS_PER_CLIENT"):
        per_client = _integer(str(got[0]), got[1], 1, 1_000_000)
        if per_client > total:
            raise SettingsError(got[1], f"must be at most EXPORTER_MAX_CONNECTIONS ({total}), "
                                        f"got {per_client}")
    kw["max_connections"], kw["max_connections_per_client"] = total, per_client
    if got := src.get("CACHE_MAX_SYMBOLS"):
        kw["cache_max_symbols"] = _integer(got[0], got[1], 1, 100_000)
    if got := src.get("CACHE_MAX_SIGNAL_BYTES"):
        kw["cache_max_signal_bytes"] = _signal_bytes(*got)
    if got := src.get("CACHE_MAX_BYTES"):
        kw["cache_max_bytes"] = _cache_bytes(*got)
    return kw


def _bytes(value: str, name: str) -> int:
    """A size like 256MiB; a bare number is bytes, as the variables' names say."""
    if value.isdigit() and len(value) <= 16:
        return int(value)
    try:
        return parse_size(value)
    except UnitError as exc:
        raise SettingsError(name, str(exc)) from None


def _signal_bytes(value: str, name: str) -> int:
    """A size between 1 KiB and 16 MiB."""
    size = _bytes(value, name)
    if not 1024 <= size <= 16 << 20:
        raise SettingsError(name, f"must be between 1KiB and 16MiB, got {value!r}")
    return size


def _cache_bytes(value: str, name: str) -> int:
    """A size between 1 MiB and MAX_SIZE."""
    size = _bytes(value, name)
    if not 1 << 20 <= size <= MAX_SIZE:
        raise SettingsError(name, f"must be between 1MiB and 1024TiB, got {value!r}")
    return size


def _spool_bytes(value: str, name: str) -> int:
    """A size of more than 0 and at most MAX_SIZE."""
    size = _bytes(value, name)
    if not 0 < size <= MAX_SIZE:
        raise SettingsError(name, f"must be more than 0 and at most 1024TiB, got {value!r}")
    return size


__all__ = ["FLAGS", "LOG_LEVELS", "Settings", "SettingsError", "load_settings"]
