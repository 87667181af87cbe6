"""The embedded audit store: one SQLite file, the same contract as Postgres (no partitions)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import purges
from .batch import plan_append, resolve, row_view
from .chain import format_time
from .errors import AuditRejected, StoreUnavailable
from .events import PendingEvent
from .query import Query
from .store import AuditStore

VERSION = 1
COLUMNS = ("sequence, event_id, event_type, timestamp, received_at, accepted_at, symbol, actor,"
           " data, prev_hash, hash")
_SCHEMA = [
    """CREATE TABLE events (
        sequence INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, event_type TEXT NOT NULL,
        timestamp TEXT NOT NULL, received_at TEXT NOT NULL, accepted_at TEXT NOT NULL,
        symbol TEXT, actor TEXT, data TEXT, prev_hash BLOB NOT NULL, hash BLOB NOT NULL,
        digest BLOB NOT NULL)""",
    "CREATE INDEX events_type_seq ON events (event_type, sequence)",
    "CREATE INDEX events_symbol_seq ON events (symbol, sequence)",
    "CREATE INDEX events_time_seq ON events (timestamp, sequence)",
    """CREATE TABLE checkpoints (sequence INTEGER PRIMARY KEY, hash TEXT NOT NULL,
        count INTEGER NOT NULL, at TEXT NOT NULL, prev_checkpoint TEXT, signature TEXT)""",
    "CREATE TABLE purge_allowance (through INTEGER NOT NULL)",
    "INSERT INTO purge_allowance VALUES (0)",
    """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
       BEGIN SELECT RAISE(ABORT, 'events: UPDATE refused, the audit trail is append-only'); END""",
    # Deletes pass only below the purge allowance, which the purge sets in its own transaction.
    """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
       WHEN old.sequence > (SELECT max(through) FROM purge_allowance)
       BEGIN SELECT RAISE(ABORT, 'events: DELETE refused, the audit trail is append-only'); END""",
    """CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
       BEGIN SELECT RAISE(ABORT, 'checkpoints: UPDATE refused'); END""",
    """CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
       BEGIN SELECT RAISE(ABORT, 'checkpoints: DELETE refused'); END""",
]


def decode(row: sqlite3.Row) -> dict[str, Any]:
    """A row in the chain's form."""
    return {
        "sequence": row["sequence"], "event_id": row["event_id"], "event_type": row["event_type"],
        "timestamp": row["timestamp"], "received_at": row["received_at"],
        "accepted_at": row["accepted_at"], "symbol": row["symbol"], "actor": row["actor"],
        "data": json.loads(row["data"]) if row["data"] is not None else None,
        "prev_hash": bytes(row["prev_hash"]), "hash": bytes(row["hash"]),
    }


class SqliteStore(AuditStore):
    """Audit events in a SQLite file (WAL, synchronous=FULL); calls run on one worker thread."""

    kind = "sqlite"

    def __init__(self, path: str | Path, *, clock: Callable[[], datetime] | None = None,
                 busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self._clock = clock  # tests only: fixed receipt times
        self._busy = busy_timeout
        self._db: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usdcop-sqlite")

    async def _run(self, fn, *args):
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"sqlite {self.path}: {exc}", "timeout"
                                   if "locked" in str(exc) else "connection") from exc
        except (sqlite3.IntegrityError, sqlite3.DataError) as exc:
            raise AuditRejected(f"sqlite {self.path}: {exc}") from exc

    def _open(self) -> None:
        if self._db is not None:
            return
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                             timeout=self._busy)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > VERSION:
                raise RuntimeError(f"{self.path}: audit schema version {version} is newer than {VERSION}")
            if version == 0:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            db.close()
            raise
        self._db = db

    async def open(self) -> None:
        """Open (and create) the file."""
        await self._run(self._open)

    async def ensure_ready(self) -> None:
        """Open the file; nothing else to migrate."""
        await self._run(self._open)

    async def ping(self) -> None:
        """The file answers."""
        await self._run(lambda: self._conn().execute("SELECT 1").fetchone())

    async def close(self) -> None:
        """Close the file and the worker thread."""
        def _close():
            if self._db is not None:
                self._db.close()
                self._db = None
        await asyncio.get_running_loop().run_in_executor(self._executor, _close)
        self._executor.shutdown(wait=True)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._open()
        return self._db

    def _head(self, db) -> tuple[int, bytes, str | None]:
        row = db.execute("SELECT sequence, hash, received_at FROM events ORDER BY sequence DESC"
                         " LIMIT 1").fetchone()
        return (row[0], bytes(row[1]), row[2]) if row else (0, bytes(32), None)

    def _now(self) -> datetime:
        return (self._clock() if self._clock else None) or datetime.now(UTC)

    def _received(self, last: str | None) -> str:
        now = format_time(self._now())
        return max(now, last) if last else now  # rises with sequence even if the clock steps back

    def _insert(self, db, rows) -> None:
        db.executemany(
            f"INSERT INTO events ({COLUMNS}, digest) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [(r.sequence, r.event_id, r.event_type, r.timestamp, r.received_at, r.accepted_at,
              r.symbol, r.actor,
              json.dumps(r.data, ensure_ascii=False) if r.data is not None else None,
              r.prev_hash, r.hash, r.digest) for r in rows])

    def _append(self, units: list[list[PendingEvent]]):
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            seq, digest, last = self._head(db)
            ids = list({e.event_id for unit in units for e in unit})
            existing = {}
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                for r in db.execute(
                        f"SELECT event_id, sequence, digest FROM events WHERE event_id IN"
                        f" ({','.join('?' * len(chunk))})", chunk):
                    existing[r[0]] = (r[1], bytes(r[2]))
            plan = plan_append(units, existing, (seq, digest), self._received(last))
            self._insert(db, plan.rows)
            stored = {s: row_view(decode(r)) for s in plan.duplicate_sequences()
                      for r in db.execute(f"SELECT {COLUMNS} FROM events WHERE sequence = ?", (s,))}
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return resolve(plan, stored)

    async def append(self, units: list[list[PendingEvent]]):
        """Append units (all-or-nothing each) in one transaction."""
        return await self._run(self._append, units)

    async def head(self) -> tuple[int, bytes]:
        """The newest (sequence, hash)."""
        seq, digest, _ = await self._run(lambda: self._head(self._conn()))
        return seq, digest

    def _query(self, q: Query) -> list[dict[str, Any]]:
        where, args = [], []
        for cond, value in (("event_type = ?", q.event_type), ("symbol = ?", q.symbol),
                            ("timestamp >= ?", q.start and format_time(q.start)),
                            ("timestamp < ?", q.end and format_time(q.end)),
                            ("sequence < ?", q.before)):
            if value is not None:
                where.append(cond)
                args.append(value)
        text = f"SELECT {COLUMNS} FROM events"
        if where:
            text += " WHERE " + " AND ".join(where)
        text += " ORDER BY sequence DESC LIMIT ?"
        args.append(q.limit + 1)
        return [row_view(decode(r)) for r in self._conn().execute(text, args)]

    async def query(self, q: Query) -> list[dict[str, Any]]:
        """Events matching `q`, newest first, at most q.limit + 1."""
        return await self._run(self._query, q)

    async def iter_events(self, after: int = 0, until: int | None = None, chunk: int = 5000,
                          since: datetime | None = None, before: datetime | None = None
                          ) -> AsyncIterator[dict[str, Any]]:
        """Stored events in sequence order (chain form); since/before bound `received_at`,
        which rises with sequence, so a window is one contiguous stretch of the chain."""
        last = after
        extra, extra_args = "", []
        if until is not None:
            extra += " AND sequence <= ?"
            extra_args.append(until)
        if since is not None:
            extra += " AND received_at >= ?"
            extra_args.append(format_time(since))
        if before is not None:
            extra += " AND received_at < ?"
            extra_args.append(format_time(before))
        while True:
            rows = await self._run(lambda last=last: [decode(r) for r in self._conn().execute(
                f"SELECT {COLUMNS} FROM events WHERE sequence > ?{extra} ORDER BY sequence"
                " LIMIT ?", (last, *extra_args, chunk))])
            if not rows:
                return
            for row in rows:
                yield row
            last = rows[-1]["sequence"]

    async def first_sequence(self) -> int | None:
        """The oldest stored sequence."""
        return await self._run(lambda: self._conn().execute(
            "SELECT min(sequence) FROM events").fetchone()[0])

    async def count_range(self, first: int, through: int) -> int:
        """How many events are stored with a sequence from `first` to `through`."""
        return await self._run(lambda: self._conn().execute(
            "SELECT count(*) FROM events WHERE sequence BETWEEN ? AND ?",
            (first, through)).fetchone()[0])

    async def get_event(self, sequence: int) -> dict[str, Any] | None:
        """One stored event in chain form."""
        def _get():
            row = self._conn().execute(f"SELECT {COLUMNS} FROM events WHERE sequence = ?",
                                       (sequence,)).fetchone()
            return decode(row) if row else None
        return await self._run(_get)

    async def find_purge(self, through: int) -> dict[str, Any] | None:
        """The AUDIT_PURGED event that purged through `through`."""
        def _find():
            row = self._conn().execute(
                f"SELECT {COLUMNS} FROM events WHERE event_type = 'AUDIT_PURGED' AND"
                " json_extract(data, '$.through_sequence') = ? ORDER BY sequence LIMIT 1",
                (through,)).fetchone()
            return decode(row) if row else None
        return await self._run(_find)

    async def add_checkpoint(self, cp: dict[str, Any]) -> bool:
        """Insert a checkpoint; False when one at that sequence exists."""
        def _add():
            cur = self._conn().execute(
                "INSERT OR IGNORE INTO checkpoints VALUES (?,?,?,?,?,?)",
                (cp["sequence"], cp["hash"], cp["count"], cp["at"], cp["prev_checkpoint"],
                 cp.get("signature")))
            return cur.rowcount == 1
        return await self._run(_add)

    async def checkpoints(self) -> list[dict[str, Any]]:
        """All checkpoints, oldest first."""
        def _list():
            return [dict(r) for r in self._conn().execute(
                "SELECT sequence, hash, count, at, prev_checkpoint, signature FROM checkpoints"
                " ORDER BY sequence")]
        return await self._run(_list)

    async def maintain(self, now: datetime | None = None, months=None) -> dict[str, Any]:
        """Nothing to create ahead in SQLite."""
        return {"created": [], "default_partition_rows": None}

    def _purge(self, horizon: datetime, make_event: Callable[[dict], PendingEvent]):
        db = self._conn()
        limit = format_time(min(horizon, self._now()))
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT min(sequence) FROM events WHERE received_at >= ? OR"
                             " timestamp >= ?", (limit, format_time(horizon))).fetchone()
            seq, digest, last = self._head(db)
            through = (row[0] - 1) if row[0] is not None else seq
            first = db.execute("SELECT min(sequence) FROM events").fetchone()[0]
            if first is None or through < first:
                db.execute("ROLLBACK")
                return {"purged": 0, "through_sequence": None, "partitions": []}
            through_hash = bytes(db.execute("SELECT hash FROM events WHERE sequence = ?",
                                            (through,)).fetchone()[0])
            count = db.execute("SELECT count(*) FROM events WHERE sequence <= ?",
                               (through,)).fetchone()[0]
            newest = db.execute(
                "SELECT sequence, hash, count, at, prev_checkpoint, signature FROM checkpoints"
                " WHERE sequence <= ? ORDER BY sequence DESC LIMIT 1", (through,)).fetchone()
            event = make_event({
                "from_sequence": first, "through_sequence": through,
                "through_hash": through_hash.hex(), "purged": count,
                "horizon": format_time(horizon), "partitions": [],
                "checkpoint": purges.named_checkpoint(dict(newest) if newest else None),
            })
            plan = plan_append([[event]], {}, (seq, digest), self._received(last))
            self._insert(db, plan.rows)
            db.execute("UPDATE purge_allowance SET through = ?", (through,))
            db.execute("DELETE FROM events WHERE sequence <= ?", (through,))
            db.execute("UPDATE purge_allowance SET through = 0")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return {"purged": count, "through_sequence": through, "partitions": [],
                "event": plan.rows[0].view()}

    async def purge(self, horizon: datetime, make_event: Callable[[dict], PendingEvent]
                    ) -> dict[str, Any]:
        """Record AUDIT_PURGED, then delete the expired prefix of the chain."""
        return await self._run(self._purge, horizon, make_event)
