"""Hostile clients from one source address, as a process of their own so that the client
measuring the sidecar does not share an event loop with them:

    python -m tests.support.flood PORT SOURCE IDLE DRIPPING

IDLE connections say nothing; DRIPPING ones send a request head one byte every half
second and never finish it. Each reconnects as soon as the sidecar cuts it. Prints
`ready` once every client holds a connection, runs until stdin closes, then prints the
number of connections opened in all.
"""

from __future__ import annotations

import asyncio
import sys

HEAD = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Drip: " + b"a" * 4000


class Flood:
    """The attackers and their count of connections opened."""

    def __init__(self, port: int, source: str) -> None:
        self.port = port
        self.source = source
        self.opened = 0
        self.stop = asyncio.Event()

    async def _connect(self):
        while not self.stop.is_set():
            try:
                pair = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(self.source, 0))
            except OSError:
                await asyncio.sleep(0.1)
                continue
            self.opened += 1
            return pair
        return None

    async def idle(self) -> None:
        """Connect, say nothing, reconnect when cut."""
        while (pair := await self._connect()) is not None:
            reader, writer = pair
            read = asyncio.ensure_future(reader.read())
            halt = asyncio.ensure_future(self.stop.wait())
            await asyncio.wait({read, halt}, return_when=asyncio.FIRST_COMPLETED)
            read.cancel()
            halt.cancel()
            writer.close()

    async def drip(self) -> None:
        """Connect, drip a never-ending request head, reconnect when cut."""
        while (pair := await self._connect()) is not None:
            reader, writer = pair
            closed = asyncio.ensure_future(reader.read())
            try:
                for byte in HEAD:
                    if self.stop.is_set() or closed.done():
                        break
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.5)
            except ConnectionError:
                pass
            finally:
                closed.cancel()
                writer.close()


async def main(port: int, source: str, idle: int, dripping: int) -> None:
    flood = Flood(port, source)
    tasks = [asyncio.create_task(flood.idle()) for _ in range(idle)]
    tasks += [asyncio.create_task(flood.drip()) for _ in range(dripping)]
    while flood.opened < idle + dripping:
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the test closes our stdin
    flood.stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(flood.opened, flush=True)


if __name__ == "__main__":
    port, source, idle, dripping = sys.argv[1:5]
    asyncio.run(main(int(port), source, int(idle), int(dripping)))
