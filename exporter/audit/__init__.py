"""Audit trail: AuditLogger over a Postgres (with outage spool) or SQLite store, hash chain,
signed checkpoints, verification, retention."""

from .errors import AuditConflict, AuditError, AuditRejected, AuditUnavailable, AuditValidationError
from .events import KNOWN_TYPES, RESERVED_TYPES, PendingEvent, parse_event
from .logger import AuditLogger
from .metrics import AuditMetrics, AuditState
from .spool import Spool
from .store_sqlite import SqliteStore
from .verify import verify_file, verify_store
from .writer import AuditWriter

__all__ = [
    "KNOWN_TYPES",
    "RESERVED_TYPES",
    "AuditConflict",
    "AuditError",
    "AuditLogger",
    "AuditMetrics",
    "AuditRejected",
    "AuditState",
    "AuditUnavailable",
    "AuditValidationError",
    "AuditWriter",
    "PendingEvent",
    "PgStore",
    "Spool",
    "SqliteStore",
    "parse_event",
    "verify_file",
    "verify_store",
]


def __getattr__(name: str):
    # PgStore brings psycopg (~11 MiB): loaded on first use, not by every sidecar
    if name == "PgStore":
        from .store_pg import PgStore

        return PgStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
