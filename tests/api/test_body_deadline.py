"""A client dripping its request body gets 408 at the body-read deadline, counted as a limit."""

from __future__ import annotations

import asyncio
import json

from exporter.api import validation
from tests.api.conftest import services_yaml


async def test_dripping_body_gets_408(aiohttp_client, make_app, target, monkeypatch, registry):
    monkeypatch.setattr(validation, "BODY_READ_TIMEOUT", 0.5)
    app, _ = make_app(services_yaml(target))
    client = await aiohttp_client(app)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    body = b'{"service": "up-svc"}'
    writer.write(b"POST /api/health/services HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body))
    for byte in body[:5]:  # a few bytes, then silence
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.05)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 408"), head
    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
    answer = json.loads(await reader.readexactly(length))
    assert answer["error"] == "request_timeout"
    writer.close()
    assert registry.get_sample_value("usdcop_limit_rejections_total", {"limit": "body"}) == 1
