"""WebSocket prober: connect, TLS for wss://, the upgrade handshake, then optionally send
one text message and wait for a message matching `expect`.

The client is a small RFC 6455 one over asyncio streams, so every phase is timed and the
address connected to passes allowed_targets. Without `expect`, a valid 101 answer (with
the right Sec-WebSocket-Accept) is success. With it, the first text or binary message
matching the regex before the deadline is success; a close frame or end of stream before
that fails with reason `expect`. Pings are answered while waiting.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import struct

from yarl import URL

from ...config.model import ServiceConfig
from ...config.redact import redact_url
from ..result import ProbeResult
from .base import ProbeContext
from .connect import Failed, Timer, close, open_stream

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
USER_AGENT = "usdcop-exporter"
MAX_HEAD = 64 * 1024  # bytes of the handshake answer read at most (the stream limit)
MAX_MESSAGE = 1 << 20  # a longer message fails the probe
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MARGIN = 0.05  # seconds kept before the hard timeout to say `expect` rather than `timeout`


def accept_key(key: bytes) -> str:
    """The Sec-WebSocket-Accept a server must answer to `key`."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


async def read_frame(reader: asyncio.StreamReader) -> tuple[bool, int, bytes]:
    """(fin, opcode, payload) of the next frame; IncompleteReadError at end of stream."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    if length > MAX_MESSAGE:
        raise Failed("other", f"message of {length} bytes is larger than {MAX_MESSAGE}")
    mask = await reader.readexactly(4) if second & 0x80 else None
    payload = await reader.readexactly(length)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bool(first & 0x80), first & 0x0F, payload


def _request(url: URL, key: str, service: ServiceConfig) -> bytes:
    host = url.host or ""
    host = f"[{host}]" if ":" in host else host
    if url.explicit_port:
        host = f"{host}:{url.explicit_port}"
    lines = [f"GET {url.raw_path_qs or '/'} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    names = {k.lower() for k, _ in service.headers}
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}")
    lines += [f"{k}: {v}" for k, v in service.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


async def _handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: URL,
                     service: ServiceConfig, ctx: ProbeContext) -> int:
    key = base64.b64encode(os.urandom(16)).decode()
    shown = ", ".join(f"{k}: ***" for k, _ in service.headers)
    ctx.note(f"sending upgrade request for {url.path or '/'}"
             + (f" with headers {shown}" if shown else ""))
    writer.write(_request(url, key, service))
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        raise Failed("handshake", "connection closed before the upgrade answer") from None
    except asyncio.LimitOverrunError:
        raise Failed("handshake", f"upgrade answer longer than {MAX_HEAD} bytes") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise Failed("handshake", "the answer is not HTTP")
    status = int(parts[1])
    ctx.note(f"upgrade answer: HTTP {status}")
    if status != 101:
        raise _HandshakeStatus(status)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get("upgrade", "").lower() != "websocket":
        raise Failed("handshake", "101 answer without Upgrade: websocket")
    if headers.get("sec-websocket-accept") != accept_key(key.encode()):
        raise Failed("handshake", "Sec-WebSocket-Accept does not match the key sent")
    return status


class _HandshakeStatus(Failed):
    def __init__(self, status: int) -> None:
        super().__init__("handshake", f"HTTP {status} instead of 101 Switching Protocols")
        self.status = status


async def _await_match(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       pattern: re.Pattern[str], ctx: ProbeContext) -> str:
    parts: list[bytes] = []
    seen = 0
    while True:
        try:
            fin, opcode, payload = await read_frame(reader)
        except asyncio.IncompleteReadError:
            raise Failed("expect", f"connection ended after {seen} message(s), none matched expect") from None
        if opcode == OP_PING:
            writer.write(encode_frame(OP_PONG, payload))
            continue
        if opcode == OP_PONG:
            continue
        if opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            raise Failed("expect", f"server closed (code {code}) after {seen} message(s), "
                                   "none matched expect")
        if opcode in (OP_TEXT, OP_BINARY, OP_CONT):
            parts.append(payload)
            if sum(map(len, parts)) > MAX_MESSAGE:
                raise Failed("other", f"message larger than {MAX_MESSAGE} bytes")
            if not fin:
                continue
            text = b"".join(parts).decode("utf-8", "replace")
            parts = []
            seen += 1
            if pattern.search(text):
                ctx.note(f"message {seen} matched expect")
                return text
            ctx.note(f"message {seen} did not match expect")
            continue
        raise Failed("other", f"unknown frame opcode {opcode}")


async def probe_websocket(service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
    """Probe a ws:// or wss:// endpoint."""
    timer = Timer()
    url = URL(service.url or "")
    secure = url.scheme == "wss"
    host, port = url.host or "", url.port or (443 if secure else 80)
    ctx.note(f"probing {redact_url(str(url.with_query(None)))}")
    expiry = None
    status = None
    writer = None
    try:
        reader, writer, expiry = await open_stream(host, port, ctx, timer,
                                                   service.tls if secure else None)
        try:
            status = await _handshake(reader, writer, url, service, ctx)
        except _HandshakeStatus as exc:
            status = exc.status
            raise
        finally:
            timer.lap("handshake")
        if service.send is not None:
            writer.write(encode_frame(OP_TEXT, service.send.encode()))
            ctx.note(f"sent a text message of {len(service.send.encode())} bytes")
        if service.expect is not None:
            pattern = re.compile(service.expect)
            remaining = ctx.timeout - timer.elapsed() - min(MARGIN, ctx.timeout / 10)
            ctx.note(f"waiting up to {max(remaining, 0):.3f}s for a message matching expect")
            try:
                async with asyncio.timeout(max(remaining, 0.0)):
                    await _await_match(reader, writer, pattern, ctx)
            except TimeoutError:
                raise Failed("expect", f"no message matched expect within {ctx.timeout:g}s") from None
            finally:
                timer.lap("first_message")
        try:
            writer.write(encode_frame(OP_CLOSE, struct.pack("!H", 1000)))
        except (OSError, RuntimeError):
            pass
    except Failed as failed:
        ctx.note(f"failure ({failed.reason}): {failed.message}")
        return ProbeResult.failure(failed.reason, timer.elapsed(), failed.message,
                                   phases=timer.phases, tls_expiry=expiry, http_status=status,
                                   facts=timer.facts)
    except (ConnectionError, OSError) as exc:
        message = f"{host}:{port}: connection dropped: {exc.strerror or type(exc).__name__}"
        ctx.note(f"failure (connect): {message}")
        return ProbeResult.failure("connect", timer.elapsed(), message, phases=timer.phases,
                                   tls_expiry=expiry, http_status=status, facts=timer.facts)
    finally:
        if writer is not None:
            await close(writer)
    ctx.note("success" + (": a message matched expect" if service.expect else ": handshake done"))
    return ProbeResult(success=True, duration_s=timer.elapsed(), phases=timer.phases,
                       tls_expiry=expiry, http_status=status, facts=timer.facts)
