"""Field checks shared by the signal, position, financial and custom-metric shapes."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from .. import fields
from ..fields import FieldError
from ..jsontypes import json_type_name
from .errors import SignalError

MAX_STRING = 256
FREE_FORM_LIMIT = 64 * 1024


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(raw: bytes | str) -> Any:
    """Parse JSON strictly: NaN and Infinity are refused (they cannot be served back)."""
    return json.loads(raw, parse_constant=_reject_constant)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and Infinity are refused."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode()


def require_object(value: Any, what: str) -> dict[str, Any]:
    """`value` must be a JSON object (dict with string keys)."""
    if not isinstance(value, dict):
        raise SignalError(None, f"{what} must be a JSON object, got {json_type_name(value)}")
    return value


def _field(obj: dict, key: str, check: Any, **rules: Any) -> Any:
    try:
        return fields.get(obj, key, key, check, **rules)
    except FieldError as exc:
        raise SignalError(exc.path, exc.message) from None


def number(obj: dict, key: str, *, required: bool = False, lo: float | None = None,
           hi: float | None = None, lo_open: bool = False) -> float | None:
    """A finite number field (booleans are not numbers); None when absent and optional."""
    return _field(obj, key, fields.number, required=required, lo=lo, hi=hi, lo_open=lo_open,
                  got=True)


def string(obj: dict, key: str, *, required: bool = False, max_len: int = MAX_STRING,
           pattern: re.Pattern[str] | None = None, choices: tuple[str, ...] = ()) -> str | None:
    """A non-empty string field, optionally matching a pattern or one of `choices`."""
    return _field(obj, key, fields.string, required=required, max_len=max_len, pattern=pattern,
                  rule=None if pattern is None else f"^{pattern.pattern}$", got=True,
                  nonempty=True, nul=True, choices=choices)


def timestamp(obj: dict, key: str, *, required: bool = False) -> float | None:
    """An ISO-8601 time with an offset (`Z` or `+hh:mm`) → Unix seconds."""
    text = string(obj, key, required=required, max_len=64)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SignalError(key, f"must be an ISO-8601 time, got {text!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise SignalError(key, f"must carry an offset (Z or +hh:mm), got {text!r}")
    return moment.timestamp()


def free_object(obj: dict, key: str) -> dict | None:
    """A free-form JSON object bounded in size (64 KiB) and depth (16)."""
    return _field(obj, key, fields.free_object, limit=FREE_FORM_LIMIT, encode=dumps)
