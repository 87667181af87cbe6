"""The HTTP prober against raw servers that write exact bytes: chunked bodies, interim 1xx
answers, bodies delimited by the close, a close in the middle of the headers; when the
duration ends; and the probe's own debug lines."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from time import perf_counter

import pytest

from exporter.config.model import ServiceConfig
from exporter.health.probes import ProbeContext, run_probe, rxtime

HEALTHY = json.dumps({"status": "healthy"}).encode()

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw():
    """Start a loopback server running a script per connection → its http:// base URL."""
    servers = []

    async def start(script: Script) -> str:
        async def handle(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            try:
                await script(reader, writer)
            except ConnectionError:
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def writes(*parts: bytes, pause: float = 0.01) -> Script:
    """A script that writes each part on its own, with a pause between."""
    async def script(_reader, writer):
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(pause)
    return script


def svc(url, **kw):
    return ServiceConfig(name="raw", type="http", url=url, **kw)


async def probe(service, limit=5.0, trace=None):
    return await run_probe(service, ProbeContext(timeout=limit, trace=trace))


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


async def test_chunked_body_across_writes(raw):
    body = chunked(HEALTHY[:5], HEALTHY[5:12], HEALTHY[12:])
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    url = await raw(writes(head, body[:7], body[7:20], body[20:]))
    r = await probe(svc(url + "/health"))
    assert (r.success, r.http_status, r.reported, r.body_format) == (True, 200, "healthy", "seed")


async def test_chunked_body_over_the_cap(raw):
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    url = await raw(writes(head, chunked(b"x" * 600, b"y" * 600)))
    r = await probe(svc(url + "/health", max_body=1000))
    assert (r.reason, r.http_status) == ("body_too_large", 200)


async def test_interim_answers_before_the_real_one(raw):
    final = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(HEALTHY), HEALTHY)
    url = await raw(writes(b"HTTP/1.1 100 Continue\r\n\r\n",
                           b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
                           final))
    r = await probe(svc(url + "/health"))
    assert (r.success, r.http_status, r.reported) == (True, 200, "healthy")


async def test_body_delimited_by_the_close(raw):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    url = await raw(writes(head, HEALTHY[:9], HEALTHY[9:]))
    r = await probe(svc(url + "/health"))
    assert (r.success, r.http_status, r.reported) == (True, 200, "healthy")
    assert r.phases["transfer"] > 0


async def test_body_delimited_by_the_close_then_reset(raw):
    async def reset(_reader, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + HEALTHY[:9])
        await writer.drain()
        await asyncio.sleep(0.05)
        # RST, not FIN (linger 0): the body did not end, it was cut.
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                   struct.pack("ii", 1, 0))
        writer.transport.abort()

    url = await raw(reset)
    r = await probe(svc(url + "/health"))
    assert (r.success, r.reason, r.http_status) == (False, "connect", 200)
    assert r.message == "connection dropped during the body"


async def test_server_closing_in_the_middle_of_the_headers(raw):
    url = await raw(writes(b"HTTP/1.1 200 OK\r\nContent-Type: appli"))
    r = await probe(svc(url + "/health"))
    assert (r.success, r.reason, r.http_status) == (False, "connect", None)
    assert r.message.startswith("connection dropped")


async def test_duration_ends_when_the_bytes_arrived_not_when_the_prober_resumed(raw):
    # Another callback holds the loop for HOG seconds each turn, as a busy sidecar would.
    # The answer is taken in the transport's callback; the prober's coroutine resumes only
    # after the next turn of the hog, so it returns at least HOG after the last byte came.
    hog_s = 0.03
    running = True

    def hog():
        if running:
            time.sleep(hog_s)
            asyncio.get_running_loop().call_soon(hog)

    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    url = await raw(writes(head % len(HEALTHY) + HEALTHY))
    asyncio.get_running_loop().call_soon(hog)
    try:
        started = perf_counter()
        r = await probe(svc(url + "/health"))
        returned = perf_counter() - started
    finally:
        running = False
    assert r.success
    assert returned - r.duration_s >= hog_s


async def test_debug_lines_follow_the_probe_and_hold_no_secret(raw):
    url = await raw(writes(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(HEALTHY), HEALTHY)))
    lines: list[str] = []
    secret_url = url.replace("http://", "http://user:s3cret@") + "/health?token=s3cret"
    r = await probe(svc(secret_url, headers=(("Authorization", "Bearer s3cret"),)),
                    trace=lines.append)
    assert r.success
    text = "\n".join(lines)
    for step in ("connect: 127.0.0.1:", "request sent: GET", "status line: HTTP 200",
                 "body done: ", "decision: success"):
        assert step in text, text
    assert "s3cret" not in text


async def test_debug_lines_name_the_reason_of_a_failure():
    lines: list[str] = []
    r = await probe(svc("http://no-such-host.invalid/health"), trace=lines.append)
    assert r.reason == "dns"
    assert lines[-1].startswith("decision: dns: no-such-host.invalid:80: cannot resolve")


@pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="the kernel's receive time needs TCP_INFO")
async def test_a_loop_blocked_while_the_answer_arrives_does_not_stretch_the_duration():
    # The server (a thread, so the blocked loop cannot hold it back) answers ANSWER_AFTER
    # after the request; the loop is blocked for BLOCK from just after it sent the request.
    # The kernel received the answer long before the loop could look at it: the reported
    # end lies between the answer's sending and well before the loop was free again.
    answer_after, block = 0.02, 0.15
    body = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(HEALTHY), HEALTHY)
    listener = socket.create_server(("127.0.0.1", 0))
    sent: list[float] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            time.sleep(answer_after)
            sent.append(perf_counter())
            conn.sendall(body)
            conn.recv(1)  # until the prober closes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    loop = asyncio.get_running_loop()
    unblocked: list[float] = []

    def hog() -> None:
        time.sleep(block)
        unblocked.append(perf_counter())

    class Blocking(ProbeContext):
        def note(self, line: str) -> None:
            if line.startswith("request sent"):
                loop.call_soon(hog)

    started = perf_counter()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/health"
    r = await run_probe(svc(url), Blocking(timeout=5.0, trace=lambda _line: None))
    await asyncio.to_thread(thread.join, 5)  # the loop closes the connection meanwhile
    listener.close()
    assert r.success
    end = started + r.duration_s
    if sent[0] > unblocked[0] - 0.05:
        pytest.skip("the server thread itself was held up until the loop was nearly free")
    assert sent[0] - 0.001 <= end <= unblocked[0] - 0.03


async def test_a_probe_leaves_no_reference_cycle_behind(raw):
    # Cyclic garbage is what the collector has to walk, with the loop stopped, for every
    # probe; the parser and the protocol refer to each other until the answer is in.
    import gc

    import httptools

    from exporter.health.probes.http_wire import Exchange

    url = await raw(writes(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(HEALTHY), HEALTHY)))
    assert (await probe(svc(url + "/health"))).success  # warm-up
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(5):
            assert (await probe(svc(url + "/health"))).success
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage
                if isinstance(o, Exchange | httptools.HttpResponseParser)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []


class OneAnswer:
    """A loopback server in a thread (a blocked loop cannot hold it back) that answers one
    request; `got` is when the request's bytes reached it, `sent` when its answer left."""

    def __init__(self, *, answer_after: float = 0.0, backlog: int = 8) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/health"
        self.answer_after = answer_after
        self.got: list[float] = []
        self.sent: list[tuple[float, float]] = []
        self.accept_after = 0.0
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self) -> None:
        time.sleep(self.accept_after)
        self.listener.settimeout(0.1)
        while not self.sent:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn: socket.socket) -> None:
        with conn:
            request = conn.recv(4096)
            if not request.startswith(b"GET /health"):
                return  # a connection made only to fill the backlog
            self.got.append(perf_counter())
            time.sleep(self.answer_after)
            before = perf_counter()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(HEALTHY), HEALTHY))
            self.sent.append((before, perf_counter()))
            conn.recv(1)  # until the prober closes

    async def stop(self) -> None:
        await asyncio.to_thread(self.thread.join, 5)
        self.listener.close()


async def test_the_request_goes_out_in_the_step_that_connects():
    # A callback queued behind the probe's first step holds the loop for HOG. The request
    # must not wait for it: on loopback the connection is up inside the connect call, and
    # the request is written right then, not one loop turn later when a callback (or the
    # prober's coroutine) comes round to it.
    hog_s = 0.15
    server = OneAnswer()
    server.thread.start()
    asyncio.get_running_loop().call_soon(time.sleep, hog_s)
    started = perf_counter()
    r = await probe(svc(server.url))
    await server.stop()
    assert r.success, r.message
    assert server.got[0] - started < hog_s / 2, "the request waited for the blocked loop"
    assert r.phases["connect"] < hog_s / 2


@pytest.mark.skipif(not rxtime.stamp_reads(socket.socket()), reason="no kernel receive stamps here")
async def test_the_answer_ends_at_the_kernels_receive_stamp_however_late_the_loop():
    # The loop is blocked from just after the request until well after the answer came: the
    # reported end is when the kernel received the answer, to the millisecond, where the
    # coarser TCP_INFO age (whole kernel ticks) would put it up to a tick later.
    server = OneAnswer(answer_after=0.03)
    server.thread.start()
    loop = asyncio.get_running_loop()

    class Blocking(ProbeContext):
        def note(self, line: str) -> None:
            if line.startswith("request sent"):
                loop.call_soon(time.sleep, 0.15)

    started = perf_counter()
    r = await run_probe(svc(server.url), Blocking(timeout=5.0, trace=lambda _line: None))
    await server.stop()
    assert r.success, r.message
    before, after = server.sent[0]
    end = started + r.duration_s
    assert before - 0.001 <= end <= after + 0.002, (end - before, after - before)


async def test_a_connect_that_completes_later_sends_the_request_then():
    # The listener's backlog is full, so the kernel drops the probe's first SYN and the
    # connect is still under way after the connect call: the request waits until the
    # socket is writable (the SYN retransmitted once the server accepts, ~1 s later).
    server = OneAnswer(backlog=0)
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(server.listener.getsockname())
        fillers.append(filler)
    await asyncio.sleep(0.05)
    server.accept_after = 0.3
    server.thread.start()
    try:
        r = await probe(svc(server.url))
    finally:
        for filler in fillers:
            filler.close()
    await server.stop()
    assert r.success, r.message
    assert r.phases["connect"] >= 0.25  # it did wait for the handshake
    assert r.phases["processing"] < 1.0


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
async def test_an_ipv6_literal_and_a_name_resolving_to_it():
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(HEALTHY), HEALTHY))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "::1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        literal = await probe(svc(f"http://[::1]:{port}/health"))
        assert literal.success, literal.message
        found = {info[4][0] for info in socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)}
        if "::1" not in found:
            return  # localhost does not name ::1 here: the literal was the test
        lines: list[str] = []
        named = await probe(svc(f"http://localhost:{port}/health"), trace=lines.append)
        # localhost may resolve to 127.0.0.1 first, where nothing listens: the next address
        # (::1) is tried, as for any name with several addresses.
        assert named.success, (named.message, lines)
        assert f"connect: [::1]:{port}" in "\n".join(lines)
    finally:
        server.close()
        await server.wait_closed()


BIG_HEADER = (("X-Big", "a" * 4_000_000),)  # more than one send can take


def _early_answerer(answer: bytes, ending: str) -> tuple[socket.socket, threading.Thread]:
    """A server (a thread) that answers without reading the request, then ends the
    connection: "fin" (half-close, still not reading) or "close" (a reset, since the
    request is unread)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the request cannot fit
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve() -> None:
        conn, _ = listener.accept()
        time.sleep(0.05)
        conn.sendall(answer)
        if ending == "fin":
            conn.shutdown(socket.SHUT_WR)
            time.sleep(1.5)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


@pytest.mark.parametrize(("answer", "ending"), [
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + HEALTHY, "fin"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
     % (len(HEALTHY), HEALTHY), "close"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
     % (len(HEALTHY), HEALTHY), "fin"),
])
async def test_an_answer_before_a_large_request_went_out_counts_and_harms_no_other_probe(
        answer, ending):
    # The request (a 4 MB header) cannot go out in one step; the server answers before
    # reading it and ends the connection. The answer counts; the rest of the request is
    # dropped; and no write is left waiting on the closed socket, whose number the next
    # connections reuse (an asyncio loop then fails them, uvloop aborts the process).
    listener, thread = _early_answerer(answer, ending)
    healthy = OneAnswer()
    healthy.thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/health"
    big = asyncio.ensure_future(probe(svc(url, headers=BIG_HEADER), limit=3.0))
    await asyncio.sleep(0.3)  # the big probe's connection ended meanwhile
    other = await probe(svc(healthy.url))
    r = await big
    await healthy.stop()
    await asyncio.to_thread(thread.join, 5)
    listener.close()
    assert other.success, other.message
    assert r.success, f"{r.reason}: {r.message}"[:300]
    assert r.http_status == 200
    assert all(value >= 0 for value in r.phases.values())
