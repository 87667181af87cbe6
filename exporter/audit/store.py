"""The interface both audit stores implement: Postgres (`PgStore`) and SQLite (`SqliteStore`).

Events are handed over as units (lists of `PendingEvent`): each unit is appended whole or
not at all, in chain order. Reads return events in chain form (`prev_hash` and `hash` as
bytes, times as canonical strings). A store that cannot be reached raises
`StoreUnavailable`; one that refuses what it is given raises `AuditRejected`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from .events import PendingEvent
from .query import Query


@runtime_checkable
class AuditStore(Protocol):
    """Where the audit chain is kept."""

    kind: str  # "postgres" or "sqlite"

    async def open(self) -> None:
        """Prepare connections without waiting for the database (it may be away)."""

    async def close(self) -> None:
        """Release connections and files."""

    async def ensure_ready(self) -> None:
        """Create or migrate the schema once, then check the store answers."""

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""

    async def append(self, units: list[list[PendingEvent]]) -> Any:
        """Append units (all-or-nothing each) in one transaction; per-unit outcomes."""

    async def head(self) -> tuple[int, bytes]:
        """(sequence, hash) of the newest event; (0, genesis) for an empty chain."""

    async def query(self, q: Query) -> list[dict[str, Any]]:
        """One page of events matching `q`."""

    def iter_events(self, after: int = 0, until: int | None = None, chunk: int = 5000,
                    since: datetime | None = None, before: datetime | None = None
                    ) -> AsyncIterator[dict[str, Any]]:
        """Stored events in sequence order, from `after` (exclusive) to `until`."""

    async def first_sequence(self) -> int | None:
        """The oldest stored sequence (after purges); None for an empty chain."""

    async def count_range(self, first: int, through: int) -> int:
        """How many events are stored with a sequence from `first` to `through`."""

    async def get_event(self, sequence: int) -> dict[str, Any] | None:
        """One stored event by sequence."""

    async def find_purge(self, through: int) -> dict[str, Any] | None:
        """The AUDIT_PURGED event that removed events 1..`through`."""

    async def add_checkpoint(self, cp: dict[str, Any]) -> bool:
        """Store a checkpoint; False when one at that sequence exists."""

    async def checkpoints(self) -> list[dict[str, Any]]:
        """Every stored checkpoint."""

    async def maintain(self, now: datetime | None = None, months: Any = None) -> dict[str, Any]:
        """Housekeeping (partitions ahead of time in Postgres)."""

    async def purge(self, horizon: datetime, make_event: Callable[[dict], PendingEvent]
                    ) -> dict[str, Any]:
        """Record AUDIT_PURGED, then remove events received before `horizon`."""
