"""Field checks shared by the signal, position, financial and custom-metric shapes."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

from ..jsontypes import json_type_name
from .errors import SignalError

MAX_STRING = 256
FREE_FORM_LIMIT = 64 * 1024
MAX_DEPTH = 16


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


def number(obj: dict, key: str, *, required: bool = False, lo: float | None = None,
           hi: float | None = None, lo_open: bool = False) -> float | None:
    """A finite number field (booleans are not numbers); None when absent and optional."""
    value = obj.get(key)
    if value is None:
        if required:
            raise SignalError(key, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SignalError(key, f"must be a number, got {json_type_name(value)}")
    try:
        value = float(value)
    except OverflowError:
        raise SignalError(key, "is out of range") from None
    if not math.isfinite(value):
        raise SignalError(key, "must be finite")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise SignalError(key, f"must be {'>' if lo_open else '>='} {lo:g}, got {value:g}")
    if hi is not None and value > hi:
        raise SignalError(key, f"must be <= {hi:g}, got {value:g}")
    return value


def string(obj: dict, key: str, *, required: bool = False, max_len: int = MAX_STRING,
           pattern: re.Pattern[str] | None = None, choices: tuple[str, ...] = ()) -> str | None:
    """A non-empty string field, optionally matching a pattern or one of `choices`."""
    value = obj.get(key)
    if value is None:
        if required:
            raise SignalError(key, "is required")
        return None
    if not isinstance(value, str):
        raise SignalError(key, f"must be a string, got {json_type_name(value)}")
    if not value:
        raise SignalError(key, "must not be empty")
    if len(value) > max_len:
        raise SignalError(key, f"is longer than {max_len} characters")
    if "\x00" in value:
        raise SignalError(key, "contains a NUL character")
    if choices and value not in choices:
        raise SignalError(key, f"must be one of {'|'.join(choices)}, got {value[:40]!r}")
    if pattern is not None and not pattern.fullmatch(value):
        raise SignalError(key, f"must match ^{pattern.pattern}$, got {value[:40]!r}")
    return value


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
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SignalError(key, f"must be a JSON object, got {json_type_name(value)}")
    if depth(value) > MAX_DEPTH:
        raise SignalError(key, f"is nested deeper than {MAX_DEPTH} levels")
    try:
        size = len(dumps(value))
    except (TypeError, ValueError) as exc:
        raise SignalError(key, f"is not JSON: {exc}") from None
    if size > FREE_FORM_LIMIT:
        raise SignalError(key, f"is larger than {FREE_FORM_LIMIT // 1024} KiB")
    return value


def unknown_fields(obj: dict, known: frozenset[str]) -> None:
    """Refuse fields outside `known`, naming the first one."""
    for key in obj:
        if key not in known:
            raise SignalError(str(key), "unknown field")


def depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


