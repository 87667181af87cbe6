"""Name rules and the cardinality guard on (service, operation) pairs."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Protocol

NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
DEFAULT_MAX_PAIRS = 500


class InvalidNameError(ValueError):
    """A service, operation or trace id that breaks the name rules; `field` names which."""

    def __init__(self, field: str, value: object) -> None:
        self.field = field
        shown = value[:80] if isinstance(value, str) else type(value).__name__
        super().__init__(f"{field} must match {NAME_RE.pattern}, got {shown!r}")


class PairLimitError(ValueError):
    """A new (service, operation) pair beyond the cap: refused so the series stay bounded."""

    def __init__(self, service: str, operation: str, limit: int) -> None:
        self.service = service
        self.operation = operation
        self.limit = limit
        super().__init__(
            f"pair service={service!r} operation={operation!r} refused: already tracking "
            f"{limit} distinct (service, operation) pairs (LATENCY_MAX_PAIRS)"
        )


class _RejectCounter(Protocol):
    def pairs_rejected(self, n: int = 1) -> None: ...


def check_name(field: str, value: object) -> str:
    """Return `value` when it is a valid name, else raise InvalidNameError naming `field`."""
    if not isinstance(value, str) or NAME_RE.fullmatch(value) is None:
        raise InvalidNameError(field, value)
    return value


class PairGuard:
    """Admits at most `max_pairs` distinct pairs for the life of the process."""

    def __init__(self, max_pairs: int = DEFAULT_MAX_PAIRS, metrics: _RejectCounter | None = None):
        if isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 1:
            raise ValueError(f"max_pairs must be a positive integer, got {max_pairs!r}")
        self.max_pairs = max_pairs
        self._metrics = metrics
        self._pairs: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def admit(self, service: str, operation: str) -> None:
        """Admit one pair, or raise PairLimitError when it is new and over the cap."""
        pair = (service, operation)
        if pair in self._pairs:  # the hot path: no lock for pairs already admitted
            return
        self.admit_all((pair,))

    def admit_all(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Admit every pair or none: refused as a whole when the new ones do not all fit."""
        with self._lock:
            new = list(dict.fromkeys(p for p in pairs if p not in self._pairs))
            if not new:
                return
            if len(self._pairs) + len(new) > self.max_pairs:
                if self._metrics is not None:
                    self._metrics.pairs_rejected(len(new))
                first = new[max(0, self.max_pairs - len(self._pairs))]
                raise PairLimitError(first[0], first[1], self.max_pairs)
            self._pairs.update(new)

    def __contains__(self, pair: object) -> bool:
        return pair in self._pairs

    def __len__(self) -> int:
        return len(self._pairs)
