"""Guarded TCP connect and TLS for the stream probers (websocket, tls): phases timed, each
step noted for `/probe?debug=true`, failures mapped to reasons."""

from __future__ import annotations

import asyncio
import socket
import ssl
from time import perf_counter

from ...config.model import TLSConfig
from .base import ProbeContext
from .guard import TargetNotAllowed, guard_for
from .tls import client_context, peer_cert_expiry


class Failed(Exception):
    """A probe failure already mapped to one of REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Timer:
    """Phases measured back to back from the probe's start, and the facts found on the way
    (ProbeResult.facts: the TLS version ...)."""

    def __init__(self) -> None:
        self.start = self.mark = perf_counter()
        self.phases: dict[str, float] = {}
        self.facts: dict[str, object] = {}

    def lap(self, phase: str) -> float:
        """Close `phase` now; returns its seconds."""
        now = perf_counter()
        self.phases[phase] = now - self.mark
        self.mark = now
        return self.phases[phase]

    def restart(self) -> None:
        """Start the next phase now (the time since the last lap belongs to none)."""
        self.mark = perf_counter()

    def elapsed(self) -> float:
        """Seconds since the start."""
        return perf_counter() - self.start


async def resolve(host: str, port: int, ctx: ProbeContext, timer: Timer,
                  kind: socket.SocketKind = socket.SOCK_STREAM) -> list[tuple]:
    """getaddrinfo() entries of host:port that allowed_targets lets the probe reach."""
    ctx.note(f"resolving {host}")
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=kind)
    except OSError as exc:
        timer.lap("resolve")
        raise Failed("dns", f"{host}: cannot resolve: {exc.strerror or exc}") from None
    timer.lap("resolve")
    ctx.note(f"resolved {host} to {', '.join(dict.fromkeys(i[4][0] for i in infos))}")
    guard = guard_for(ctx.allowed_targets)
    if guard is not None:
        try:
            infos = guard.filter_infos(host, port, infos)
        except TargetNotAllowed as exc:
            ctx.note(f"refused: {exc}")
            raise Failed("other", str(exc)) from None
    return infos


async def connect(host: str, port: int, ctx: ProbeContext, timer: Timer) -> socket.socket:
    """A connected non-blocking TCP socket to host:port (an allowed address), phases
    `resolve` and `connect` timed."""
    infos = await resolve(host, port, ctx, timer)
    loop = asyncio.get_running_loop()
    error: OSError | None = None
    for family, kind, proto, _, addr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            ctx.note(f"connecting to {addr[0]} port {port}")
            await loop.sock_connect(sock, addr)
        except BaseException as exc:
            sock.close()  # failed or cancelled: a probe never leaks a socket
            if not isinstance(exc, OSError):
                raise
            error = exc
            ctx.note(f"connect to {addr[0]} failed: {exc.strerror or exc}")
            continue
        timer.lap("connect")
        ctx.note(f"connected to {addr[0]} port {port}")
        return sock
    timer.lap("connect")
    detail = (error.strerror or str(error)) if error else "no address"
    raise Failed("connect", f"{host}:{port}: {detail}")


def tls_context(tls: TLSConfig) -> ssl.SSLContext:
    """The client context for `tls`; Failed(tls) when its ca_file cannot be read."""
    try:
        return client_context(tls)
    except OSError as exc:
        raise Failed("tls", f"cannot read ca_file: {exc.strerror or exc}") from None


def tls_failure(exc: BaseException, host: str, port: int) -> Failed:
    """An ssl error of the handshake as reason tls, saying why."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = f"certificate not accepted: {exc.verify_message or exc.reason}"
    elif isinstance(exc, ssl.SSLError):
        detail = f"TLS handshake failed: {exc.reason or exc}"
    else:
        detail = f"TLS handshake failed: connection closed ({type(exc).__name__})"
    return Failed("tls", f"{host}:{port}: {detail}"[:200])


async def open_stream(host: str, port: int, ctx: ProbeContext, timer: Timer,
                      tls: TLSConfig | None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, float | None]:
    """(reader, writer, certificate expiry) of a connection to host:port; with `tls` set,
    the TLS handshake is its own phase and the leaf certificate's expiry is read."""
    sock = await connect(host, port, ctx, timer)
    try:
        reader, writer = await asyncio.open_connection(sock=sock, limit=64 * 1024)
    except BaseException:
        sock.close()
        raise
    if tls is None:
        return reader, writer, None
    try:
        sslctx = tls_context(tls)
        name = tls.server_name or host
        ctx.note(f"TLS handshake with server name {name} (verify {str(tls.verify).lower()})")
        await writer.start_tls(sslctx, server_hostname=name)
    except BaseException as exc:
        writer.close()
        if isinstance(exc, Failed):
            raise
        if isinstance(exc, ssl.SSLError | ConnectionError | OSError):
            timer.lap("tls")
            failed = tls_failure(exc, host, port)
            ctx.note(failed.message)
            raise failed from None
        raise
    timer.lap("tls")
    ssl_object = writer.get_extra_info("ssl_object")
    expiry = peer_cert_expiry(ssl_object)
    version = ssl_object.version() if ssl_object is not None else None
    if version:
        timer.facts["tls_version"] = version.replace("TLSv", "TLS ")
    ctx.note(f"TLS {version} established"
             + (f", certificate expires at {expiry:.0f}" if expiry is not None else ""))
    return reader, writer, expiry


async def close(writer: asyncio.StreamWriter) -> None:
    """Close without waiting on a peer that does not answer the close."""
    writer.close()
    try:
        async with asyncio.timeout(0.2):
            await writer.wait_closed()
    except (TimeoutError, OSError, ssl.SSLError):
        pass
