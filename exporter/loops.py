"""The event loop the sidecar runs on: uvloop by default on Linux, asyncio's own on request.

uvloop (libuv) spends about a quarter less CPU per probe than asyncio's own loop. It is a
dependency on Linux only; elsewhere, or when it cannot be imported, asyncio's loop runs.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

LOOPS = ("uvloop", "asyncio")


class LoopUnavailable(RuntimeError):
    """The loop asked for cannot run here; the message says why."""


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def default_loop() -> str:
    """`uvloop` on Linux when it is installed, else `asyncio`."""
    if sys.platform.startswith("linux") and _uvloop_factory() is not None:
        return "uvloop"
    return "asyncio"


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for asyncio.Runner: uvloop's, or None for asyncio's own loop."""
    if name == "asyncio":
        return None
    if name != "uvloop":
        raise LoopUnavailable(f"unknown event loop {name!r} (one of: {', '.join(LOOPS)})")
    factory = _uvloop_factory()
    if factory is None:
        raise LoopUnavailable("event loop uvloop is not installed (pip install uvloop)")
    return factory


def running_loop_name() -> str:
    """`uvloop` or `asyncio`: which loop runs the calling coroutine."""
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
