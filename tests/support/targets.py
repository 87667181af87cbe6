"""Real target servers for probe tests: HTTP, HTTPS (good, expired, wrong host) and raw TCP,
all on 127.0.0.1, free ports, one aiohttp app behind every HTTP(S) listener.

    from tests.support.targets import start_targets

    async with start_targets() as t:
        t.url("/healthy")                 # http://127.0.0.1:PORT/healthy
        t.tls_url("/healthy")             # https://localhost:PORT/healthy, trusted by t.ca_file
        t.expired_tls_url("/healthy")     # certificate expired yesterday
        t.wrong_host_tls_url("/healthy")  # certificate for wrong.example
        t.tls_not_after                   # unix seconds, notAfter of the good certificate
        t.tcp_address                     # "127.0.0.1:PORT": accepts, counts, closes
        t.silent_tcp_address              # accepts and never says a word (a frozen server)
        t.junk_tcp_address                # answers anything with bytes that are not HTTP
        t.peers                           # client (host, port) of every HTTP request
        t.hits["/reset"]                  # HTTP requests seen per path
        await t.wait_until(lambda: t.hits["/hang"] == 1)   # re-checked on every request/accept
        t.toggle = False                  # /toggle answers 503 unhealthy from now on

Pytest: `targets` is a fixture; import it into a conftest to use it
(`from tests.support.targets import targets  # noqa: F401`).

Routes (GET and HEAD; `?code=NNN` sets the HTTP status where a body is JSON):

| path | answer |
|---|---|
| /healthy, /degraded, /unhealthy | the health format with that status, `details` (DETAILS) and `metadata` |
| /seed/{word}, /ietf/{word}, /spring/{word} | that format with any status word |
| /503-pass | 503 carrying IETF `pass` |
| /slow?ms=300 | /healthy after a delay |
| /status/{code} | that status, text body |
| /json | JSON without a status word (JSON_DOC) |
| /text?body=OK | text/plain |
| /empty | 204, no body |
| /echo | JSON of the request's method and headers |
| /garbage | JSON content type, body that is not JSON |
| /nan | JSON content type, body with NaN |
| /huge?bytes=2097152 | a text body that big, Content-Length set |
| /gzip-healthy | /healthy's body, gzip-encoded |
| /bad-gzip | Content-Encoding gzip on bytes that are not gzip |
| /gzip-bomb?bytes=16777216 | ~16 KiB of gzip inflating to `bytes` zero bytes |
| /endless | a chunked body that never ends |
| /drip?ms=50 | one byte per `ms`, never ending |
| /hang | headers never come |
| /reset | the connection reset (RST) before any answer |
| /reset-mid-body | headers and part of the body, then RST |
| /redirect?to=/healthy | 302 to `to` |
| /redirect-chain/{n} | n redirects, then /healthy |
| /redirect-loop | 302 to itself |
| /flap | healthy and 503 unhealthy in turn, starting healthy |
| /toggle | healthy while `t.toggle`, else 503 unhealthy |
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as dt
import gzip
import json
import shutil
import socket
import ssl
import struct
import tempfile
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pytest_asyncio
import trustme
from aiohttp import web

DETAILS = {"uptime": 86400, "requests_per_minute": 120, "error_rate": 0.02, "memory_usage_mb": 512}
METADATA = {"version": "1.2.3", "region": "test"}
JSON_DOC = {"a": {"b": [1, 2.5, "x"]}, "flag": True, "nothing": None, "version": "1.2.3"}
CONTENT_TYPES = {
    "seed": "application/json",
    "ietf": "application/health+json",
    "spring": "application/vnd.spring-boot.actuator.v3+json",
}


def seed_doc(word: str) -> dict:
    """The health format with status `word`."""
    return {
        "service": "target",
        "status": word,
        "latency_ms": 3,
        "last_check": "2025-01-15T10:30:00Z",
        "details": DETAILS,
        "metadata": METADATA,
    }


def ietf_doc(word: str) -> dict:
    """An IETF health document with status `word`."""
    return {
        "status": word,
        "version": "1",
        "serviceId": "target",
        "checks": {
            "uptime": [{"componentType": "system", "observedValue": 4321, "observedUnit": "s", "status": "pass"}],
            "db:responseTime": [{"observedValue": 12, "observedUnit": "ms", "status": "pass"}],
        },
    }


def spring_doc(word: str) -> dict:
    """A Spring Boot actuator health document with status `word`."""
    return {"status": word, "components": {"db": {"status": word}, "ping": {"status": "UP"}}}


DOCS = {"seed": seed_doc, "ietf": ietf_doc, "spring": spring_doc}


# -- TLS material, made once per process ----------------------------------------------


@dataclass(frozen=True)
class TLSMaterial:
    """A test CA and three server contexts: good, expired, wrong host."""

    ca_file: str
    not_after: float
    good: ssl.SSLContext
    expired: ssl.SSLContext
    wrong_host: ssl.SSLContext


def _server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    return ctx


@lru_cache(maxsize=1)
def tls_material() -> TLSMaterial:
    """The process's test CA (ECDSA: fast) and its certificates."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    not_after = now + dt.timedelta(days=90)
    ca = trustme.CA()
    good = ca.issue_cert("127.0.0.1", "localhost", not_after=not_after)
    expired = ca.issue_cert(
        "127.0.0.1", "localhost",
        not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1),
    )
    wrong = ca.issue_cert("wrong.example")
    tmp = tempfile.mkdtemp(prefix="usdcop-targets-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    ca_file = str(Path(tmp) / "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    return TLSMaterial(ca_file, not_after.timestamp(), _server_context(good),
                       _server_context(expired), _server_context(wrong))


@lru_cache(maxsize=8)
def gzip_bomb(size: int) -> bytes:
    """gzip of `size` zero bytes (about a thousandth of that on the wire)."""
    return gzip.compress(b"\0" * size, compresslevel=9)


# -- the servers -----------------------------------------------------------------------


@dataclass
class Targets:
    """Running target servers; see the module docstring for the routes."""

    port: int = 0
    tls_port: int = 0
    expired_tls_port: int = 0
    wrong_host_tls_port: int = 0
    tcp_port: int = 0
    silent_tcp_port: int = 0
    junk_tcp_port: int = 0
    ca_file: str = ""
    tls_not_after: float = 0.0
    hits: Counter = field(default_factory=Counter)
    peers: list = field(default_factory=list)
    tcp_accepted: int = 0
    toggle: bool = True
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _flap: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_until(self, predicate, limit: float = 5.0) -> None:
        """Wait until `predicate()` holds; it is re-checked after every request and TCP accept."""
        async with asyncio.timeout(limit), self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """Plain HTTP URL of `path`."""
        return self.base_url + path

    def tls_url(self, path: str, host: str = "localhost") -> str:
        """HTTPS URL of `path` on the good certificate (valid for localhost and 127.0.0.1)."""
        return f"https://{host}:{self.tls_port}{path}"

    def expired_tls_url(self, path: str) -> str:
        """HTTPS URL of `path` behind an expired certificate."""
        return f"https://localhost:{self.expired_tls_port}{path}"

    def wrong_host_tls_url(self, path: str) -> str:
        """HTTPS URL of `path` behind a certificate for wrong.example."""
        return f"https://localhost:{self.wrong_host_tls_port}{path}"

    @property
    def tcp_address(self) -> str:
        """host:port of the raw TCP listener."""
        return f"127.0.0.1:{self.tcp_port}"

    @property
    def silent_tcp_address(self) -> str:
        """host:port of a listener that accepts and never answers."""
        return f"127.0.0.1:{self.silent_tcp_port}"

    @property
    def junk_tcp_address(self) -> str:
        """host:port of a listener that answers with bytes that are not HTTP."""
        return f"127.0.0.1:{self.junk_tcp_port}"


def _code(request: web.Request, default: int = 200) -> int:
    return int(request.query.get("code", default))


def _json(doc: object, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(body=json.dumps(doc).encode(), status=status, content_type=content_type)


def _reset(request: web.Request) -> None:
    """Abort the connection with an RST (SO_LINGER 0), not a polite FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _app(t: Targets) -> web.Application:
    routes = web.RouteTableDef()

    @web.middleware
    async def count(request: web.Request, handler):
        t.hits[request.path] += 1
        t.peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        await t._notify()
        return await handler(request)

    async def forever() -> None:
        await t.stopping.wait()
        raise web.HTTPServiceUnavailable()

    @routes.get("/healthy")
    async def healthy(request):
        return _json(seed_doc("healthy"), _code(request))

    @routes.get("/degraded")
    async def degraded(request):
        return _json(seed_doc("degraded"), _code(request))

    @routes.get("/unhealthy")
    async def unhealthy(request):
        return _json(seed_doc("unhealthy"), _code(request))

    @routes.get("/{fmt:seed|ietf|spring}/{word}")
    async def formatted(request):
        fmt = request.match_info["fmt"]
        doc = DOCS[fmt](request.match_info["word"])
        return _json(doc, _code(request), CONTENT_TYPES[fmt])

    @routes.get("/503-pass")
    async def unavailable_pass(request):
        return _json(ietf_doc("pass"), 503, CONTENT_TYPES["ietf"])

    @routes.get("/slow")
    async def slow(request):
        await asyncio.sleep(int(request.query.get("ms", 300)) / 1000)
        return _json(seed_doc("healthy"))

    @routes.get(r"/status/{code:\d{3}}")
    async def status(request):
        code = int(request.match_info["code"])
        return web.Response(text=f"status {code}", status=code)

    @routes.get("/json")
    async def plain_json(request):
        return _json(JSON_DOC, _code(request))

    @routes.get("/text")
    async def text(request):
        return web.Response(text=request.query.get("body", "OK"), status=_code(request))

    @routes.get("/empty")
    async def empty(request):
        return web.Response(status=204)

    @routes.get("/echo")
    async def echo(request):
        return _json({"method": request.method, "headers": dict(request.headers)})

    @routes.get("/garbage")
    async def garbage(request):
        return web.Response(body=b"{this is not json", content_type="application/json")

    @routes.get("/nan")
    async def nan(request):
        body = b'{"status": "healthy", "details": {"uptime": NaN}}'
        return web.Response(body=body, content_type="application/json")

    @routes.get("/huge")
    async def huge(request):
        return web.Response(body=b"x" * int(request.query.get("bytes", 2 * 1024 * 1024)))

    @routes.get("/gzip-healthy")
    async def gzip_healthy(request):
        body = gzip.compress(json.dumps(seed_doc("healthy")).encode())
        return web.Response(body=body, content_type="application/json",
                            headers={"Content-Encoding": "gzip"})

    @routes.get("/bad-gzip")
    async def bad_gzip(request):
        return web.Response(body=b"\x1f\x8b\x08\x00this is not gzip at all" * 4,
                            content_type="application/json", headers={"Content-Encoding": "gzip"})

    @routes.get("/gzip-bomb")
    async def bomb(request):
        body = gzip_bomb(int(request.query.get("bytes", 16 * 1024 * 1024)))
        return web.Response(body=body, content_type="application/json",
                            headers={"Content-Encoding": "gzip"})

    @routes.get("/endless")
    async def endless(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = b"y" * 65536
        try:
            while not t.stopping.is_set():
                await resp.write(chunk)
        except ConnectionError:  # the prober hung up, as it should
            pass
        return resp

    @routes.get("/drip")
    async def drip(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        pause = int(request.query.get("ms", 50)) / 1000
        try:
            while not t.stopping.is_set():
                await resp.write(b".")
                await asyncio.sleep(pause)
        except ConnectionError:
            pass
        return resp

    @routes.get("/hang")
    async def hang(request):
        await forever()

    @routes.get("/reset")
    async def reset(request):
        _reset(request)
        await forever()

    @routes.get("/reset-mid-body")
    async def reset_mid_body(request):
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "100000"})
        await resp.prepare(request)
        await resp.write(b'{"status": "healthy", "padding": "' + b"z" * 1000)
        await asyncio.sleep(0.01)  # let the partial body leave before the RST
        _reset(request)
        await forever()

    @routes.get("/redirect")
    async def redirect(request):
        raise web.HTTPFound(request.query.get("to", "/healthy"))

    @routes.get(r"/redirect-chain/{n:\d+}")
    async def chain(request):
        n = int(request.match_info["n"])
        raise web.HTTPFound(f"/redirect-chain/{n - 1}" if n > 1 else "/healthy")

    @routes.get("/redirect-loop")
    async def loop(request):
        raise web.HTTPFound("/redirect-loop")

    @routes.get("/flap")
    async def flap(request):
        t._flap += 1
        ok = t._flap % 2 == 1
        return _json(seed_doc("healthy" if ok else "unhealthy"), 200 if ok else 503)

    @routes.get("/toggle")
    async def toggle(request):
        return _json(seed_doc("healthy" if t.toggle else "unhealthy"), 200 if t.toggle else 503)

    app = web.Application(middlewares=[count])
    app.add_routes(routes)
    return app


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@asynccontextmanager
async def start_targets():
    """Start every target server; stops them all (and ends hanging handlers) on exit."""
    material = tls_material()
    t = Targets(ca_file=material.ca_file, tls_not_after=material.not_after)
    runner = web.AppRunner(_app(t), access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    listeners = {}
    for name, ctx in (("port", None), ("tls_port", material.good),
                      ("expired_tls_port", material.expired),
                      ("wrong_host_tls_port", material.wrong_host)):
        sock = _listener()
        listeners[name] = sock.getsockname()[1]
        await web.SockSite(runner, sock, ssl_context=ctx).start()
    for name, port in listeners.items():
        setattr(t, name, port)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        t.tcp_accepted += 1
        writer.close()
        await t._notify()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await t.stopping.wait()
        writer.close()

    async def junk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02 not http\r\n\r\n")
        try:
            await writer.drain()
            await reader.read(1)
        except ConnectionError:
            pass
        writer.close()

    tcp = await asyncio.start_server(accept, "127.0.0.1", 0)
    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    junk_server = await asyncio.start_server(junk, "127.0.0.1", 0)
    t.tcp_port = tcp.sockets[0].getsockname()[1]
    t.silent_tcp_port = silent.sockets[0].getsockname()[1]
    t.junk_tcp_port = junk_server.sockets[0].getsockname()[1]
    try:
        yield t
    finally:
        t.stopping.set()
        for server in (tcp, silent, junk_server):
            server.close()
            await server.wait_closed()
        await runner.cleanup()


@pytest_asyncio.fixture
async def targets():
    """Every target server, started for one test."""
    async with start_targets() as t:
        yield t
