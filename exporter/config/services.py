"""Validating one service entry (from YAML or from Python) into a ServiceConfig."""

from __future__ import annotations

import functools
import importlib
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import fields as dataclass_fields
from typing import Any
from urllib.parse import SplitResult, urlsplit

from . import fields
from .conditions import ConditionError, parse_condition
from .errors import ConfigError
from .model import (
    BODY_FORMATS,
    DNS_QUERY_TYPES,
    DNS_TRANSPORTS,
    DURING,
    Condition,
    Defaults,
    ServiceConfig,
    TLSConfig,
)
from .probe_types import PROBE_TYPES
from .redact import redact_url
from .yamlsafe import Node

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
RESERVED_LABELS = ("service", "type", "critical", "job", "instance")
MAX_LABELS = 5
MAX_DURATION = 86400.0  # interval, degraded_latency
MAX_TIMEOUT = 600.0  # a probe that may take longer is a mistake (often milliseconds meant)
MAX_THRESHOLD = 1000
MAX_BODY = 64 << 20

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_HEADER_VALUE = re.compile("[^\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]*")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?")
_CHECK = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_STATUS_CLASS = re.compile(r"[1-5]xx", re.IGNORECASE)
_TYPE = re.compile("|".join(PROBE_TYPES))
_METHOD = re.compile("GET|HEAD")
_BODY_FORMAT = re.compile("|".join(BODY_FORMATS))
_DURING = re.compile("|".join(DURING))
_SCHEMES = {
    "http": ("http", "https"),
    "redis": ("redis", "rediss"),
    "postgres": ("postgresql", "postgres"),
}
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

COMMON = ("name", "type", "interval", "timeout", "degraded_latency", "failure_threshold",
          "success_threshold", "critical", "labels", "conditions", "during")
BY_TYPE: dict[str, tuple[str, ...]] = {
    "http": ("url", "method", "headers", "expect_status", "body_format", "max_body",
             "follow_redirects", "tls"),
    "tcp": ("url", "address"),
    "redis": ("url",),
    "postgres": ("url",),
    "python": ("check",),
    "websocket": ("url", "headers", "send", "expect", "tls"),
    "dns": ("server", "query_name", "query_type", "transport", "valid_rcodes", "expect_answer"),
    "icmp": ("host", "count"),
    "grpc": ("address", "grpc_service", "tls"),
    "tls": ("address", "tls"),
    "push": ("max_silence",),
}
DNS_RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN",
              "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE")
MAX_ICMP_COUNT = 10
MAX_MESSAGE = 64 * 1024  # websocket send
# DNS names as queried: labels may start with _ (SRV: _pricing._tcp.internal), a root dot ends.
_DNS_NAME = re.compile(r"(?=.{1,254}$)[A-Za-z0-9_][A-Za-z0-9_-]{0,62}(?:\.[A-Za-z0-9_][A-Za-z0-9_-]{0,62})*\.?")
_GRPC_SERVICE = re.compile(r"[A-Za-z0-9_.\-/]{0,200}")
KEYS = COMMON + tuple(dict.fromkeys(k for keys in BY_TYPE.values() for k in keys))
# Subjects that only an HTTP response has; every type has a response time, and the types
# that always see a certificate have its expiry.
_HTTP_SUBJECTS = ("STATUS", "BODY", "CERTIFICATE_EXPIRATION")
_CERT_TYPES = ("tls",)
_NO_CONDITIONS = ("websocket", "dns", "icmp", "grpc", "push")


def valid_host(host: str) -> bool:
    """True for an IP address or a DNS name."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST.fullmatch(host)) and len(host) <= 253


def split_host_port(text: str) -> tuple[str, int] | None:
    """(host, port) from `host:port` or `[v6]:port`; None when it is not that shape."""
    if text.startswith("["):
        end = text.find("]:")
        host, port = (text[1:end], text[end + 2:]) if end > 0 else ("", "")
        if not host or ":" not in host:
            return None
    else:
        host, _, port = text.rpartition(":")
        if ":" in host:
            return None
    if not port.isdigit() or len(port) > 5 or not 0 < int(port) < 65536 or not valid_host(host):
        return None
    return host, int(port)


def join_host_port(host: str, port: int) -> str:
    """`host:port`, bracketing IPv6 addresses."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _url(ctx: fields.Ctx, node: Node, field: str, schemes: tuple[str, ...] | None) -> tuple[str, SplitResult]:
    value, shown = fields.text(ctx, node, field)
    if shown == repr(value):  # written in the file: still hide a password in it
        shown = repr(redact_url(value))
    wanted = " or ".join(f"{s}://" for s in schemes) if schemes else "scheme://host:port"
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise ctx.error(node, field, f"invalid url {shown}: contains whitespace or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ctx.error(node, field, f"invalid url {shown}: bad port or address") from None
    if schemes is not None and parts.scheme.lower() not in schemes:
        raise ctx.error(node, field, f"invalid url {shown}: expected {wanted}")
    if not parts.scheme or not parts.hostname or not valid_host(parts.hostname):
        raise ctx.error(node, field, f"invalid url {shown}: expected {wanted} with a host")
    if port == 0:
        raise ctx.error(node, field, f"invalid url {shown}: port 0")
    return value, parts


def _status_list(ctx: fields.Ctx, node: Node) -> tuple[str, ...]:
    items = fields.sequence(ctx, node, "expect_status", "[200] or [2xx]")
    if not items:
        raise ctx.error(node, "expect_status", "must not be empty (the default is [2xx])")
    out: list[str] = []
    for i, item in enumerate(items):
        field = f"expect_status[{i}]"
        if item.kind == "str" and _STATUS_CLASS.fullmatch(item.value):
            out.append(item.value.lower())
        elif item.kind == "int" or (item.kind == "str" and "${" in str(item.value)):
            out.append(str(fields.integer(ctx, item, field, 100, 599)))
        else:
            raise ctx.error(item, field, f"expected a status code (100-599) or class (1xx-5xx), got {fields.describe(item)}")
    return tuple(dict.fromkeys(out))


def _headers(ctx: fields.Ctx, node: Node) -> tuple[tuple[str, str], ...]:
    out = []
    for name, value_node in fields.mapping(ctx, node, "headers", None).items():
        if not _HEADER_NAME.fullmatch(name):
            raise ctx.under("headers").error(value_node, name, "invalid header name")
        if value_node.kind != "str":
            # The value may be a secret: name its type, never the value.
            raise ctx.under("headers").error(value_node, name, "expected a string value (redacted)")
        value, _ = fields.text(ctx.under("headers"), value_node, name)
        if not _HEADER_VALUE.fullmatch(value):
            raise ctx.under("headers").error(value_node, name, "value contains a line break or control character (redacted)")
        out.append((name, value))
    return tuple(out)


def _tls(ctx: fields.Ctx, node: Node, kind: str = "http") -> TLSConfig:
    keys = ("verify", "ca_file", "server_name") + (("enabled",) if kind == "grpc" else ())
    entries = fields.mapping(ctx, node, "tls", keys)
    inner = ctx.under("tls")
    kwargs: dict[str, Any] = {}
    if "enabled" in entries:
        kwargs["enabled"] = fields.boolean(inner, entries["enabled"], "enabled")
    if "verify" in entries:
        kwargs["verify"] = fields.boolean(inner, entries["verify"], "verify")
    if "ca_file" in entries and entries["ca_file"].kind != "null":
        path = fields.readable_file(inner, entries["ca_file"], "ca_file")
        _check_pem(inner, entries["ca_file"], path)
        kwargs["ca_file"] = path
    if "server_name" in entries and entries["server_name"].kind != "null":
        kwargs["server_name"] = fields.string(inner, entries["server_name"], "server_name",
                                         _HOST, "expected a host name")
    return TLSConfig(**kwargs)


def _check_pem(ctx: fields.Ctx, node: Node, path: str) -> None:
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise ctx.error(node, "ca_file", f"not a PEM certificate file ({reason})") from None


def _labels(ctx: fields.Ctx, node: Node) -> tuple[tuple[str, str], ...]:
    entries = fields.mapping(ctx, node, "labels", None)
    if len(entries) > MAX_LABELS:
        raise ctx.error(node, "labels", f"at most {MAX_LABELS} labels, got {len(entries)}")
    inner = ctx.under("labels")
    out = []
    for name, value_node in entries.items():
        if not LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise inner.error(value_node, name, "invalid label name: [a-zA-Z_][a-zA-Z0-9_]*, not starting with __")
        if name in RESERVED_LABELS:
            raise inner.error(value_node, name, f"label name is reserved ({', '.join(RESERVED_LABELS)})")
        if name == "during":
            raise inner.error(value_node, name, "label name is reserved: set the service's during: field instead")
        value = fields.string(inner, value_node, name)
        if not 0 < len(value) <= 256:
            raise inner.error(value_node, name, "label value must be 1 to 256 characters")
        out.append((name, value))
    return tuple(out)


def _conditions(ctx: fields.Ctx, node: Node, kind: str, method: str) -> tuple[Condition, ...]:
    items = fields.sequence(ctx, node, "conditions", '["[STATUS] == 200"]')
    out = []
    for i, item in enumerate(items):
        field = f"conditions[{i}]"
        if item.kind != "str":
            raise ctx.error(item, field, f'expected a quoted string like "[STATUS] == 200", got {fields.describe(item)}')
        text, shown = fields.text(ctx, item, field)
        try:
            condition = parse_condition(text)
        except ConditionError as exc:
            if shown != repr(text):  # it came from the environment: say nothing about its value
                raise ctx.error(item, field, f"invalid condition {shown} after expansion") from None
            raise ctx.error(item, field, str(exc)) from None
        if condition.subject == "CERTIFICATE_EXPIRATION" and kind in _CERT_TYPES:
            pass
        elif kind != "http" and condition.subject in _HTTP_SUBJECTS:
            raise ctx.error(item, field, f"[{condition.subject}] applies to http services only")
        if method == "HEAD" and condition.subject == "BODY":
            raise ctx.error(item, field, "[BODY] needs a body; HEAD gets none")
        out.append(condition)
    return tuple(out)


def check_target(spec: str) -> tuple[str, str] | None:
    """(module, attribute path) of a `module.path:function` check (`module:Class.method`
    too), or None when malformed."""
    if not _CHECK.fullmatch(spec):
        return None
    module, _, function = spec.partition(":")
    return module, function


def resolve_check(spec: str) -> Callable[..., Any]:
    """Import the module of a python check and return the callable it names.

    The one way a `check` string becomes a function: `check-config`, `serve` and reload
    call it through `import_checks`, the python prober on its first probe. ConfigError
    (without a location) when the spec is malformed, the module cannot be imported, the
    attribute is missing or is not callable.
    """
    target = check_target(spec)
    if target is None:
        raise ConfigError(f"invalid check {spec!r}: expected module.path:function")
    module_name, path = target
    try:
        obj: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # any import-time failure of the user's module
        raise ConfigError(f"check {spec!r}: cannot import {module_name}: {type(exc).__name__}: {exc}") from None
    for part in path.split("."):
        try:
            obj = getattr(obj, part)
        except Exception:  # AttributeError, or a property of the user's that raised
            raise ConfigError(f"check {spec!r}: {module_name} has no {path}") from None
    if not callable(obj):
        raise ConfigError(f"check {spec!r}: {module_name}:{path} is not callable "
                          f"(it is {type(obj).__name__})")
    return obj


def _service_label(entries: list[tuple[Node, Node]], index: int) -> str:
    for key, value in entries:
        if key.kind == "str" and key.value == "name" and value.kind == "str":
            if NAME.fullmatch(value.value):
                return value.value
            if value.python:  # a name given in code is no secret and says more than an index
                return value.value[:64]
    return f"#{index}"


def build_service(ctx: fields.Ctx, node: Node, index: int, defaults: Defaults,
                  check_fn: Callable[..., Any] | None = None) -> ServiceConfig:
    """One validated service; unset fields come from `defaults`."""
    if node.kind != "map":
        ctx = fields.Ctx(ctx.file, ctx.environ, ctx.base_dir, service=f"#{index}")
        raise ctx.error(node, None, f"a service must be a mapping with a name, got {fields.describe(node)}")
    ctx = fields.Ctx(ctx.file, ctx.environ, ctx.base_dir, service=_service_label(node.value, index))
    m = fields.mapping(ctx, node, None, KEYS)
    if "name" not in m:
        raise ctx.error(node, "name", "missing name")
    name = fields.string(ctx, m["name"], "name", NAME, "lower-case letters, digits, _ and -, up to 63, starting with a letter or digit")
    ctx = fields.Ctx(ctx.file, ctx.environ, ctx.base_dir, service=name)
    kind = _kind(ctx, node, m, check_fn)
    for key, value in m.items():
        if key not in COMMON and key not in BY_TYPE[kind]:
            raise ctx.error(value, key, f"does not apply to type {kind} (its options: {', '.join(BY_TYPE[kind])})")
    kw: dict[str, Any] = {"name": name, "type": kind, "line": node.line}
    for field in dataclass_fields(Defaults):
        if field.name in m:
            kw[field.name] = read_default(ctx, m[field.name], field.name)
        else:
            kw[field.name] = getattr(defaults, field.name)
    if "labels" in m:
        kw["labels"] = _labels(ctx, m["labels"])
    if "during" in m:
        kw["during"] = fields.string(ctx, m["during"], "during", _DURING, f"expected one of {', '.join(DURING)}")
    kw.update(_targets(ctx, node, m, kind, check_fn))
    if kind == "http":
        kw.update(_http_options(ctx, m))
    else:
        kw.update(_protocol_options(ctx, node, m, kind))
    if "conditions" in m:
        if kind in _NO_CONDITIONS:
            raise ctx.error(m["conditions"], "conditions",
                            f"type {kind} takes no conditions (http and tls do)")
        kw["conditions"] = _conditions(ctx, m["conditions"], kind, kw.get("method", "GET"))
    return ServiceConfig(**kw)


def read_default(ctx: fields.Ctx, node: Node, name: str) -> Any:
    """One of the fields that `defaults:` may set, read and checked."""
    if name == "timeout":
        return fields.duration(ctx, node, name, MAX_TIMEOUT)
    if name in ("interval", "degraded_latency"):
        return fields.duration(ctx, node, name, MAX_DURATION)
    if name in ("failure_threshold", "success_threshold"):
        return fields.integer(ctx, node, name, 1, MAX_THRESHOLD)
    return fields.boolean(ctx, node, name)


def _kind(ctx: fields.Ctx, node: Node, m: dict[str, Node], check_fn: Any) -> str:
    if "type" in m:
        return fields.string(ctx, m["type"], "type", _TYPE, f"expected one of {', '.join(PROBE_TYPES)}")
    if check_fn is not None:
        return "python"
    if "url" in m and m["url"].kind == "str":
        value, _ = fields.text(ctx, m["url"], "url")
        scheme = value.partition("://")[0].lower() if "://" in value else ""
        if scheme in ("http", "https"):
            return "http"
        for kind, schemes in _SCHEMES.items():
            if scheme in schemes:
                raise ctx.error(m["url"], "type", f"missing type: a {scheme}:// url needs type: {kind}")
    raise ctx.error(node, "type", f"missing type: one of {', '.join(PROBE_TYPES)} (an http(s) url implies http)")


def _targets(ctx: fields.Ctx, node: Node, m: dict[str, Node], kind: str, check_fn: Any) -> dict[str, Any]:
    if kind == "python":
        if check_fn is not None:
            if "check" in m:
                raise ctx.error(m["check"], "check", "give a check function or a check string, not both")
            return {"check_fn": check_fn}
        if "check" not in m:
            raise ctx.error(node, "check", "missing check: module.path:function")
        spec = fields.string(ctx, m["check"], "check", _CHECK, "expected module.path:function")
        return {"check": spec}
    if kind == "tcp":
        if ("url" in m) == ("address" in m):
            raise ctx.error(node, "url", "a tcp service needs url or address (host:port), exactly one")
        if "address" in m:
            value, shown = fields.text(ctx, m["address"], "address")
            hp = split_host_port(value)
            if hp is None:
                raise ctx.error(m["address"], "address", f"invalid address {shown}: expected host:port or [v6]:port")
            return {"address": join_host_port(*hp)}
        url, parts = _url(ctx, m["url"], "url", None)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
        if port is None:
            raise ctx.error(m["url"], "url", f"url has no port and {parts.scheme}:// has no default one")
        return {"url": url, "address": join_host_port(parts.hostname, port)}
    if kind not in _SCHEMES:
        return {}  # websocket, dns, icmp, grpc, tls, push: _protocol_options reads their targets
    if "url" not in m:
        raise ctx.error(node, "url", f"missing url: {' or '.join(s + '://' for s in _SCHEMES[kind])}")
    url, _ = _url(ctx, m["url"], "url", _SCHEMES[kind])
    return {"url": url}


def _http_options(ctx: fields.Ctx, m: dict[str, Node]) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if "method" in m:
        kw["method"] = fields.string(ctx, m["method"], "method", _METHOD, "expected GET or HEAD")
    if "headers" in m:
        kw["headers"] = _headers(ctx, m["headers"])
    if "expect_status" in m:
        kw["expect_status"] = _status_list(ctx, m["expect_status"])
    if "body_format" in m:
        fmt = fields.string(ctx, m["body_format"], "body_format", _BODY_FORMAT,
                       f"expected one of {', '.join(BODY_FORMATS)}")
        if kw.get("method") == "HEAD" and fmt not in ("auto", "none"):
            raise ctx.error(m["body_format"], "body_format", f"{fmt} needs a body; HEAD gets none")
        kw["body_format"] = fmt
    if "max_body" in m:
        kw["max_body"] = fields.size(ctx, m["max_body"], "max_body", MAX_BODY)
    if "follow_redirects" in m:
        kw["follow_redirects"] = fields.boolean(ctx, m["follow_redirects"], "follow_redirects")
    if "tls" in m:
        kw["tls"] = _tls(ctx, m["tls"])
    return kw


def _regex(ctx: fields.Ctx, node: Node, field: str) -> str:
    value, shown = fields.text(ctx, node, field)
    try:
        re.compile(value)
    except re.error as exc:
        raise ctx.error(node, field, f"invalid regular expression {shown}: {exc}") from None
    return value


def _address(ctx: fields.Ctx, node: Node, field: str) -> str:
    value, shown = fields.text(ctx, node, field)
    hp = split_host_port(value)
    if hp is None:
        raise ctx.error(node, field, f"invalid {field} {shown}: expected host:port or [v6]:port")
    return join_host_port(*hp)


def _required(ctx: fields.Ctx, node: Node, m: dict[str, Node], field: str, kind: str, what: str) -> Node:
    if field not in m:
        raise ctx.error(node, field, f"missing {field}: type {kind} needs {what}")
    return m[field]


def _protocol_options(ctx: fields.Ctx, node: Node, m: dict[str, Node], kind: str) -> dict[str, Any]:
    """Targets and options of the types beyond http, tcp, redis, postgres and python."""
    kw: dict[str, Any] = {}
    if kind == "websocket":
        url, _ = _url(ctx, _required(ctx, node, m, "url", kind, "url: ws:// or wss://"), "url",
                      ("ws", "wss"))
        kw["url"] = url
        if "headers" in m:
            kw["headers"] = _headers(ctx, m["headers"])
        if "send" in m:
            value, _ = fields.text(ctx, m["send"], "send")
            if len(value.encode()) > MAX_MESSAGE:
                raise ctx.error(m["send"], "send", f"at most {MAX_MESSAGE} bytes")
            kw["send"] = value
        if "expect" in m:
            kw["expect"] = _regex(ctx, m["expect"], "expect")
    elif kind == "dns":
        kw["server"] = _address(ctx, _required(ctx, node, m, "server", kind, "server: host:port"),
                                "server")
        name_node = _required(ctx, node, m, "query_name", kind, "query_name: a DNS name")
        kw["query_name"] = fields.string(ctx, name_node, "query_name", _DNS_NAME, "expected a DNS name")
        if "query_type" in m:
            kw["query_type"] = fields.string(ctx, m["query_type"], "query_type",
                                        re.compile("|".join(DNS_QUERY_TYPES)),
                                        f"expected one of {', '.join(DNS_QUERY_TYPES)}")
        if "transport" in m:
            kw["transport"] = fields.string(ctx, m["transport"], "transport",
                                       re.compile("|".join(DNS_TRANSPORTS)), "expected udp or tcp")
        if "valid_rcodes" in m:
            items = fields.sequence(ctx, m["valid_rcodes"], "valid_rcodes", "[NOERROR]")
            if not items:
                raise ctx.error(m["valid_rcodes"], "valid_rcodes",
                                "must not be empty (the default is [NOERROR])")
            pattern = re.compile("|".join(DNS_RCODES))
            kw["valid_rcodes"] = tuple(dict.fromkeys(
                fields.string(ctx, item, f"valid_rcodes[{i}]", pattern,
                         f"expected one of {', '.join(DNS_RCODES)}")
                for i, item in enumerate(items)))
        if "expect_answer" in m:
            kw["expect_answer"] = _regex(ctx, m["expect_answer"], "expect_answer")
    elif kind == "icmp":
        host_node = _required(ctx, node, m, "host", kind, "host: a name or an address")
        kw["host"] = fields.string(ctx, host_node, "host", _ANY_HOST, "expected a host name or an address")
        if "count" in m:
            kw["count"] = fields.integer(ctx, m["count"], "count", 1, MAX_ICMP_COUNT)
        _refuse_unavailable(ctx, node, icmp_unavailable())
    elif kind == "grpc":
        kw["address"] = _address(ctx, _required(ctx, node, m, "address", kind, "address: host:port"),
                                 "address")
        if "grpc_service" in m:
            kw["grpc_service"] = fields.string(ctx, m["grpc_service"], "grpc_service", _GRPC_SERVICE,
                                          "expected a service name like pkg.Service, or \"\"")
        _refuse_unavailable(ctx, node, grpc_unavailable())
    elif kind == "tls":
        kw["address"] = _address(ctx, _required(ctx, node, m, "address", kind, "address: host:port"),
                                 "address")
    elif kind == "push":
        silence = _required(ctx, node, m, "max_silence", kind, "max_silence: a duration like 26h")
        kw["max_silence"] = fields.duration(ctx, silence, "max_silence", 30 * 86400.0)
    if "tls" in m:
        kw["tls"] = _tls(ctx, m["tls"], kind)
        if kind == "grpc" and not kw["tls"].verify:
            raise ctx.error(m["tls"], "tls.verify",
                            "a grpc channel always verifies the certificate; false is not supported")
    return kw


class _AnyHost:
    """valid_host as a pattern (names and IPv6 addresses alike)."""

    @staticmethod
    def fullmatch(text: str) -> bool:
        return valid_host(text)


_ANY_HOST: Any = _AnyHost()


def _refuse_unavailable(ctx: fields.Ctx, node: Node, problem: str | None) -> None:
    """ConfigError on `type` when this machine cannot run the probe type (`problem` says why)."""
    if problem:
        raise ctx.error(node, "type", problem)


@functools.cache
def icmp_unavailable() -> str | None:
    """Why this process cannot send ICMP echo requests, or None when it can.

    An unprivileged datagram socket works where net.ipv4.ping_group_range holds our group;
    a raw socket works for root (or CAP_NET_RAW).
    """
    for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW):
        try:
            socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
            return None
        except OSError:
            continue
    return ("type icmp cannot work here: this process may open neither an unprivileged ICMP "
            "socket (net.ipv4.ping_group_range does not include its group) nor a raw one "
            "(that needs root with CAP_NET_RAW, or CAP_NET_RAW)")


@functools.cache
def grpc_unavailable() -> str | None:
    """Why type grpc cannot work (its extra is not installed), or None."""
    try:
        import grpc  # noqa: F401
        from grpc_health.v1 import health_pb2  # noqa: F401
    except ImportError:
        return ("type grpc needs the grpc extra (grpcio and grpcio-health-checking): "
                "pip install 'usdcop-exporter[grpc]'")
    return None
