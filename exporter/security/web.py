"""The running web configuration: re-read when its files change, failing closed when it cannot be.

Like the exporter-toolkit, which reads the file on every request, changes apply without a
restart: users, headers and the rate limit at once, certificate, key and client CA file
contents at the next handshake. A file that becomes unreadable or invalid shuts the door
(new TLS handshakes are aborted, requests get 503) until it is readable and valid again.
A change the running listener cannot take (TLS switched on or off, other TLS settings)
also fails closed, and the log says a restart applies it.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass, replace

from loguru import logger

from ..config.errors import ConfigError
from .basic_auth import BasicAuth
from .ratelimit import TokenBucket
from .tls import ServerTLS, build_server_context
from .webconfig import TLSServerConfig, WebConfig, load_web_config

RECHECK_INTERVAL = 1.0  # seconds between looks at the files' stat()


@dataclass(frozen=True)
class _Loaded:
    config: WebConfig
    context: ssl.SSLContext | None
    basic_auth: BasicAuth | None
    rate: TokenBucket | None


def _stamp(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    # ctime too: chmod changes it and nothing else, and an unreadable file must be noticed.
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size


def _load(path: str) -> _Loaded:
    config = load_web_config(path)
    context = build_server_context(config.tls, path) if config.tls is not None else None
    basic = BasicAuth(dict(config.users)) if config.users else None
    rate = None
    if config.rate_limit is not None:
        rate = TokenBucket(config.rate_limit.interval, config.rate_limit.burst)
    return _Loaded(config, context, basic, rate)


def _settings(tls: TLSServerConfig) -> TLSServerConfig:
    """`tls` without inline PEM: what cannot change under a running listener."""
    return replace(tls, cert=None, key=None, client_ca=None)


class WebSecurity:
    """TLS, basic-auth users, response headers and the rate limit of one web config file."""

    def __init__(self, path: str) -> None:
        """Load `path`; ConfigError names what is wrong (start-up refuses to go on)."""
        self.path = path
        self._now = _load(path)
        self.tls = ServerTLS(self._now.context) if self._now.context is not None else None
        self.failure: str | None = None
        self._stamps = self._read_stamps(self._now.config)

    # -- what the server and the middlewares read ---------------------------------------

    @property
    def config(self) -> WebConfig:
        """The configuration in force."""
        return self._now.config

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The SSLContext to listen with, or None for plain HTTP."""
        return self.tls.context if self.tls is not None else None

    @property
    def rate(self) -> TokenBucket | None:
        """The rate limiter in force, if any."""
        return self._now.rate

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """Headers added to every response."""
        return self._now.config.headers

    @property
    def active(self) -> bool:
        """True while basic-auth users are configured (read routes then need one)."""
        return self._now.basic_auth is not None

    async def check(self, authorization_header: str | None, client: str = "") -> bool:
        """The basic-auth check (False without users, or while failed closed); AuthBusy
        when the bcrypt queue is full for `client` (see BasicAuth.check)."""
        basic = self._now.basic_auth
        if basic is None or self.failure is not None:
            return False
        return await basic.check(authorization_header, client)

    # -- reloading ------------------------------------------------------------------------

    def _read_stamps(self, config: WebConfig) -> dict[str, tuple[int, ...] | None]:
        files = [self.path, *(config.tls.files() if config.tls is not None else ())]
        return {p: _stamp(p) for p in files}

    def refresh(self) -> bool:
        """Re-read the files when any changed; True when something changed. Blocking: run it in a thread."""
        stamps = {p: _stamp(p) for p in self._stamps}
        if stamps == self._stamps:
            return False
        try:
            loaded = _load(self.path)
            self._check_live(loaded)
        except ConfigError as exc:
            self._stamps = stamps
            self._fail(str(exc))
            return True
        self._stamps = self._read_stamps(loaded.config)
        self._now = loaded
        if self.tls is not None and loaded.context is not None:
            self.tls.rotate(loaded.context)
        was_failed, self.failure = self.failure is not None, None
        logger.info("web configuration {} {}", self.path, "recovered" if was_failed else "reloaded")
        return True

    def _check_live(self, loaded: _Loaded) -> None:
        before, after = self._now.config.tls, loaded.config.tls
        if (before is None) != (after is None):
            raise ConfigError("tls_server_config was added or removed while running; restart to apply",
                              file=self.path)
        if before is not None and after is not None and _settings(before) != _settings(after):
            raise ConfigError("tls_server_config settings changed while running; restart to apply "
                              "(certificate, key and CA file contents are re-read without one)",
                              file=self.path)

    def _fail(self, reason: str) -> None:
        if self.failure != reason:
            logger.error("web configuration unusable, refusing connections until fixed: {}", reason)
        self.failure = reason
        if self.tls is not None:
            self.tls.fail_closed(reason)

    async def watch(self, interval: float | None = None) -> None:
        """Look for changes every `interval` seconds (RECHECK_INTERVAL) until cancelled."""
        while True:
            await asyncio.sleep(RECHECK_INTERVAL if interval is None else interval)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # a bug here must not stop the watch; fail closed instead
                logger.exception("web configuration check failed")
                self._fail("internal error while re-reading the web configuration")
