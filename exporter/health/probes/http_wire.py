"""One HTTP/1.1 exchange per probe, timed at the byte.

An `Exchange` (an `asyncio.Protocol`) over a socket connected to an address already
resolved and checked against allowed_targets, and llhttp (`httptools`) parsing the answer
as it is read. Plain HTTP: the request goes out in the step that connects and the prober
reads the socket itself, each read stamped with the kernel's receive time (`http_link`).
HTTPS: the loop's transport over that socket and `loop.start_tls` (so connect and TLS are
timed apart); when the loop came round to the bytes more than a kernel tick late, the
kernel's own receive time of the last data is taken instead (`rxtime.received_at`).

Each timestamp is of the bytes, not of a coroutine resuming: the connect's end, the
request sent, the answer's first byte (end of processing), and its last byte (the
message-complete callback, or the end of the stream for a body delimited by the close)
ending transfer and the reported duration.

`exchange()` follows redirects when asked (each hop resolved and checked again), and raises
`WireError` with a probe failure reason and a message that names host:port, never the URL.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ipaddress
import socket
import ssl
import zlib
from dataclasses import dataclass
from time import perf_counter

import httptools
from yarl import URL

from ...config.services import join_host_port
from .base import ProbeContext
from .guard import TargetGuard, TargetNotAllowed
from .http_link import SocketLink, open_socket
from .http_timeline import USER_AGENT, Hop, Timeline
from .rxtime import received_at
from .tls import peer_cert_expiry

MAX_REDIRECTS = 10  # redirects followed at most when follow_redirects is on
REDIRECTS = frozenset((301, 302, 303, 307, 308))
# Answer headers the prober looks at; the others are parsed and dropped.
KEPT = frozenset((b"content-type", b"content-encoding", b"content-length",
                  b"transfer-encoding", b"location", b"date"))


class WireError(Exception):
    """A failed exchange, already mapped to a probe failure reason."""

    def __init__(self, reason: str, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.http_status = http_status


@dataclass(frozen=True, slots=True)
class Target:
    """What one URL asks for: where to connect and the request line's parts."""

    url: URL
    tls: bool
    host: str  # as written, IDNA-encoded, no brackets
    port: int
    literal: bool  # host is an IP address: nothing to resolve
    request_target: str  # path and query, percent-encoded
    host_header: str
    authorization: str | None  # Basic credentials from the URL's userinfo

    @property
    def where(self) -> str:
        """host:port for messages (the URL itself may carry credentials)."""
        return join_host_port(self.host, self.port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=16384)
def parse_target(url: str) -> Target:
    """The Target of `url`; WireError(other) when it is not an absolute http(s) URL."""
    try:
        parsed = URL(url)
        host = parsed.raw_host
        port = parsed.port
        scheme = parsed.scheme
    except (ValueError, TypeError, UnicodeError):
        raise WireError("other", "invalid URL or redirect target") from None
    if scheme not in ("http", "https") or not host or port is None:
        raise WireError("other", "invalid URL or redirect target")
    auth = None
    if parsed.user is not None:
        pair = f"{parsed.user}:{parsed.password or ''}".encode()
        auth = "Basic " + base64.b64encode(pair).decode("ascii")
    return Target(
        url=parsed, tls=scheme == "https", host=host, port=port, literal=_is_ip(host),
        request_target=parsed.raw_path_qs or "/",
        host_header=parsed.host_port_subcomponent or host, authorization=auth,
    )


@functools.lru_cache(maxsize=16384)
def request_bytes(method: str, target: Target, headers: tuple[tuple[str, str], ...]) -> bytes:
    """The request head: configured headers as given, defaults for the ones not set."""
    names = {name.lower() for name, _ in headers}
    lines = [f"{method} {target.request_target} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {target.host_header}")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept" not in names:
        lines.append("Accept: */*")
    if "accept-encoding" not in names:
        lines.append("Accept-Encoding: gzip, deflate")
    if target.authorization is not None and "authorization" not in names:
        lines.append(f"Authorization: {target.authorization}")
    for name, value in headers:
        if any(c in name or c in value for c in "\r\n\0"):
            raise WireError("other", f"header {name!r} holds a line break")
        if name.lower() != "connection":
            lines.append(f"{name}: {value}")
    lines.append("Connection: close")  # one request per connection, as every probe is
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


class _Decoder:
    """gzip or deflate inflated in bounded steps, so a bomb costs at most the cap."""

    def __init__(self, encoding: str) -> None:
        # gzip (and zlib) by header; deflate without a zlib header is raw deflate.
        self.encoding = encoding
        self.inflate: zlib._Decompress | None = (
            zlib.decompressobj(47) if encoding == "gzip" else None)
        self.fed = False

    def feed(self, data: bytes, room: int) -> bytes:
        if self.inflate is None:  # deflate: zlib-wrapped or raw, by its first byte
            self.inflate = zlib.decompressobj(15 if data[0] & 0x0F == 8 else -15)
        self.fed = True
        return self.inflate.decompress(data, room)

    def finish(self) -> bytes:
        if self.inflate is None:
            return b""
        tail = self.inflate.flush()
        if self.fed and not self.inflate.eof:
            raise zlib.error("truncated stream")
        return tail


class Exchange(asyncio.Protocol):
    """One request's connection: timestamps and the answer, taken as its bytes are read."""

    def __init__(self, loop: asyncio.AbstractEventLoop, cap: int, read_body: bool,
                 head: bytes | None = None) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.cap = cap
        self.read_body = read_body
        self.head = head  # what is left to send of the request (plain HTTP)
        self.connected: float | None = None
        self.sent_at = 0.0  # when the request went out (perf_counter)
        self.stamp: float | None = None  # the kernel's receive time of the read at hand
        self.first_byte: float | None = None
        self.headers_at: float | None = None
        self.finished_at: float | None = None
        self.status: int | None = None
        self.status_line = False
        self.headers: dict[bytes, bytes] = {}
        self.body = bytearray()
        self.too_large = False
        self.close_delimited = False
        self.decoder: _Decoder | None = None

    # transport callbacks
    def arrived(self) -> float:
        """When the data at hand arrived: the read's kernel stamp, else as `received_at` says."""
        if self.stamp is not None:
            return self.stamp
        return received_at(self.transport, perf_counter(), self.first_byte or self.sent_at)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.first_byte is None:
            self.first_byte = self.arrived()
        if self.done.done():
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # 101: the answer ended at its headers
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, WireError) else
                       WireError("other", f"invalid HTTP response: {exc}"[:200], self.status))
        except httptools.HttpParserError as exc:
            what = str(exc).strip() or type(exc).__name__
            if not self.status_line:
                what = "Bad status line"
            self._fail(WireError("other", f"invalid HTTP response: {what}"[:200], self.status))

    def eof_received(self) -> bool:
        if self.headers_at is not None and self.close_delimited and not self.done.done():
            self._complete()  # the body ran to the end of the stream, as its headers said
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if exc is None and self.headers_at is not None and self.close_delimited:
            self._complete()
            return
        detail = (getattr(exc, "strerror", None) or str(exc)) if exc else "server disconnected"
        if self.headers_at is None:
            self._fail(WireError("connect", f"connection dropped: {detail}"[:200]))
        else:
            self._fail(WireError("connect", "connection dropped during the body", self.status))

    # parser callbacks
    def on_status(self, _status: bytes) -> None:
        self.status_line = True

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in KEPT:
            self.headers[name] = value

    def on_headers_complete(self) -> None:
        if self.done.done():
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.headers = {}  # an interim answer: the real one follows
            self.status_line = False
            return
        self.headers_at = perf_counter()
        self.status = status
        if not self.read_body or status == 101:
            self._complete()
            return
        encoding = self.headers.get(b"content-encoding", b"").strip().lower()
        if encoding in (b"gzip", b"x-gzip", b"deflate"):
            self.decoder = _Decoder("deflate" if encoding == b"deflate" else "gzip")
        chunked = b"chunked" in self.headers.get(b"transfer-encoding", b"").lower()
        self.close_delimited = (not chunked and b"content-length" not in self.headers
                                and status not in (204, 304))

    def on_body(self, chunk: bytes) -> None:
        if self.done.done():
            return
        room = self.cap + 1 - len(self.body)
        if self.decoder is not None:
            try:
                chunk = self.decoder.feed(chunk, room)
            except zlib.error:
                self._fail(WireError("bad_body", "body cannot be decompressed", self.status))
                return
        self.body += chunk[:room]
        if len(self.body) > self.cap:
            self.too_large = True
            self._complete()

    def on_message_complete(self) -> None:
        if self.status is not None and not self.done.done():
            self._complete()

    # outcome
    def _complete(self) -> None:
        self.finished_at = self.arrived()
        if self.decoder is not None and not self.too_large:
            try:
                self.body += self.decoder.finish()
            except zlib.error:
                self._fail(WireError("bad_body", "body cannot be decompressed", self.status))
                return
            if len(self.body) > self.cap:
                self.too_large = True
        self.parser = None  # parser and protocol refer to each other: no cycle left behind
        self.done.set_result(None)

    def _fail(self, error: WireError) -> None:
        self.parser = None
        if not self.done.done():
            self.done.set_exception(error)
            self.done.exception()  # retrieved here: the prober may be gone already


@dataclass(slots=True)
class Answer:
    """The final answer of an exchange (after redirects)."""

    status: int
    body: bytes | None  # None: larger than the cap
    content_type: str | None
    date: str | None
    hops: int
    finished_at: float


def _header(exchange: Exchange, name: bytes) -> str | None:
    value = exchange.headers.get(name)
    return value.decode("latin-1") if value is not None else None


async def _addresses(target: Target, guard: TargetGuard | None, hop: Hop, ctx: ProbeContext
                     ) -> list[str]:
    if target.literal:
        if guard is not None:
            guard.check(target.host, target.host, target.port)
        return [target.host]
    loop = asyncio.get_running_loop()
    hop.dns_start = perf_counter()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise WireError("dns", f"{target.where}: cannot resolve: {exc.strerror or exc}"[:200]
                        ) from None
    hop.dns_end = perf_counter()
    if guard is not None:
        infos = guard.filter_infos(target.host, target.port, infos)
    found = list(dict.fromkeys(info[4][0] for info in infos))
    ctx.note(f"resolve: {target.host} -> {', '.join(found)}")
    return found


async def _connect(target: Target, addresses: list[str], exchange: Exchange, hop: Hop,
                   ctx: ProbeContext) -> asyncio.Transport | SocketLink:
    """The first address that takes the connection: the prober's own link for plain HTTP
    (request already on its way), the loop's transport for TLS to start on."""
    error: OSError | None = None
    for address in addresses:
        try:
            sock = await open_socket(address, target.port, exchange)
        except OSError as exc:
            error = exc
            continue
        hop.tcp_done = exchange.connected
        ctx.note(f"connect: {join_host_port(address, target.port)}")
        if not target.tls:
            return SocketLink(sock, exchange)
        try:
            transport, _ = await asyncio.get_running_loop().create_connection(
                lambda: exchange, sock=sock)
        except BaseException:
            sock.close()
            raise
        return transport  # type: ignore[return-value]
    detail = (error.strerror or str(error)) if error is not None else "no address"
    raise WireError("connect", f"{target.where}: {detail}"[:200])


async def _start_tls(target: Target, transport: asyncio.Transport, exchange: Exchange, hop: Hop,
                     sslctx: ssl.SSLContext, server_name: str | None, ctx: ProbeContext
                     ) -> asyncio.Transport:
    loop = asyncio.get_running_loop()
    try:
        tls = await loop.start_tls(transport, exchange, sslctx,
                                   server_hostname=server_name or target.host)
    except ssl.SSLCertVerificationError as exc:
        transport.abort()
        raise WireError("tls", f"{target.where}: certificate: {exc}"[:200]) from None
    except (ssl.SSLError, ConnectionError) as exc:
        transport.abort()
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise WireError("tls", f"{target.where}: TLS handshake: {detail}"[:200]) from None
    if tls is None:
        transport.abort()
        raise WireError("tls", f"{target.where}: TLS handshake: TLS did not start")
    hop.tls_done = perf_counter()
    exchange.transport = tls  # type: ignore[assignment]
    hop.cert_expiry = peer_cert_expiry(tls.get_extra_info("ssl_object"))
    ctx.note("tls: handshake done")
    return tls  # type: ignore[return-value]


async def _one(target: Target, method: str, headers: tuple[tuple[str, str], ...], cap: int,
               read_body: bool, tls: tuple[ssl.SSLContext, str | None] | None,
               guard: TargetGuard | None, timeline: Timeline, ctx: ProbeContext) -> Exchange:
    """One request on a fresh connection; the Exchange holds its answer."""
    hop = Hop(perf_counter())
    hop.conn_start = hop.start  # connect is counted from here, less resolve and TLS
    timeline.hops.append(hop)
    try:
        addresses = await _addresses(target, guard, hop, ctx)
    except TargetNotAllowed as exc:
        raise WireError("other", str(exc)) from None
    head = request_bytes(method, target, headers)
    if target.tls and tls is None:
        raise WireError("other", "invalid URL or redirect target")
    exchange = Exchange(asyncio.get_running_loop(), cap, read_body,
                        None if target.tls else head)
    transport = await _connect(target, addresses, exchange, hop, ctx)
    try:
        if not isinstance(transport, SocketLink):  # TLS; a SocketLink writes the request itself
            transport = await _start_tls(target, transport, exchange, hop, tls[0], tls[1], ctx)
            exchange.sent_at = perf_counter()
            transport.write(head)
        ctx.note(f"request sent: {method} to {target.where}")
        await exchange.done
    finally:
        transport.abort()  # nothing more is read; the connection is not reused
        # when the request went out whole (an answer may come before a large one did)
        hop.conn_end = exchange.sent_at or exchange.connected
    hop.headers = exchange.headers_at
    hop.first_byte = exchange.first_byte
    ctx.note(f"status line: HTTP {exchange.status}")
    return exchange


async def exchange(url: str, method: str, headers: tuple[tuple[str, str], ...], *, cap: int,
                   read_body: bool, follow_redirects: bool,
                   tls: tuple[ssl.SSLContext, str | None] | None, guard: TargetGuard | None,
                   timeline: Timeline, ctx: ProbeContext) -> Answer:
    """Send the request, follow redirects when asked, and return the final answer."""
    target = parse_target(url)
    hops = 0
    while True:
        ex = await _one(target, method, headers, cap, read_body, tls, guard, timeline, ctx)
        timeline.status = ex.status
        location = _header(ex, b"location")
        if not (follow_redirects and ex.status in REDIRECTS and location):
            break
        if hops == MAX_REDIRECTS:
            raise WireError("status", f"more than {MAX_REDIRECTS} redirects", ex.status)
        hops += 1
        try:
            nxt = parse_target(str(target.url.join(URL(location))))
        except ValueError:
            raise WireError("other", "invalid URL or redirect target") from None
        if ex.status == 303 and method != "HEAD" or ex.status in (301, 302) and method == "POST":
            method = "GET"
        if (nxt.host, nxt.port, nxt.tls) != (target.host, target.port, target.tls):
            # Credentials meant for one origin do not follow a redirect to another.
            headers = tuple((k, v) for k, v in headers
                            if k.lower() not in ("authorization", "cookie"))
        ctx.note(f"redirect: HTTP {ex.status} to {nxt.where}")
        target = nxt
    body = None if ex.too_large else bytes(ex.body)
    ctx.note(f"body done: {len(ex.body)} bytes" + (" (over max_body)" if ex.too_large else ""))
    return Answer(
        status=ex.status or 0, body=body,
        content_type=_header(ex, b"content-type"), date=_header(ex, b"date"),
        hops=hops, finished_at=ex.finished_at or perf_counter(),
    )
