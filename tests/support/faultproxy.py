"""A small TCP fault proxy for tests (toxiproxy is not available here).

    async with FaultProxy(("127.0.0.1", upstream_port)) as proxy:
        proxy.address                   # "127.0.0.1:PORT" to point a client at
        proxy.latency = 0.3             # seconds added before each chunk, both ways
        proxy.blackhole = True          # accept, read, never forward and never answer
        proxy.reset = True              # new connections are reset (RST) at once
        proxy.drip = 0.05               # server -> client: one byte per 50 ms
        proxy.bandwidth = 1024          # server -> client: at most this many bytes per second
        proxy.clear()                   # all of the above off again
        proxy.cut()                     # reset every open connection now
        proxy.accepted, proxy.open      # connections seen / open now

Faults are read for every chunk, so switching one on affects open connections too, as
toxiproxy's toxics do. Everything listens on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """A TCP proxy to `upstream` (host, port) with switchable faults."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self.accepted = 0
        self.open = 0
        self.forwarded = 0  # bytes forwarded towards the upstream
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self.clear()

    def clear(self) -> None:
        """Switch every fault off."""
        self.latency = 0.0
        self.blackhole = False
        self.reset = False
        self.drip: float | None = None
        self.bandwidth: int | None = None

    @property
    def address(self) -> str:
        """host:port of the proxy."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> FaultProxy:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        """Reset every open connection (both sides)."""
        for writer in list(self._writers):
            _rst(writer)

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        self._closed = True
        if self._server is not None:
            self._server.close()
        self.cut()
        if self._tasks:  # every handler notices the cut or the flag within one step
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        self._tasks.add(task)
        self._writers.add(writer)
        self.open += 1
        try:
            if self.reset:
                _rst(writer)
                return
            if self.blackhole:
                await self._swallow(reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                _rst(writer)  # upstream refuses: so does the proxy
                return
            self._writers.add(up_writer)
            try:
                await asyncio.gather(self._pipe(reader, up_writer, upstream=True),
                                     self._pipe(up_reader, writer, upstream=False))
            finally:
                self._writers.discard(up_writer)
                up_writer.close()
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.close()
            self._tasks.discard(task)

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    upstream: bool) -> None:
        try:
            while not self._closed:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                if self.blackhole:
                    continue  # switched on mid-connection: bytes vanish
                if self.latency:
                    await asyncio.sleep(self.latency)
                if upstream:
                    self.forwarded += len(chunk)
                    writer.write(chunk)
                elif self.drip is not None:
                    for i in range(len(chunk)):
                        if self._closed:
                            return
                        writer.write(chunk[i:i + 1])
                        await writer.drain()
                        await asyncio.sleep(self.drip)
                elif self.bandwidth:
                    step = max(1, self.bandwidth // 10)
                    for i in range(0, len(chunk), step):
                        if self._closed:
                            return
                        writer.write(chunk[i:i + step])
                        await writer.drain()
                        await asyncio.sleep(len(chunk[i:i + step]) / self.bandwidth)
                else:
                    writer.write(chunk)
                await writer.drain()
            if not self._closed and writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            _rst(writer)
