"""A one-line progress bar for long command-line work, drawn only on a terminal.

`audit verify` and `audit export` over a large trail run for minutes; on a terminal they
show how far they are, how fast they go and when they will be done. Anywhere else (a pipe,
a file, a log collector) the bar stays silent, so scripted output is unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

WIDTH = 24  # characters of the bar itself


def _clock_text(seconds: float) -> str:
    """`1h02m`, `4m05s` or `7s`."""
    s = int(seconds + 0.5)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    """Counts work done toward an optional total and redraws one line on `stream`.

    Drawn only when `stream` is a terminal (and `enabled` is not forced off); at most every
    `every` seconds, and once more by `finish()`. Without a total there is no bar and no
    ETA: the count and the rate only.
    """

    def __init__(self, label: str, stream: TextIO, total: int | None = None, *,
                 unit: str = "events", enabled: bool = True, every: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.stream = stream
        self.total = total if total and total > 0 else None
        self.unit = unit
        self.enabled = enabled and is_terminal(stream)
        self.every = every
        self.clock = clock
        self.done = 0
        self.started = clock()
        self._drawn_at: float | None = None
        self._width = 0

    def advance(self, n: int = 1) -> None:
        """Count `n` more units; redraw when the last drawing is old enough."""
        self.done += n
        if not self.enabled:
            return
        now = self.clock()
        if self._drawn_at is None or now - self._drawn_at >= self.every:
            self._draw(now)

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if not self.enabled:
            return
        self._draw(self.clock())
        self.stream.write("\n")
        self.stream.flush()

    def line(self, now: float) -> str:
        """The text of the line at `now`."""
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        parts: list[str] = []
        if self.total is not None:
            shown = min(self.done, self.total)
            filled = int(WIDTH * shown / self.total)
            parts.append(f"[{'#' * filled}{'.' * (WIDTH - filled)}] {100 * shown // self.total:3d}%")
            parts.append(f"{self.done:,}/{self.total:,} {self.unit}")
        else:
            parts.append(f"{self.done:,} {self.unit}")
        parts.append(f"{rate:,.0f} {self.unit}/s")
        if self.total is not None:
            left = max(self.total - self.done, 0)
            parts.append(f"ETA {_clock_text(left / rate)}" if rate > 0 else "ETA --")
        return f"{self.label}: " + "  ".join(parts)

    def _draw(self, now: float) -> None:
        text = self.line(now)
        pad = " " * max(self._width - len(text), 0)  # wipe what a longer line left behind
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
        self._width = len(text)
        self._drawn_at = now


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is a terminal (False for pipes, files and closed streams)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
