"""The one fake clock of the suite: a callable the test sets and moves by hand."""

from __future__ import annotations

from typing import Any


class FakeClock:
    """Returns `now` when called. `advance(seconds)` moves a numeric clock; `set` puts any
    value (a datetime, or None where None means "use the real clock")."""

    def __init__(self, start: Any = 1000.0) -> None:
        self.now = start

    def __call__(self) -> Any:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds

    def set(self, value: Any) -> None:
        """Put the clock at `value`."""
        self.now = value
