"""The Postgres audit store: psycopg 3 async pool, appends under the chain's advisory lock,
checkpoints, partition maintenance and purges; its reads are in `store_pg_reads`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from . import pg_schema, purges
from .batch import plan_append, resolve, row_view
from .chain import format_time
from .errors import AuditRejected, StoreUnavailable
from .events import PendingEvent
from .store import AuditStore
from .store_pg_reads import COLUMNS, PgReads, _bounded_call, _checkpoint, decode

CHECK_AFTER = 2.0  # seconds idle before a pooled connection is checked again


_READ = (f"BEGIN; SELECT pg_advisory_xact_lock({pg_schema.CHAIN_LOCK});"
         " SELECT NULL::text, sequence, hash, clock_timestamp() FROM usdcop_audit.chain_head"
         " UNION ALL SELECT event_id::text, sequence, digest, NULL FROM usdcop_audit.event_ids"
         " WHERE event_id = ANY('{{{ids}}}'::uuid[])")
# One statement writes the events, their ids and the new head; binary parameters (%b) are
# several times cheaper to build than text arrays.
_INSERT = f"""
WITH new AS (
    SELECT * FROM unnest(%b::bigint[], %b::uuid[], %b::text[], %b::timestamptz[],
                         %b::timestamptz[], %b::timestamptz[], %b::text[], %b::text[],
                         %b::jsonb[], %b::bytea[], %b::bytea[], %b::bytea[])
        AS t(sequence, event_id, event_type, ts, received_at, accepted_at, symbol, actor, data,
             prev_hash, hash, digest)
), events AS (
    INSERT INTO usdcop_audit.events ({COLUMNS})
    SELECT sequence, event_id, event_type, ts, received_at, accepted_at, symbol, actor, data,
           prev_hash, hash FROM new
), ids AS (
    INSERT INTO usdcop_audit.event_ids (event_id, sequence, digest)
    SELECT event_id, sequence, digest FROM new
)
UPDATE usdcop_audit.chain_head SET sequence = %b, hash = %b
"""


def _connect_kwargs(timeout: float) -> dict[str, Any]:
    return {
        "autocommit": True,
        "connect_timeout": max(1, int(timeout)),
        "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
        "options": f"-c statement_timeout={int(timeout * 1000)} -c TimeZone=UTC",
        "application_name": "usdcop-exporter-audit",
    }


class PgStore(PgReads, AuditStore):
    """Audit events in schema usdcop_audit; every public call raises StoreUnavailable on outage."""

    kind = "postgres"

    def __init__(self, url: str, admin_url: str | None = None, *, timeout: float = 2.5,
                 pool_max: int = 4, clock: Callable[[], datetime] | None = None) -> None:
        self.url = url
        self.admin_url = admin_url or url
        self.timeout = timeout
        self._clock = clock  # tests only: fixed receipt times instead of clock_timestamp()
        self._pool = AsyncConnectionPool(
            # Waiting long for a pooled connection only delays spooling during an outage:
            # the writer needs one connection at a time.
            url, min_size=1, max_size=pool_max, open=False, timeout=min(1.0, timeout),
            kwargs=_connect_kwargs(timeout), check=self._check, reset=self._returned,
            reconnect_timeout=timeout * 4, name="usdcop-audit",
        )
        self._last_used: dict[int, float] = {}
        self._migrated = False
        self._pool_errors = 0
        self._abandoned: set[asyncio.Task] = set()

    async def _check(self, conn: psycopg.AsyncConnection) -> None:
        # A round trip per checkout would cost a third of a small append; a connection used
        # in the last seconds is known good, an older one is checked before use.
        if time.monotonic() - self._last_used.get(id(conn), 0.0) > CHECK_AFTER:
            await AsyncConnectionPool.check_connection(conn)

    async def _returned(self, conn: psycopg.AsyncConnection) -> None:
        if conn.pgconn.pipeline_status:
            # A write abandoned mid-pipeline (frozen server) can come back still in pipeline
            # mode: raising makes the pool discard the connection.
            raise psycopg.InterfaceError("connection returned in pipeline mode")
        self._last_used[id(conn)] = time.monotonic()
        if len(self._last_used) > 64:  # connections come and go; forget the oldest
            for key in sorted(self._last_used, key=self._last_used.get)[:32]:
                del self._last_used[key]

    def _clock_now(self) -> datetime | None:
        """The given clock's time; None when there is none and the database's time is used."""
        return self._clock() if self._clock else None

    async def open(self) -> None:
        """Start the pool without waiting for the database (it may be away)."""
        await self._pool.open(wait=False)

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    async def _bounded(self, what: str, coro):
        """Run `coro` for at most 2 × timeout; past that it is abandoned, not awaited.

        psycopg's clean-up of a cancelled query waits up to 10 s on a frozen server; the
        writer must not wait with it. An abandoned write that commits later is harmless:
        its events are spooled too, and the drain recognises them by event_id.
        """
        task = asyncio.ensure_future(coro)
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout * 2)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            task.cancel()
            self._abandoned.add(task)
            task.add_done_callback(_forget(self._abandoned))
            raise StoreUnavailable(f"postgres {what}: no answer within {self.timeout * 2:g} s",
                                   "timeout")
        return task.result()

    @contextlib.asynccontextmanager
    async def _errors(self, what: str, limit: float | None = None):
        try:
            async with asyncio.timeout(limit):
                yield
        except PoolTimeout as exc:
            # Refused connections show in the pool's error count; a silent server does not.
            errors = self._pool.get_stats().get("connections_errors", 0)
            reason = "connection" if errors > self._pool_errors else "timeout"
            self._pool_errors = errors
            raise StoreUnavailable(f"postgres {what}: no connection within {self._pool.timeout:g} s"
                                   f" ({reason})", reason) from exc
        except (TimeoutError, psycopg.errors.QueryCanceled) as exc:
            raise StoreUnavailable(f"postgres {what}: timed out ({exc.__class__.__name__})",
                                   "timeout") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
            raise StoreUnavailable(f"postgres {what}: {_first_line(exc)}", "connection") from exc
        except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
            raise AuditRejected(f"postgres {what}: {_first_line(exc)}") from exc

    @contextlib.asynccontextmanager
    async def _admin(self) -> AsyncIterator[psycopg.AsyncConnection]:
        conn = await psycopg.AsyncConnection.connect(self.admin_url, **_connect_kwargs(self.timeout))
        try:
            yield conn
        finally:
            await conn.close()

    @_bounded_call
    async def ensure_ready(self) -> None:
        """Run migrations once (owner role), then check the pool answers."""
        async with self._errors("migrate"):
            if not self._migrated:
                async with self._admin() as conn:
                    await pg_schema.migrate(conn)
                self._migrated = True
            async with self._pool.connection() as conn:
                await conn.execute("SELECT 1")

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers (and is migrated)."""
        await self.ensure_ready()

    @_bounded_call
    async def append(self, units: list[list[PendingEvent]]):
        """Append units (all-or-nothing each) in one transaction; per-unit outcomes or conflicts."""
        ids = list({event.event_id for unit in units for event in unit})
        async with self._errors("append"), self._pool.connection() as conn:
            # Two round trips. The first is one simple-query message: BEGIN, the lock, then
            # the reads, each its own statement, so the reads see every chain write committed
            # before the lock was granted (ids are canonical UUIDs, safe to inline). The
            # second sends the write and COMMIT together.
            cur = conn.cursor()
            await cur.execute(_READ.format(ids=",".join(ids)).encode())
            try:
                while cur.nextset():
                    pass
                existing, head = {}, None
                for event_id, sequence, digest, now in await cur.fetchall():
                    if event_id is None:
                        head = (sequence, bytes(digest), now)
                    else:
                        existing[event_id] = (sequence, bytes(digest))
                received = format_time(self._clock_now() or head[2])
                plan = plan_append(units, existing, head[:2], received)
                stored = await self._fetch(conn, plan.duplicate_sequences())
                async with conn.pipeline():
                    if plan.rows:
                        await self._insert(conn, plan)
                    await conn.execute("COMMIT")
            except BaseException:
                if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                    with contextlib.suppress(psycopg.Error):
                        await conn.execute("ROLLBACK")
                raise
        return resolve(plan, stored)

    async def _insert(self, conn: psycopg.AsyncConnection, plan) -> None:
        rows = plan.rows
        await conn.execute(_INSERT, (
            [r.sequence for r in rows], [r.event_id for r in rows],
            [r.event_type for r in rows], [r.timestamp for r in rows],
            [r.received_at for r in rows], [r.accepted_at for r in rows],
            [r.symbol for r in rows], [r.actor for r in rows],
            [Jsonb(r.data) if r.data is not None else None for r in rows],
            [r.prev_hash for r in rows], [r.hash for r in rows], [r.digest for r in rows],
            plan.head[0], plan.head[1]))

    async def _fetch(self, conn, sequences) -> dict[int, dict[str, Any]]:
        if not sequences:
            return {}
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT {COLUMNS} FROM usdcop_audit.events WHERE sequence = ANY(%s)",
                              (list(sequences),))
            return {row["sequence"]: row_view(decode(row)) for row in await cur.fetchall()}

    # -- checkpoints ---------------------------------------------------------------------

    @_bounded_call
    async def add_checkpoint(self, cp: dict[str, Any]) -> bool:
        """Insert a checkpoint row; False when one at that sequence exists."""
        async with self._errors("checkpoint"), self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO usdcop_audit.checkpoints (sequence, hash, count, at, prev_checkpoint,"
                " signature) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (sequence) DO NOTHING",
                (cp["sequence"], bytes.fromhex(cp["hash"]), cp["count"], cp["at"],
                 cp["prev_checkpoint"], cp.get("signature")))
            return cur.rowcount == 1

    # -- maintenance and retention (owner role) ----------------------------------------

    async def maintain(self, now: datetime | None = None, months: list[date] | None = None
                       ) -> dict[str, Any]:
        """Create partitions ahead; count rows that fell into the default partition."""
        async with self._errors("maintenance"), self._admin() as conn:
            made = await pg_schema.ensure_partitions(conn, now, months)
            cur = await conn.execute("SELECT count(*) FROM ONLY usdcop_audit.events_default")
            (default_rows,) = await cur.fetchone()
        return {"created": made, "default_partition_rows": default_rows}

    async def purge(self, horizon: datetime, make_event: Callable[[dict], PendingEvent]
                    ) -> dict[str, Any]:
        """Record AUDIT_PURGED, then drop whole partitions ending at or before `horizon`."""
        async with self._errors("purge"), self._admin() as conn:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (pg_schema.CHAIN_LOCK,))
                cur = await conn.execute("SELECT clock_timestamp()")
                (db_now,) = await cur.fetchone()
                now = self._clock_now() or db_now
                limit = min(horizon, now)
                victims, stats = [], {"count": 0, "min_seq": None, "max_seq": None}
                for name, upper in await self._partitions(conn):
                    if upper > limit:
                        break
                    part = await self._partition_stats(conn, name)
                    if part["count"] and part["max_time"] >= horizon:
                        break  # an event dated inside the horizon: keep this and later ones
                    victims.append(name)
                    if part["count"]:
                        stats["count"] += part["count"]
                        stats["min_seq"] = stats["min_seq"] or part["min_seq"]
                        stats["max_seq"] = part["max_seq"]
                if not victims:
                    return {"purged": 0, "through_sequence": None, "partitions": []}
                if stats["count"] == 0:
                    for name in victims:
                        await conn.execute(sql.SQL("DROP TABLE {}").format(
                            sql.Identifier("usdcop_audit", name)))
                    return {"purged": 0, "through_sequence": None, "partitions": victims}
                through = stats["max_seq"]
                tail = await conn.execute(
                    "SELECT hash FROM usdcop_audit.events WHERE sequence = %s", (through,))
                (through_hash,) = await tail.fetchone()
                covered = await conn.execute(
                    "SELECT sequence, hash, count, at, prev_checkpoint, signature"
                    " FROM usdcop_audit.checkpoints WHERE sequence <= %s"
                    " ORDER BY sequence DESC LIMIT 1", (through,))
                newest = await covered.fetchone()
                event = make_event({
                    "from_sequence": stats["min_seq"], "through_sequence": through,
                    "through_hash": bytes(through_hash).hex(), "purged": stats["count"],
                    "horizon": format_time(horizon), "partitions": victims,
                    "checkpoint": purges.named_checkpoint(_checkpoint(newest) if newest else None),
                })
                head_cur = await conn.execute(
                    "SELECT sequence, hash, clock_timestamp() FROM usdcop_audit.chain_head")
                head_seq, head_hash, ts = await head_cur.fetchone()
                received = format_time(self._clock_now() or ts)
                plan = plan_append([[event]], {}, (head_seq, bytes(head_hash)), received)
                await self._insert(conn, plan)
                for name in victims:
                    await conn.execute(sql.SQL("DROP TABLE {}").format(
                        sql.Identifier("usdcop_audit", name)))
                await conn.execute("ALTER TABLE usdcop_audit.event_ids DISABLE TRIGGER USER")
                await conn.execute("DELETE FROM usdcop_audit.event_ids WHERE sequence <= %s",
                                   (through,))
                await conn.execute("ALTER TABLE usdcop_audit.event_ids ENABLE TRIGGER USER")
        return {"purged": stats["count"], "through_sequence": through, "partitions": victims,
                "event": plan.rows[0].view()}

    async def _partitions(self, conn) -> list[tuple[str, datetime]]:
        cur = await conn.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'usdcop_audit.events'::regclass")
        out = []
        for name, bound in await cur.fetchall():
            if "TO ('" not in bound:
                continue  # the default partition is never dropped
            upper = bound.split("TO ('", 1)[1].split("'", 1)[0]
            out.append((name, datetime.fromisoformat(upper).astimezone(UTC)))
        out.sort(key=lambda item: item[1])
        return out

    async def _partition_stats(self, conn, name: str) -> dict[str, Any]:
        cur = await conn.execute(sql.SQL(
            'SELECT count(*), min(sequence), max(sequence), max("timestamp") FROM {}'
        ).format(sql.Identifier("usdcop_audit", name)))
        count, lo, hi, max_time = await cur.fetchone()
        return {"count": count, "min_seq": lo, "max_seq": hi, "max_time": max_time}


def _forget(tasks: set):
    def done(task: asyncio.Task) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as lost
    return done


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__
