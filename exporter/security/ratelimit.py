"""A token bucket, as the exporter-toolkit's rate_limit (Go's rate.Limiter): one token per
`interval`, at most `burst` saved up, starting full."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    """allow() takes a token when there is one; retry_after() says when the next one comes."""

    def __init__(self, interval: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if interval <= 0 or burst < 1:
            raise ValueError("interval must be > 0 and burst >= 1")
        self.interval = interval
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) / self.interval)
        self._at = max(self._at, now)

    def allow(self) -> bool:
        """Take one token; False when the bucket is empty."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def retry_after(self) -> int:
        """Whole seconds until a token is available (at least 1, for a Retry-After header)."""
        self._refill()
        missing = max(0.0, 1.0 - self._tokens)
        return max(1, math.ceil(missing * self.interval))
