"""Strict parsing of the web configuration file (`--web-config`, the exporter-toolkit format).

Keys and meanings follow prometheus/exporter-toolkit's docs/web-configuration.md:
`tls_server_config`, `http_server_config`, `basic_auth_users`, `rate_limit`. Unknown keys,
and settings Python's `ssl` cannot honour, are refused with the file, line and field.
Relative paths start at the web configuration file's folder, as in the toolkit. Nothing
is expanded from the environment (the toolkit does not either). Building the TLS context
is tls.py's job; this module only reads and checks the file.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..config import fields as f
from ..config.errors import ConfigError
from ..config.yamlsafe import Node, compose, decode
from ..units import UnitError, parse_duration

TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
TLS_KEYS = (
    "cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file",
    "client_allowed_sans", "min_version", "max_version", "cipher_suites",
    "prefer_server_cipher_suites", "curve_preferences",
)
HTTP_KEYS = ("http2", "headers")
RATE_KEYS = ("interval", "burst")

TLS_VERSIONS = ("TLS12", "TLS13")  # in order; TLS10/TLS11 are refused (RFC 8996)
CLIENT_AUTH_TYPES = ("NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
# Go asks for a certificate without verifying it in these; Python's ssl cannot.
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")

# Go's names (crypto/tls CipherSuites(), TLS 1.2 and below) -> OpenSSL's.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# TLS 1.3 suites are not configurable, in Go as in Python: accepted in the list, no effect.
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1",
          "X25519": "X25519"}

# http_server_config.headers: the toolkit's allowed set; None means any single-line value.
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_USER = re.compile("[^\x00-\x1f\x7f\x85\u2028\u2029:]{1,256}")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{1,4096}")
MAX_RATE_INTERVAL = 86400.0


@dataclass(frozen=True)
class TLSServerConfig:
    """tls_server_config; paths are absolute, inline PEM kept as text."""

    cert_file: str | None = None
    key_file: str | None = None
    cert: str | None = None
    key: str | None = field(default=None, repr=False)
    client_ca_file: str | None = None
    client_ca: str | None = None
    client_auth_type: str = "NoClientCert"
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()

    def files(self) -> tuple[str, ...]:
        """Files the TLS context is built from (watched for rotation)."""
        return tuple(p for p in (self.cert_file, self.key_file, self.client_ca_file) if p)


@dataclass(frozen=True)
class RateLimitConfig:
    """rate_limit: a token bucket refilled one token per `interval`, holding `burst`."""

    interval: float
    burst: int


@dataclass(frozen=True, repr=False)
class WebConfig:
    """A whole, validated web configuration. `users` maps names to bcrypt hashes."""

    tls: TLSServerConfig | None = None
    headers: tuple[tuple[str, str], ...] = ()
    users: tuple[tuple[str, bytes], ...] = ()
    rate_limit: RateLimitConfig | None = None
    source: str | None = None
    digest: str | None = None

    def __repr__(self) -> str:
        return (f"WebConfig(source={self.source!r}, tls={self.tls is not None}, "
                f"headers={[h for h, _ in self.headers]}, users={[u for u, _ in self.users]}, "
                f"rate_limit={self.rate_limit})")


def load_web_config(path: str) -> WebConfig:
    """Read and validate the web configuration at `path` (ConfigError names what is wrong)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(2 << 20)
    except OSError as exc:
        raise ConfigError(f"cannot read the web configuration: {exc.strerror or exc}", file=path) from None
    return parse_web_config(data, path)


def parse_web_config(data: bytes, source: str) -> WebConfig:
    """Validate the bytes of a web configuration file named `source`."""
    root = compose(decode(data, source), source)
    digest = hashlib.sha256(data).hexdigest()
    if root is None:  # an empty file: plain HTTP, no users, as the toolkit does
        return WebConfig(source=source, digest=digest)
    ctx = f.Ctx(source, {}, os.path.dirname(os.path.abspath(source)))
    top = f.mapping(ctx, root, None, TOP_KEYS)
    tls = _tls(ctx, top["tls_server_config"]) if "tls_server_config" in top else None
    headers: tuple[tuple[str, str], ...] = ()
    if "http_server_config" in top:
        headers = _http(ctx, top["http_server_config"])
    users = _users(ctx, top["basic_auth_users"]) if "basic_auth_users" in top else ()
    rate = _rate(ctx, top["rate_limit"]) if "rate_limit" in top else None
    return WebConfig(tls=tls, headers=headers, users=users, rate_limit=rate, source=source,
                     digest=digest)


def _str(ctx: f.Ctx, node: Node, field: str) -> str:
    if node.kind != "str":
        raise ctx.error(node, field, f"expected a string, got {f.describe(node)}")
    return node.value


def _str_list(ctx: f.Ctx, node: Node, field: str, example: str) -> list[tuple[Node, str]]:
    return [(item, _str(ctx, item, f"{field}[{i}]"))
            for i, item in enumerate(f.sequence(ctx, node, field, example))]


def _file(ctx: f.Ctx, node: Node, field: str) -> str:
    value = _str(ctx, node, field)
    if not value or "\x00" in value:
        raise ctx.error(node, field, "expected a file name")
    return f.existing_file(ctx, node, field, value, repr(value))


def _pem(ctx: f.Ctx, node: Node, field: str) -> str:
    value = _str(ctx, node, field)
    if "-----BEGIN " not in value:
        raise ctx.error(node, field, "expected PEM text (-----BEGIN ...)")
    return value


def _tls(ctx: f.Ctx, node: Node) -> TLSServerConfig:
    if node.kind == "null":
        raise ctx.error(node, "tls_server_config", "is empty; give cert_file and key_file, or remove it")
    keys = f.mapping(ctx, node, "tls_server_config", TLS_KEYS)
    inner = ctx.under("tls_server_config")
    kw = _tls_material(inner, node, keys)
    kw["client_auth_type"] = _client_auth(inner, keys, kw)
    if "client_allowed_sans" in keys:
        sans = _str_list(inner, keys["client_allowed_sans"], "client_allowed_sans", "[client.example]")
        if kw["client_auth_type"] != "RequireAndVerifyClientCert":
            raise inner.error(keys["client_allowed_sans"], "client_allowed_sans",
                              "needs client_auth_type: RequireAndVerifyClientCert")
        kw["client_allowed_sans"] = tuple(value for _, value in sans)
    kw.update(_tls_versions(inner, keys))
    if "cipher_suites" in keys:
        kw["cipher_suites"] = _cipher_suites(inner, keys["cipher_suites"], kw["max_version"])
    if "prefer_server_cipher_suites" in keys:
        kw["prefer_server_cipher_suites"] = f.boolean(inner, keys["prefer_server_cipher_suites"],
                                                      "prefer_server_cipher_suites")
    if "curve_preferences" in keys:
        kw["curve_preferences"] = _curves(inner, keys["curve_preferences"])
    return TLSServerConfig(**kw)


def _tls_material(inner: f.Ctx, node: Node, keys: dict[str, Node]) -> dict[str, Any]:
    """The certificate, key and client CAs: each as a file or inline PEM, not both."""
    kw: dict[str, Any] = {}
    for name in ("cert_file", "key_file", "client_ca_file"):
        if name in keys:
            kw[name] = _file(inner, keys[name], name)
    for name in ("cert", "key", "client_ca"):
        if name in keys:
            kw[name] = _pem(inner, keys[name], name)
    for inline, path in (("cert", "cert_file"), ("key", "key_file"), ("client_ca", "client_ca_file")):
        if inline in kw and path in kw:
            raise inner.error(keys[inline], inline, f"give {inline} or {path}, not both")
    if "cert" not in kw and "cert_file" not in kw:
        raise inner.error(node, None, "cert_file (or cert) is required")
    if "key" not in kw and "key_file" not in kw:
        raise inner.error(node, None, "key_file (or key) is required")
    return kw


def _client_auth(inner: f.Ctx, keys: dict[str, Node], kw: dict[str, Any]) -> str:
    """client_auth_type, checked against the client CAs given (or not)."""
    auth = "NoClientCert"
    if "client_auth_type" in keys:
        auth = _str(inner, keys["client_auth_type"], "client_auth_type")
        if auth in UNVERIFIED_CLIENT_AUTH:
            raise inner.error(keys["client_auth_type"], "client_auth_type",
                              f"{auth} accepts client certificates without verifying them, which "
                              "Python's ssl cannot do; use RequireAndVerifyClientCert or "
                              "VerifyClientCertIfGiven")
        if auth not in CLIENT_AUTH_TYPES:
            raise inner.error(keys["client_auth_type"], "client_auth_type",
                              f"unknown value {auth!r}; expected one of {', '.join(CLIENT_AUTH_TYPES)}")
    has_ca = "client_ca_file" in kw or "client_ca" in kw
    if auth != "NoClientCert" and not has_ca:
        raise inner.error(keys["client_auth_type"], "client_auth_type",
                          f"{auth} needs client_ca_file (or client_ca)")
    if auth == "NoClientCert" and has_ca:
        ca_key = "client_ca_file" if "client_ca_file" in keys else "client_ca"
        raise inner.error(keys[ca_key], ca_key, "client CAs are configured without a "
                          "client_auth_type; set RequireAndVerifyClientCert or remove them")
    return auth


def _tls_versions(inner: f.Ctx, keys: dict[str, Node]) -> dict[str, str]:
    """min_version and max_version (TLS12 or TLS13), min not above max."""
    kw: dict[str, str] = {}
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        value = default
        if name in keys:
            value = _str(inner, keys[name], name)
            if value in ("TLS10", "TLS11"):
                raise inner.error(keys[name], name, f"{value} is refused (deprecated by RFC 8996); "
                                  "use TLS12 or TLS13")
            if value not in TLS_VERSIONS:
                raise inner.error(keys[name], name, f"unknown TLS version {value!r}; expected TLS12 or TLS13")
        kw[name] = value
    if TLS_VERSIONS.index(kw["min_version"]) > TLS_VERSIONS.index(kw["max_version"]):
        raise inner.error(keys.get("min_version"), "min_version",
                          f"{kw['min_version']} is above max_version {kw['max_version']}")
    return kw


def _cipher_suites(inner: f.Ctx, node: Node, max_version: str) -> tuple[str, ...]:
    suites = _str_list(inner, node, "cipher_suites", "[TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]")
    for i, (item, name) in enumerate(suites):
        if name not in CIPHER_SUITES and name not in TLS13_SUITES:
            raise inner.error(item, f"cipher_suites[{i}]", f"unknown or insecure cipher suite {name!r}")
    if not suites:
        raise inner.error(node, "cipher_suites", "an empty list; remove it for the defaults")
    if max_version == "TLS12" and not any(n in CIPHER_SUITES for _, n in suites):
        raise inner.error(node, "cipher_suites", "lists no TLS 1.2 suite")
    return tuple(name for _, name in suites)


def _curves(inner: f.Ctx, node: Node) -> tuple[str, ...]:
    curves = _str_list(inner, node, "curve_preferences", "[CurveP256]")
    for i, (item, name) in enumerate(curves):
        if name not in CURVES:
            raise inner.error(item, f"curve_preferences[{i}]",
                              f"unknown curve {name!r}; expected one of {', '.join(CURVES)}")
    if len(curves) != 1:
        raise inner.error(node, "curve_preferences",
                          "Python's ssl can pin one curve, not an order of several; list exactly one")
    return tuple(name for _, name in curves)


def _http(ctx: f.Ctx, node: Node) -> tuple[tuple[str, str], ...]:
    if node.kind == "null":
        return ()
    keys = f.mapping(ctx, node, "http_server_config", HTTP_KEYS)
    inner = ctx.under("http_server_config")
    if "http2" in keys and f.boolean(inner, keys["http2"], "http2"):
        raise inner.error(keys["http2"], "http2", "HTTP/2 is not available (the server speaks "
                          "HTTP/1.1); set http2: false or remove it")
    if "headers" not in keys or keys["headers"].kind == "null":
        return ()
    entries = f.mapping(inner, keys["headers"], "headers", tuple(HEADERS))
    out = []
    where = inner.under("headers")
    for name, value_node in entries.items():
        value = _str(where, value_node, name)
        if value == "":
            continue  # the toolkit's "unset if blank"
        if not _HEADER_VALUE.fullmatch(value):
            raise where.error(value_node, name, "a header value is one line of printable ASCII, up to 4096 characters")
        allowed = HEADERS[name]
        if allowed is not None and value.lower() not in allowed:
            raise where.error(value_node, name, f"invalid value {value!r}; expected {' or '.join(allowed)}")
        out.append((name, value))
    return tuple(out)


def _users(ctx: f.Ctx, node: Node) -> tuple[tuple[str, bytes], ...]:
    if node.kind == "null":
        return ()
    entries = f.mapping(ctx, node, "basic_auth_users", None)
    inner = ctx.under("basic_auth_users")
    out = []
    for name, value_node in entries.items():
        if not _USER.fullmatch(name):
            raise inner.error(value_node, name, "a user name is 1 to 256 characters, without ':' or control characters")
        value = _str(inner, value_node, name)
        if not _BCRYPT.fullmatch(value):
            # Never echo the value: someone may have pasted a password instead of a hash.
            raise inner.error(value_node, name, "expected a bcrypt hash ($2y$10$... of 60 characters; "
                              "htpasswd -nBC 10 \"\" | tr -d ':\\n' makes one)")
        out.append((name, value.encode("ascii")))
    return tuple(out)


def _rate(ctx: f.Ctx, node: Node) -> RateLimitConfig | None:
    if node.kind == "null":
        return None
    keys = f.mapping(ctx, node, "rate_limit", RATE_KEYS)
    inner = ctx.under("rate_limit")
    if "interval" not in keys:
        raise inner.error(node, None, "interval is required (0 disables the rate limit)")
    interval_node = keys["interval"]
    raw = str(interval_node.value) if interval_node.kind in ("str", "int") else None
    if raw is None:
        raise inner.error(interval_node, "interval", f"expected a duration like 100ms, got {f.describe(interval_node)}")
    try:
        interval = 0.0 if raw == "0" else parse_duration(raw)
    except UnitError as exc:
        raise inner.error(interval_node, "interval", f"invalid duration {raw!r}: {exc.hint}") from None
    if not 0 <= interval <= MAX_RATE_INTERVAL:
        raise inner.error(interval_node, "interval", f"must be between 0s and 1d, got {raw!r}")
    if interval == 0:
        return None
    if "burst" not in keys:
        raise inner.error(node, None, "burst is required with a non-zero interval")
    burst = f.integer(inner, keys["burst"], "burst", 1, 1_000_000)
    return RateLimitConfig(interval=interval, burst=burst)
