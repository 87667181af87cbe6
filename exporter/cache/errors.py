"""Errors of the cache layer, each naming the key or field it is about."""

from __future__ import annotations


class CacheError(Exception):
    """Base of every cache-layer error."""


class CacheUnavailable(CacheError):
    """Redis cannot be reached (stopped, frozen, refusing writes): nothing was written."""


class CacheTypeError(CacheError):
    """A key holds another Redis type than the operation needs (Redis' WRONGTYPE)."""


class CacheFull(CacheError):
    """The in-memory backend holds its byte budget; the write would take it beyond (nothing
    was written)."""


class CacheValueError(CacheError, ValueError):
    """A value that cannot be stored or a stored value that cannot be read back."""


class SignalError(ValueError):
    """A signal, position, financial snapshot or custom metric that fails validation."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class CacheLimitError(SignalError):
    """A write the cache's bounds refuse; `limit` names the bound (`signal_size`, `symbols`)."""

    limit = ""

    def __init__(self, field: str | None, message: str, maximum: int) -> None:
        super().__init__(field, message)
        self.maximum = maximum


class SignalTooLarge(CacheLimitError):
    """A signal whose encoded form is larger than the cache's per-signal cap."""

    limit = "signal_size"


class TooManySymbols(CacheLimitError):
    """A signal for a new symbol while the cache already holds its cap of symbols."""

    limit = "symbols"
