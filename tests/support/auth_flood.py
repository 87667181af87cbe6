"""Clients guessing basic-auth passwords, as a process of their own so that the client
measuring the sidecar does not share an event loop with them:

    python -m tests.support.auth_flood URL USER CLIENTS SOURCE [SOURCE ...]

CLIENTS clients (spread over the SOURCE addresses) each send requests with a new wrong
password as fast as they are answered. Prints `ready` once the flood is at full strength
(every client answered, and as many answers 429 as there are clients; else says it is
not, after 30 s), runs until stdin closes, then prints the
count of answers by status code as JSON.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys

import aiohttp


async def main(url: str, user: str, clients: int, sources: list[str]) -> None:
    codes: dict[int, int] = {}
    answered: set[int] = set()
    stop = asyncio.Event()

    async def guess(i: int) -> None:
        connector = aiohttp.TCPConnector(local_addr=(sources[i % len(sources)], 0), limit=1)
        async with aiohttp.ClientSession(connector=connector) as http:
            n = 0
            while not stop.is_set():
                n += 1
                token = base64.b64encode(f"{user}:guess-{i}-{n}".encode()).decode()
                try:
                    async with http.get(url, headers={"Authorization": "Basic " + token}) as resp:
                        await resp.read()
                        codes[resp.status] = codes.get(resp.status, 0) + 1
                        answered.add(i)
                except aiohttp.ClientError:
                    codes[0] = codes.get(0, 0) + 1  # 0: no answer at all

    tasks = [asyncio.create_task(guess(i)) for i in range(clients)]
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 30
    while (len(answered) < clients or codes.get(429, 0) < clients) and loop.time() < give_up:
        await asyncio.sleep(0.05)
    print("ready" if loop.time() < give_up else f"not ready after 30 s: {codes}", flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the test closes our stdin
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(codes), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]))
