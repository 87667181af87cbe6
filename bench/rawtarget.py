"""A fast local HTTP target for benchmarks: any request gets a healthy body in the health format of docs/api.md.

    python bench/rawtarget.py PORT [DELAY_MS]

Raw asyncio protocol (on uvloop when installed), one response per connection, then
close: the prober under test opens a fresh connection per probe, and the target must
never be what limits a benchmark. DELAY_MS holds each answer back by that much, for
measuring how far a prober's reported duration strays from a known delay.
"""

from __future__ import annotations

import asyncio
import socket
import sys

BODY = (b'{"status":"healthy","details":{"uptime":1,"requests_per_minute":60,'
        b'"error_rate":0,"memory_usage_mb":10}}')
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


class Answer(asyncio.Protocol):
    """Answers once the request head is complete, then closes."""

    delay = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if b"\r\n\r\n" not in self.buf:
            return
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self._answer)
        else:
            self._answer()

    def _answer(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(RESPONSE)
            self.transport.close()


async def serve(port: int) -> None:
    """Serve forever on 127.0.0.1:PORT."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = await asyncio.get_running_loop().create_server(Answer, sock=sock, backlog=8192)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Entry point."""
    port = int(sys.argv[1])
    Answer.delay = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.0
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(port))
    else:
        uvloop.run(serve(port))


if __name__ == "__main__":
    main()
