"""Limits everywhere: header count and size, a header-read deadline against slow clients,
a connection cap, body, depth, string and batch sizes. Each hit is a clear 4xx (429 for
the connection cap) and one more usdcop_limit_rejections_total{limit}."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from exporter.api.limits import MAX_HEADER_BYTES, MAX_HEADERS
from exporter.security.server import ConnectionGuard

from .conftest import limit_count, running

SERVICES = "services:\n  - name: svc\n    type: tcp\n    address: 127.0.0.1:1\n"


@pytest.fixture
def app(make_sidecar):
    return make_sidecar(SERVICES)


async def raw_exchange(base: str, data: bytes) -> tuple[int, dict, bytes]:
    """Send `data` on a fresh connection and read one answer: (status, headers, body)."""
    port = int(base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await read_response(reader)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers, body


async def test_too_many_headers_is_431_and_counted(app, registry):
    async with running(app) as base, aiohttp.ClientSession() as http:
        headers = {f"X-Pad-{i}": "x" for i in range(MAX_HEADERS + 5)}
        async with http.get(base + "/healthz", headers=headers) as resp:
            assert resp.status == 431
            body = await resp.json()
            assert body["error"] == "header_too_large" and body["field"] is None
    assert limit_count(registry, "header") == 1


async def test_one_huge_header_is_431_and_its_bytes_are_not_logged(app, registry, capfd):
    secret = "canary-" + "s" * 9000
    async with running(app) as base:
        status, headers, body = await raw_exchange(
            base, f"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n\r\n".encode())
    assert status == 431 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"] == "header_too_large"
    assert limit_count(registry, "header") == 1
    out, err = capfd.readouterr()
    assert "canary-" not in out + err


async def test_headers_over_the_total_size_are_431(app, registry):
    async with running(app) as base, aiohttp.ClientSession() as http:
        headers = {f"X-Pad-{i}": "v" * 1000 for i in range(MAX_HEADER_BYTES // 1000 + 2)}
        async with http.get(base + "/metrics", headers=headers) as resp:
            assert resp.status == 431
            assert "at most 32768" in (await resp.json())["detail"]
    assert limit_count(registry, "header") == 1


async def test_malformed_request_is_a_json_400_not_counted_as_a_limit(app, registry):
    async with running(app) as base:
        status, headers, body = await raw_exchange(base, b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n")
    assert status == 400 and json.loads(body)["error"] == "bad_request"
    assert headers["server"] == "usdcop-exporter"  # no library versions, here either
    assert limit_count(registry, "header") == 0


async def test_header_read_deadline_answers_408_even_to_a_steady_drip(app, registry):
    guard = ConnectionGuard(header_timeout=0.3)
    async with running(app, guard) as base:
        port = int(base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 400

        async def drip():
            try:
                for byte in request:  # one byte every 10 ms: steady progress, never done
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.01)
            except ConnectionError:
                pass

        dripping = asyncio.create_task(drip())
        status, headers, body = await asyncio.wait_for(read_response(reader), 10)
        dripping.cancel()
        writer.close()
        assert status == 408 and headers["connection"] == "close"
        assert json.loads(body)["error"] == "request_timeout"
        try:  # and the connection is closed: an end of stream, or a reset when the drip's
            rest = await reader.read()  # last bytes reached the closed socket first
        except ConnectionResetError:
            rest = b""
        assert rest == b""
    assert limit_count(registry, "header") == 1
    assert guard.open == 0


async def test_a_connection_that_says_nothing_is_cut_after_the_deadline(app, registry):
    guard = ConnectionGuard(header_timeout=0.2)
    async with running(app, guard) as base:
        port = int(base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        status, _, _ = await asyncio.wait_for(read_response(reader), 10)
        writer.close()
    assert status == 408
    assert limit_count(registry, "header") == 1


async def test_kept_alive_connections_are_served_again_after_the_deadline(app, registry):
    guard = ConnectionGuard(header_timeout=0.2)
    async with running(app, guard) as base:
        port = int(base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(request)
        assert (await read_response(reader))[0] == 200
        # idle between requests: not a slow request, so no 408 arrives
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.6)
        writer.write(request)
        assert (await read_response(reader))[0] == 200
        writer.close()
    assert limit_count(registry, "header") == 0


async def test_connections_over_the_cap_get_429_and_the_cap_frees_up(app, registry):
    guard = ConnectionGuard(max_connections=2, max_per_client=2)
    request = b"GET /api/health/services HTTP/1.1\r\nHost: x\r\n\r\n"
    async with running(app, guard) as base:
        port = int(base.rsplit(":", 1)[1])
        held = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            assert (await read_response(reader))[0] == 200
            held.append((reader, writer))
        status, headers, body = await raw_exchange(base, request)
        assert status == 429 and headers["retry-after"] == "1" and headers["connection"] == "close"
        assert json.loads(body)["error"] == "too_many_connections"
        reader, writer = held.pop()
        writer.close()
        await reader.read()
        async with asyncio.timeout(5):
            while guard.open > 1:
                await asyncio.sleep(0.01)
        status, _, _ = await raw_exchange(base, request)
        assert status == 200
        for _, w in held:
            w.close()
    assert limit_count(registry, "connections") == 1


async def test_body_depth_string_and_batch_limits_are_counted(app, registry):
    async with running(app) as base, aiohttp.ClientSession() as http:
        async def post(path, payload=None, data=None):
            kwargs = {"data": data, "headers": {"Content-Type": "application/json"}} if data is not None else {"json": payload}
            async with http.post(base + path, **kwargs) as resp:
                return resp.status, await resp.json()

        status, body = await post("/api/health/services", data=b"{" + b" " * (2 << 20) + b"}")
        assert status == 413 and limit_count(registry, "body") == 1

        deep = {}
        node = deep
        for _ in range(25):
            node["x"] = {}
            node = node["x"]
        signal = {"signal_id": "s1", "timestamp": "2025-01-15T10:30:00+00:00", "symbol": "USDCOP",
                  "action": "BUY", "confidence": 0.5, "price": 4000.0, "features": deep}
        status, body = await post("/api/cache/signals", signal)
        assert status == 400 and "nested deeper" in body["detail"]
        assert limit_count(registry, "depth") == 1

        status, body = await post("/api/health/latency",
                                  {"service": "s" * 5000, "operation": "op", "latency_ms": 1})
        assert status == 422 and body["field"] == "service" and "longer than" in body["detail"]
        assert limit_count(registry, "string") == 1

        record = {"service": "svc", "operation": "op", "latency_ms": 1}
        status, body = await post("/api/health/latency", {"records": [record] * 1001})
        assert status == 413 and body["field"] == "records"
        assert limit_count(registry, "batch") == 1
    assert limit_count(registry, "body") == 1
    assert limit_count(registry, "rate") == 0
