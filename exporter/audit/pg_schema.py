"""Postgres schema `usdcop_audit`: versioned migrations, monthly partitions, role grants.

Migrations run in one transaction under an advisory lock, so two processes starting at
once apply each version exactly once. Run by the owner role (POSTGRES_ADMIN_URL).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg
from psycopg import sql

SCHEMA = "usdcop_audit"
MIGRATION_LOCK = 0x5553_4443_4F50_0001  # 'USDCOP' + 1: schema changes and partitions
CHAIN_LOCK = 0x5553_4443_4F50_0002  # appends and purges
MONTHS_AHEAD = 2

_REFUSE = """
CREATE FUNCTION usdcop_audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'usdcop_audit.%: % refused, the audit trail is append-only',
        TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$
"""

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "events, event_ids, chain head, checkpoints", [
        _REFUSE,
        """
        CREATE TABLE usdcop_audit.events (
            sequence bigint NOT NULL,
            event_id uuid NOT NULL,
            event_type text NOT NULL,
            "timestamp" timestamptz NOT NULL,
            received_at timestamptz NOT NULL,
            accepted_at timestamptz NOT NULL,
            symbol text,
            actor text,
            data jsonb,
            prev_hash bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
            hash bytea NOT NULL CHECK (octet_length(hash) = 32),
            PRIMARY KEY (sequence, received_at)
        ) PARTITION BY RANGE (received_at)
        """,
        "CREATE TABLE usdcop_audit.events_default PARTITION OF usdcop_audit.events DEFAULT",
        "CREATE INDEX events_type_seq ON usdcop_audit.events (event_type, sequence)",
        "CREATE INDEX events_symbol_seq ON usdcop_audit.events (symbol, sequence)",
        'CREATE INDEX events_time_seq ON usdcop_audit.events ("timestamp", sequence)',
        """CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON usdcop_audit.events
           FOR EACH ROW EXECUTE FUNCTION usdcop_audit.refuse_change()""",
        """CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON usdcop_audit.events
           FOR EACH STATEMENT EXECUTE FUNCTION usdcop_audit.refuse_change()""",
        """CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON usdcop_audit.events_default
           FOR EACH STATEMENT EXECUTE FUNCTION usdcop_audit.refuse_change()""",
        """
        CREATE TABLE usdcop_audit.event_ids (
            event_id uuid PRIMARY KEY,
            sequence bigint NOT NULL UNIQUE,
            digest bytea NOT NULL
        )
        """,
        """CREATE TRIGGER event_ids_append_only BEFORE UPDATE OR DELETE ON usdcop_audit.event_ids
           FOR EACH ROW EXECUTE FUNCTION usdcop_audit.refuse_change()""",
        """CREATE TRIGGER event_ids_no_truncate BEFORE TRUNCATE ON usdcop_audit.event_ids
           FOR EACH STATEMENT EXECUTE FUNCTION usdcop_audit.refuse_change()""",
        """
        CREATE TABLE usdcop_audit.chain_head (
            id int PRIMARY KEY CHECK (id = 1),
            sequence bigint NOT NULL,
            hash bytea NOT NULL
        )
        """,
        "INSERT INTO usdcop_audit.chain_head VALUES (1, 0, '\\x" + "00" * 32 + "'::bytea)",
        """
        CREATE TABLE usdcop_audit.checkpoints (
            sequence bigint PRIMARY KEY,
            hash bytea NOT NULL,
            count bigint NOT NULL,
            at timestamptz NOT NULL,
            prev_checkpoint text,
            signature text
        )
        """,
        """CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON usdcop_audit.checkpoints
           FOR EACH ROW EXECUTE FUNCTION usdcop_audit.refuse_change()""",
        """CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON usdcop_audit.checkpoints
           FOR EACH STATEMENT EXECUTE FUNCTION usdcop_audit.refuse_change()""",
        "REVOKE ALL ON ALL TABLES IN SCHEMA usdcop_audit FROM PUBLIC",
    ]),
]
LATEST = MIGRATIONS[-1][0]


def month_start(value: datetime | date) -> date:
    """First day of the month of `value` (UTC)."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC).date()
    return value.replace(day=1)


def add_months(month: date, n: int) -> date:
    """`month` (a first of month) plus n months."""
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    """events_yYYYYmMM."""
    return f"events_y{month.year:04d}m{month.month:02d}"


async def current_version(conn: psycopg.AsyncConnection) -> int:
    """The applied schema version (0 when the schema is absent)."""
    cur = await conn.execute("SELECT to_regclass('usdcop_audit.migrations') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return 0
    cur = await conn.execute("SELECT coalesce(max(version), 0) FROM usdcop_audit.migrations")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(conn: psycopg.AsyncConnection, now: datetime | None = None) -> int:
    """Apply pending migrations and create this and the next months' partitions; returns the version."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        version = await current_version(conn)
        if version > LATEST:
            raise RuntimeError(
                f"schema usdcop_audit is at version {version}, newer than this program ({LATEST})")
        if version == 0:
            await conn.execute("CREATE SCHEMA IF NOT EXISTS usdcop_audit")
            await conn.execute(
                "CREATE TABLE usdcop_audit.migrations (version int PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())")
        for number, name, statements in MIGRATIONS:
            if number <= version:
                continue
            for statement in statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO usdcop_audit.migrations (version, name) VALUES (%s, %s)", (number, name))
        await _ensure_partitions(conn, now)
    return LATEST


async def ensure_partitions(conn: psycopg.AsyncConnection, now: datetime | None = None,
                            months: list[date] | None = None) -> list[str]:
    """Create missing monthly partitions (this month and MONTHS_AHEAD more, or `months`)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        return await _ensure_partitions(conn, now, months)


async def _ensure_partitions(conn, now: datetime | None, months: list[date] | None = None
                             ) -> list[str]:
    if months is None:
        first = month_start(now or datetime.now(UTC))
        months = [add_months(first, i) for i in range(MONTHS_AHEAD + 1)]
    made = []
    for month in months:
        name = partition_name(month)
        cur = await conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{name}",))
        row = await cur.fetchone()
        if row and row[0]:
            continue
        table = sql.Identifier(SCHEMA, name)
        await conn.execute(sql.SQL(
            "CREATE TABLE {} PARTITION OF usdcop_audit.events FOR VALUES FROM ({}) TO ({})"
        ).format(table, sql.Literal(f"{month.isoformat()} 00:00:00+00"),
                 sql.Literal(f"{add_months(month, 1).isoformat()} 00:00:00+00")))
        # A statement trigger on the parent does not reach partitions: each gets its own.
        await conn.execute(sql.SQL(
            "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON {} "
            "FOR EACH STATEMENT EXECUTE FUNCTION usdcop_audit.refuse_change()").format(table))
        made.append(name)
    return made


def writer_grants(role: str) -> list[sql.Composed]:
    """Statements giving a least-privilege writer role what the sidecar needs, and no more."""
    r = sql.Identifier(role)
    return [
        sql.SQL("GRANT USAGE ON SCHEMA usdcop_audit TO {}").format(r),
        sql.SQL("GRANT SELECT ON usdcop_audit.migrations TO {}").format(r),
        sql.SQL("GRANT SELECT, INSERT ON usdcop_audit.events, usdcop_audit.event_ids,"
                " usdcop_audit.checkpoints TO {}").format(r),
        sql.SQL("GRANT SELECT, UPDATE ON usdcop_audit.chain_head TO {}").format(r),
        sql.SQL("REVOKE TRUNCATE ON ALL TABLES IN SCHEMA usdcop_audit FROM {}").format(r),
    ]
