"""A local HTTP target for benchmarks: GET /health answers a healthy body in the health format of docs/api.md.

    python bench/target.py PORT [DELAY_MS]
"""

import asyncio
import sys

from aiohttp import web

BODY = b'{"status":"healthy","details":{"uptime":1,"requests_per_minute":60,"error_rate":0,"memory_usage_mb":10}}'


async def health(request: web.Request) -> web.Response:
    delay = request.app["delay"]
    if delay:
        await asyncio.sleep(delay)
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    port = int(sys.argv[1])
    app = web.Application()
    app["delay"] = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.0
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=4096)


if __name__ == "__main__":
    main()
