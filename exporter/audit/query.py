"""Audit trail queries: filters, limit and an opaque keyset cursor on `sequence`."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from .errors import AuditValidationError

MAX_LIMIT = 1000


@dataclass(frozen=True)
class Query:
    """Filters of the audit trail; newest first; `before` is the keyset position."""

    event_type: str | None = None
    symbol: str | None = None
    start: datetime | None = None  # inclusive, on the event timestamp
    end: datetime | None = None  # exclusive
    limit: int = 100
    before: int | None = None  # sequence the page starts below


def encode_cursor(sequence: int) -> str:
    """An opaque cursor for the page after the event with `sequence`."""
    raw = json.dumps({"v": 1, "before": sequence}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "cursor") -> int:
    """The sequence a cursor points below; AuditValidationError when it is not ours."""
    try:
        if len(cursor) > 200:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        obj = json.loads(raw)
        before = obj["before"]
        if obj.get("v") != 1 or not isinstance(before, int) or isinstance(before, bool) or before < 1:
            raise ValueError
        return before
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, AttributeError):
        raise AuditValidationError(f"{field} is not a cursor returned by this API", field) from None


def page(rows: list[dict], limit: int) -> dict:
    """`{"events", "next_cursor"}` from up to limit + 1 rows (the extra one means more exist)."""
    events = rows[:limit]
    more = len(rows) > limit and events
    return {"events": events, "next_cursor": encode_cursor(events[-1]["sequence"]) if more else None}
