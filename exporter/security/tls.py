"""The server side of TLS: an SSLContext from tls_server_config, rotation, failing closed.

The listening socket keeps the SSLContext it started with; its SNI callback (called for
every ClientHello, with or without a server name) hands each new handshake the newest
context, or aborts it while the certificate files cannot be read. So a rotated
certificate is served without a restart, and a vanished key serves nothing.
"""

from __future__ import annotations

import os
import ssl
import tempfile

from ..config.errors import ConfigError
from .webconfig import CIPHER_SUITES, CLIENT_AUTH_TYPES, CURVES, TLSServerConfig

_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_VERIFY = dict(zip(CLIENT_AUTH_TYPES, (ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED), strict=True))


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        text = str(exc.reason or "").replace("_", " ").lower() or exc.__class__.__name__
        return text
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def _error(cfg_source: str | None, field: str, message: str) -> ConfigError:
    return ConfigError(message, file=cfg_source, field=f"tls_server_config.{field}")


def _load_chain(ctx: ssl.SSLContext, cfg: TLSServerConfig, source: str | None) -> None:
    field = "cert_file" if cfg.cert_file else "cert"
    with tempfile.TemporaryDirectory(prefix="usdcop-tls-") as tmp:  # 0700, for inline PEM only
        cert, key = cfg.cert_file, cfg.key_file
        if cfg.cert is not None:
            cert = os.path.join(tmp, "cert.pem")
            with open(cert, "w", opener=lambda p, fl: os.open(p, fl, 0o600)) as fh:
                fh.write(cfg.cert)
        if cfg.key is not None:
            key = os.path.join(tmp, "key.pem")
            with open(key, "w", opener=lambda p, fl: os.open(p, fl, 0o600)) as fh:
                fh.write(cfg.key)
        try:
            ctx.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            raise _error(source, field, f"certificate and key are not a usable pair: {_why(exc)}") from None
        except OSError as exc:
            raise _error(source, field, f"cannot read the certificate or key: {_why(exc)}") from None


def build_server_context(cfg: TLSServerConfig, source: str | None = None) -> ssl.SSLContext:
    """A server SSLContext honouring every setting of `cfg`; ConfigError names what cannot be."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[cfg.min_version]
    ctx.maximum_version = _VERSIONS[cfg.max_version]
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    if cfg.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols(["http/1.1"])
    _load_chain(ctx, cfg, source)
    if cfg.client_ca_file or cfg.client_ca:
        field = "client_ca_file" if cfg.client_ca_file else "client_ca"
        try:
            ctx.load_verify_locations(cafile=cfg.client_ca_file, cadata=cfg.client_ca)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise _error(source, field, f"cannot load the client CA: {_why(exc)}") from None
    ctx.verify_mode = _VERIFY[cfg.client_auth_type]
    suites = [CIPHER_SUITES[name] for name in cfg.cipher_suites if name in CIPHER_SUITES]
    if suites:
        try:
            ctx.set_ciphers(":".join(suites))
        except ssl.SSLError:
            raise _error(source, "cipher_suites", "none of these suites is available in this "
                         "Python's OpenSSL") from None
        offered = {c["name"] for c in ctx.get_ciphers()}
        for name in cfg.cipher_suites:
            if name in CIPHER_SUITES and CIPHER_SUITES[name] not in offered:
                raise _error(source, "cipher_suites", f"{name} is not available in this Python's "
                             f"OpenSSL ({ssl.OPENSSL_VERSION})")
    for name in cfg.curve_preferences:
        try:
            ctx.set_ecdh_curve(CURVES[name])
        except (ValueError, ssl.SSLError):
            raise _error(source, "curve_preferences", f"{name} is not available in this Python's "
                         "OpenSSL") from None
    return ctx


class ServerTLS:
    """The listener's SSLContext, pointing each new handshake at the newest certificate."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context  # given to the listening socket, once
        self.current = context
        self.failure: str | None = None
        context.sni_callback = self._select

    def rotate(self, context: ssl.SSLContext) -> None:
        """Serve `context`'s certificate to new connections from now on."""
        self.current = context
        self.failure = None

    def fail_closed(self, reason: str) -> None:
        """Refuse new handshakes until rotate() is called again."""
        self.failure = reason

    def _select(self, ssl_object: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext):
        if self.failure is not None:
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        if self.current is not self.context:
            ssl_object.context = self.current
        return None


def peer_sans(ssl_object: ssl.SSLObject | None) -> set[str]:
    """Subject alternative names of a verified client certificate (empty without one)."""
    if ssl_object is None:
        return set()
    cert = ssl_object.getpeercert()
    if not cert:
        return set()
    return {str(value) for _kind, value in cert.get("subjectAltName", ())}
