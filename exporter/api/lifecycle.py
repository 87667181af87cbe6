"""A feature component's life with the app: started at start-up, ready while it runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from aiohttp import web

from .keys import READY


class Component(Protocol):
    """Anything started once and closed once."""

    async def start(self) -> Any: ...

    async def close(self) -> Any: ...


def running(name: str, key: web.AppKey) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that starts `app[key]`, marks READY[name] while it runs, and
    closes it at shutdown."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        component: Component = app[key]
        await component.start()
        app[READY][name] = True
        try:
            yield
        finally:
            app[READY][name] = False
            await component.close()

    return context
