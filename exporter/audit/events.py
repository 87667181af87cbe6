"""Audit event input: the known types and strict validation of what callers send."""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import fields
from ..fields import MAX_DEPTH, FieldError, join
from .chain import (
    MAX_SAFE_INTEGER,
    NotCanonical,
    canonical,
    canonical_checked,
    client_digest,
    format_time,
)
from .errors import AuditValidationError

KNOWN_TYPES = (
    "SIGNAL_GENERATED", "POSITION_OPENED", "POSITION_CLOSED", "TRADE_EXECUTED",
    "RISK_LIMIT_BREACHED", "CONFIG_CHANGED", "SERVICE_STATUS_CHANGED", "TRADING_HALTED",
    "TRADING_RESUMED", "AUDIT_PURGED",
)
# Written by the sidecar itself (health, reloads, the desk, retention); refused from callers.
RESERVED_TYPES = frozenset((
    "AUDIT_PURGED", "CONFIG_CHANGED", "SERVICE_STATUS_CHANGED", "TRADING_HALTED",
    "TRADING_RESUMED", "RISK_LIMIT_BREACHED",
))
EVENT_FIELDS = ("event_type", "event_id", "timestamp", "symbol", "actor", "data")
EVENT_TYPE_RE = re.compile(r"[A-Z][A-Z0-9_]{2,63}")
SYMBOL_RE = re.compile(r"[A-Z0-9]{3,12}")
MAX_ACTOR = 256
MAX_DATA_BYTES = 64 * 1024


def metric_type(event_type: str) -> str:
    """The label value for an event type: known types as themselves, else `other`."""
    return event_type if event_type in KNOWN_TYPES else "other"


@dataclass(frozen=True)
class PendingEvent:
    """A validated event accepted by the sidecar or library, not yet in the chain."""

    event_id: str
    event_type: str
    timestamp: str  # canonical UTC; the receipt time when the client gave none
    symbol: str | None
    actor: str | None
    data: dict | None
    accepted_at: str
    timestamp_given: bool
    digest: bytes  # of the client-supplied fields (idempotency)
    data_json: bytes = b"null"  # canonical JSON of data, computed once for both hashes

    def to_json(self) -> dict[str, Any]:
        """The form written to the spool."""
        return {
            "event_id": self.event_id, "event_type": self.event_type,
            "timestamp": self.timestamp, "symbol": self.symbol, "actor": self.actor,
            "data": self.data, "accepted_at": self.accepted_at,
            "timestamp_given": self.timestamp_given, "digest": self.digest.hex(),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PendingEvent:
        """Read back a spooled event (raises KeyError/ValueError when malformed)."""
        return cls(
            event_id=str(uuid.UUID(obj["event_id"])), event_type=obj["event_type"],
            timestamp=obj["timestamp"], symbol=obj["symbol"], actor=obj["actor"],
            data=obj["data"], accepted_at=obj["accepted_at"],
            timestamp_given=bool(obj["timestamp_given"]), digest=bytes.fromhex(obj["digest"]),
            data_json=canonical(obj["data"]),
        )

    def spooled_view(self) -> dict[str, Any]:
        """The API form of an event durable in the spool (no place in the chain yet)."""
        return {
            "sequence": None, "event_id": self.event_id, "event_type": self.event_type,
            "timestamp": self.timestamp, "received_at": None, "accepted_at": self.accepted_at,
            "symbol": self.symbol, "actor": self.actor, "data": self.data,
            "prev_hash": None, "hash": None,
        }


def parse_time(text: Any, field: str) -> datetime:
    """An ISO-8601 time with an offset, in UTC (fractions beyond microseconds are truncated)."""
    try:
        return fields.iso_time(text, field)
    except FieldError as exc:
        raise _refused(exc) from None


def check_data(value: Any, field: str) -> bytes:
    """Free-form `data`: an object of JSON values, 64 KiB, depth 16, exact numbers only.

    Returns its canonical JSON (b"null" when absent). Valid data costs one pass (the
    canonical encoding checks as it goes); only invalid data is walked again to name the
    offending field."""
    if value is None:
        return b"null"
    if not isinstance(value, dict):
        raise AuditValidationError(f"{field} must be a JSON object", field)
    try:
        text = canonical_checked(value)
    except (NotCanonical, TypeError, ValueError, UnicodeEncodeError):
        _explain(value, field)
        raise AuditValidationError(f"{field} is not valid JSON", field) from None
    if len(text) > MAX_DATA_BYTES:
        raise AuditValidationError(f"{field} is larger than 64 KiB", field, too_large=True)
    return text


def _refused(exc: FieldError) -> AuditValidationError:
    return AuditValidationError(exc.sentence, exc.path or None, too_large=exc.too_large)


def _explain(value: Any, field: str) -> None:
    """Raise the error naming the first offending field of `value`."""
    try:
        for item, path, depth in fields.walk(value, field):
            if depth > MAX_DEPTH and isinstance(item, dict | list):  # containers, data included
                raise AuditValidationError(f"{field} is nested deeper than {MAX_DEPTH} levels",
                                           path)
            if isinstance(item, dict):
                for key in item:
                    if not isinstance(key, str):
                        raise AuditValidationError(f"{path} has a non-string key", path)
                    fields.text(key, f"{path}.{key}")
            elif isinstance(item, str):
                fields.text(item, path)
            elif isinstance(item, bool) or item is None:
                pass
            elif isinstance(item, int):
                if abs(item) > MAX_SAFE_INTEGER:
                    raise AuditValidationError(
                        f"{path}: integers beyond ±2^53 cannot be hashed exactly (RFC 8785); "
                        "send it as a string", path)
            elif isinstance(item, float):
                if not math.isfinite(item):
                    raise AuditValidationError(f"{path} must be a finite number", path)
            elif not isinstance(item, list):
                raise AuditValidationError(f"{path} is not a JSON value", path)
    except FieldError as exc:
        raise _refused(exc) from None


def _opt_str(obj: dict, key: str, where: str, max_len: int, pattern: re.Pattern | None = None
             ) -> str | None:
    try:
        return fields.get(obj, key, join(where, key), fields.string, max_len=max_len,
                          pattern=pattern, typed=False, single_line=pattern is None)
    except FieldError as exc:
        raise _refused(exc) from None


def parse_event(
    obj: Any,
    where: str = "",
    *,
    now: datetime,
    max_future_skew: float = 300.0,
    retention: float | None = None,
    reserved: bool = False,
) -> PendingEvent:
    """Validate one event object `{event_type, event_id?, timestamp?, symbol?, actor?, data?}`.

    The RESERVED_TYPES are refused unless `reserved` is True (the sidecar's own writers)."""
    if not isinstance(obj, dict):
        raise AuditValidationError(f"{where or 'event'} must be a JSON object", where or None)
    for key in obj:
        if key not in EVENT_FIELDS:
            raise AuditValidationError(f"unknown field {key!r}", join(where, key))
    event_type = obj.get("event_type")
    path = join(where, "event_type")
    if event_type is None:
        raise AuditValidationError("field 'event_type' is required", path)
    if not isinstance(event_type, str) or not EVENT_TYPE_RE.fullmatch(event_type):
        raise AuditValidationError(f"{path} must match ^[A-Z][A-Z0-9_]{{2,63}}$", path)
    if event_type in RESERVED_TYPES and not reserved:
        raise AuditValidationError(
            f"{path}: {event_type} is written by the sidecar itself and cannot be submitted", path)
    raw_id = obj.get("event_id")
    if raw_id is None:
        event_id = str(uuid.uuid4())
    else:
        path = join(where, "event_id")
        if not isinstance(raw_id, str) or len(raw_id) > 64:
            raise AuditValidationError(f"{path} must be a UUID string", path)
        try:
            event_id = str(uuid.UUID(raw_id))
        except ValueError:
            raise AuditValidationError(f"{path} must be a UUID, got {raw_id[:40]!r}", path) from None
    accepted = now.astimezone(UTC)
    accepted_text = format_time(accepted)
    raw_time = obj.get("timestamp")
    if raw_time is None:
        when, given = accepted, False
    else:
        path = join(where, "timestamp")
        when, given = parse_time(raw_time, path), True
        if when - accepted > timedelta(seconds=max_future_skew):
            raise AuditValidationError(
                f"{path} is more than {max_future_skew:g} s in the future", path)
        if retention is not None and accepted - when > timedelta(seconds=retention):
            raise AuditValidationError(
                f"{path} is older than the retention horizon ({retention:g} s)", path)
    symbol = _opt_str(obj, "symbol", where, 12, SYMBOL_RE)
    actor = _opt_str(obj, "actor", where, MAX_ACTOR)
    data = obj.get("data")
    data_json = check_data(data, join(where, "data"))
    timestamp = format_time(when) if given else accepted_text
    # The id is the key, not content: re-sending a generated id with the same fields is a
    # duplicate too.
    digest = client_digest(event_type, timestamp if given else None, symbol, actor, data_json)
    return PendingEvent(
        event_id=event_id, event_type=event_type, timestamp=timestamp, symbol=symbol,
        actor=actor, data=data, accepted_at=accepted_text, timestamp_given=given,
        digest=digest, data_json=data_json,
    )
