"""The read side of the Postgres audit store: queries, chain reads and checkpoints.

`PgReads` is a mixin of `PgStore`: it reads through the store's pool (`_pool`), turns
database errors into StoreUnavailable or AuditRejected with the store's `_errors`, and each
bounded call runs for at most 2 × the store's timeout through `_bounded`.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from .batch import row_view
from .chain import format_time
from .query import Query

WINDOW_SORT_MAX = 20000  # estimated matches of a time-window query read whole and sorted
COLUMNS = ("sequence, event_id, event_type, \"timestamp\", received_at, accepted_at, symbol,"
           " actor, data, prev_hash, hash")


def decode(row: dict[str, Any]) -> dict[str, Any]:
    """A database row in the chain's form: canonical time strings, str ids, bytes hashes."""
    return {
        "sequence": row["sequence"], "event_id": str(row["event_id"]),
        "event_type": row["event_type"], "timestamp": format_time(row["timestamp"]),
        "received_at": format_time(row["received_at"]),
        "accepted_at": format_time(row["accepted_at"]), "symbol": row["symbol"],
        "actor": row["actor"], "data": row["data"], "prev_hash": bytes(row["prev_hash"]),
        "hash": bytes(row["hash"]),
    }


def _bounded_call(method):
    """Run the store method for at most 2 × the store's timeout (see PgStore._bounded)."""

    @functools.wraps(method)
    async def call(self, *args, **kwargs):
        return await self._bounded(method.__name__, method(self, *args, **kwargs))

    return call


class PgReads:
    """The reads of `PgStore` (see the module's docstring for what it relies on)."""

    @_bounded_call
    async def head(self) -> tuple[int, bytes]:
        """The newest (sequence, hash); (0, 32 zero bytes) when empty."""
        async with self._errors("head"), self._pool.connection() as conn:
            cur = await conn.execute("SELECT sequence, hash FROM usdcop_audit.chain_head")
            seq, digest = await cur.fetchone()
            return seq, bytes(digest)

    @_bounded_call
    async def query(self, q: Query) -> list[dict[str, Any]]:
        """Events matching `q`, sequence descending, at most q.limit + 1 (to detect more)."""
        given = [(cond, value) for cond, value in (
            ("event_type = %s", q.event_type), ("symbol = %s", q.symbol),
            ("sequence < %s", q.before),
            ('"timestamp" >= %s', q.start), ('"timestamp" < %s', q.end),
        ) if value is not None]
        windowed = q.start is not None or q.end is not None
        conds = " AND ".join(cond for cond, _ in given) or "true"
        params = [value for _, value in given]
        async with self._errors("query"), self._pool.connection() as conn:
            text = (f"SELECT {COLUMNS} FROM usdcop_audit.events WHERE {conds}"
                    " ORDER BY sequence DESC LIMIT %s")
            if windowed and await self._window_rows(conn, conds, params) <= WINDOW_SORT_MAX:
                # Event times follow sequence closely, so the planner, assuming them
                # independent, walks the sequence index down from the head and filters its
                # way to an old window (100 ms over a million rows). A small window is
                # cheaper read whole through the time index and sorted.
                text = (f"WITH w AS MATERIALIZED (SELECT {COLUMNS} FROM usdcop_audit.events"
                        f" WHERE {conds}) SELECT * FROM w ORDER BY sequence DESC LIMIT %s")
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(text, [*params, q.limit + 1])
                return [row_view(decode(r)) for r in await cur.fetchall()]

    async def _window_rows(self, conn, conds: str, args: list) -> float:
        """The planner's estimate of the events a filtered time window holds."""
        cur = await conn.execute(
            f"EXPLAIN (FORMAT JSON) SELECT 1 FROM usdcop_audit.events WHERE {conds}", args)
        (plan,) = await cur.fetchone()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return float(plan[0]["Plan"]["Plan Rows"])

    async def iter_events(self, after: int = 0, until: int | None = None, chunk: int = 5000,
                          since: datetime | None = None, before: datetime | None = None
                          ) -> AsyncIterator[dict[str, Any]]:
        """Stored events in sequence order (chain form); since/before bound `received_at`,
        which rises with sequence, so a window is one contiguous stretch of the chain."""
        where, args = ["sequence > %s"], [after]
        if until is not None:
            where.append("sequence <= %s")
            args.append(until)
        if since is not None:
            where.append("received_at >= %s")
            args.append(since)
        if before is not None:
            where.append("received_at < %s")
            args.append(before)
        text = (f"SELECT {COLUMNS} FROM usdcop_audit.events WHERE {' AND '.join(where)}"
                " ORDER BY sequence")
        async with self._errors("read"):
            conn = await self._pool.getconn()
        try:
            async with self._errors("read"):
                await conn.set_autocommit(False)
                await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
            try:
                async with conn.cursor(name="usdcop_audit_read", row_factory=dict_row) as cur:
                    cur.itersize = chunk
                    async with self._errors("read"):
                        await cur.execute(text, args)
                    while True:
                        async with self._errors("read", self.timeout * 4):
                            rows = await cur.fetchmany(chunk)
                        if not rows:
                            break
                        for row in rows:
                            yield decode(row)
            finally:
                with contextlib.suppress(psycopg.Error):
                    await conn.rollback()
                    await conn.set_autocommit(True)
                    await conn.set_isolation_level(None)
        finally:
            await self._pool.putconn(conn)

    @_bounded_call
    async def first_sequence(self) -> int | None:
        """The oldest stored sequence, or None when empty."""
        async with self._errors("read"), self._pool.connection() as conn:
            cur = await conn.execute("SELECT min(sequence) FROM usdcop_audit.events")
            row = await cur.fetchone()
            return row[0]

    @_bounded_call
    async def count_range(self, first: int, through: int) -> int:
        """How many events are stored with a sequence from `first` to `through`."""
        async with self._errors("read"), self._pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM usdcop_audit.events"
                                     " WHERE sequence BETWEEN %s AND %s", (first, through))
            row = await cur.fetchone()
            return row[0]

    @_bounded_call
    async def get_event(self, sequence: int) -> dict[str, Any] | None:
        """One stored event in chain form."""
        async with self._errors("read"), self._pool.connection() as conn:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    f"SELECT {COLUMNS} FROM usdcop_audit.events WHERE sequence = %s", (sequence,))
                row = await cur.fetchone()
                return decode(row) if row else None

    @_bounded_call
    async def find_purge(self, through: int) -> dict[str, Any] | None:
        """The AUDIT_PURGED event that purged through `through` (chain form)."""
        async with self._errors("read"), self._pool.connection() as conn:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    f"SELECT {COLUMNS} FROM usdcop_audit.events WHERE event_type = 'AUDIT_PURGED'"
                    " AND (data->>'through_sequence')::bigint = %s ORDER BY sequence LIMIT 1",
                    (through,))
                row = await cur.fetchone()
                return decode(row) if row else None

    @_bounded_call
    async def checkpoints(self) -> list[dict[str, Any]]:
        """All checkpoint rows, oldest first, in the checkpoint document form."""
        async with self._errors("checkpoint"), self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT sequence, hash, count, at, prev_checkpoint, signature"
                " FROM usdcop_audit.checkpoints ORDER BY sequence")
            return [_checkpoint(row) for row in await cur.fetchall()]


def _checkpoint(row) -> dict[str, Any]:
    """A checkpoints row in the checkpoint document form."""
    sequence, digest, count, at, prev, signature = row
    return {"sequence": sequence, "hash": bytes(digest).hex(), "count": count,
            "at": format_time(at), "prev_checkpoint": prev, "signature": signature}
