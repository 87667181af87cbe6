"""Audit errors: each one names what is wrong; the API maps them to HTTP answers."""

from __future__ import annotations


class AuditError(Exception):
    """Base of the audit trail's errors."""


class AuditValidationError(AuditError):
    """An event (or query) is invalid; `field` names the offending field."""

    def __init__(self, detail: str, field: str | None = None, too_large: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.too_large = too_large  # over a size bound (413 in the API), not merely invalid


class AuditConflict(AuditError):
    """An event_id already stored (or earlier in the batch) with different fields."""

    def __init__(self, event_id: str, field: str | None = None, stored: dict | None = None) -> None:
        super().__init__(f"event_id {event_id} already exists with different fields")
        self.event_id = event_id
        self.field = field
        self.stored = stored


class AuditUnavailable(AuditError):
    """The store cannot take the event durably right now (store away, spool full)."""

    def __init__(self, detail: str, code: str = "unavailable", retry_after: int = 5) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.retry_after = retry_after


class AuditRejected(AuditError):
    """The database refused the event for good (not an outage)."""


class StoreUnavailable(AuditError):
    """The store could not be reached; `reason` is connection or timeout."""

    def __init__(self, detail: str, reason: str = "connection") -> None:
        super().__init__(detail)
        self.reason = reason
