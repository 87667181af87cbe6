"""The fault proxy really does what it says, so the fault tests built on it can fail."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.slow


@pytest.fixture
async def echo():
    async def handle(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield ("127.0.0.1", server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


async def roundtrip(proxy: FaultProxy, data: bytes = b"ping") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(data)
        await writer.drain()
        return await reader.readexactly(len(data))
    finally:
        writer.close()


async def test_passes_through_and_counts(echo):
    async with FaultProxy(echo) as proxy:
        assert await roundtrip(proxy) == b"ping"
        assert proxy.accepted == 1 and proxy.forwarded == 4


async def test_blackhole_swallows(echo):
    async with FaultProxy(echo) as proxy:
        proxy.blackhole = True
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(roundtrip(proxy), 0.3)
        assert proxy.forwarded == 0


async def test_reset_resets(echo):
    async with FaultProxy(echo) as proxy:
        proxy.reset = True
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await roundtrip(proxy)


async def test_latency_drip_and_bandwidth_slow_but_deliver(echo):
    async with FaultProxy(echo) as proxy:
        loop = asyncio.get_running_loop()
        for setting, value, data in (("latency", 0.1, b"x"), ("drip", 0.02, b"abcde"), ("bandwidth", 100, b"y" * 30)):
            proxy.clear()
            setattr(proxy, setting, value)
            start = loop.time()
            assert await roundtrip(proxy, data) == data
            # lower bounds only: a fault never makes things faster
            assert loop.time() - start >= {"latency": 0.1, "drip": 0.08, "bandwidth": 0.2}[setting]


async def test_cut_resets_open_connections(echo):
    async with FaultProxy(echo) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"a")
        assert await reader.readexactly(1) == b"a"
        proxy.cut()
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await reader.readexactly(1)
        writer.close()
