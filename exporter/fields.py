"""Field validators shared by every layer: strings, numbers, booleans, closed objects and
free-form JSON values, with one nesting bound and one depth walker.

Each check raises one FieldError naming the field's path and what is wrong with it, as a
predicate ("must be a number, got string"); each layer turns it into its own error (the
API's 422, the cache's SignalError, the audit's AuditValidationError, the config's
ConfigError with file and line). Nothing here does I/O or keeps state.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime
from typing import Any

from .jsontypes import json_type_name

MAX_DEPTH = 16  # nesting of free-form JSON (features, metadata, audit data)
LINE_SEPARATORS = "\x85\u2028\u2029"  # NEL and the Unicode line and paragraph separators
TIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,32})?)?([Zz]|[+-]\d{2}:\d{2})"
)
REQUIRED = "is required"  # the message of a required field that is absent (or null)


class FieldError(ValueError):
    """A field that fails a check: `path` names it (`records[3].service`; empty for the
    value as a whole), `message` says what is wrong, `too_large` marks a size bound."""

    def __init__(self, path: str, message: str, too_large: bool = False) -> None:
        super().__init__(f"{path} {message}" if path else message)
        self.path = path
        self.message = message
        self.too_large = too_large

    @property
    def sentence(self) -> str:
        """`path message`, or the message alone when the path is empty."""
        return str(self)


def join(where: str, key: str | int) -> str:
    """`where.key`, `where[3]`, or `key` alone at the top."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def get(obj: dict, key: str, path: str, check: Callable[..., Any], *, required: bool = False,
        **rules: Any) -> Any:
    """`obj[key]` as `check(value, path, **rules)` passes it; None when absent or null, which
    a `required` field may not be (FieldError with the message REQUIRED)."""
    value = obj.get(key)
    if value is None:
        if required:
            raise FieldError(path, REQUIRED)
        return None
    return check(value, path, **rules)


def unknown_key(obj: dict, known: Collection[str]) -> Any | None:
    """The first key of `obj` outside `known`, or None."""
    for key in obj:
        if key not in known:
            return key
    return None


def is_text(value: str) -> bool:
    """False when `value` holds a lone UTF-16 surrogate (no UTF-8 form)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text(value: str, path: str) -> str:
    """Refuse a NUL character and a lone UTF-16 surrogate."""
    if "\x00" in value:
        raise FieldError(path, "contains a NUL character")
    if not is_text(value):
        raise FieldError(path, "contains a lone UTF-16 surrogate")
    return value


def one_line(value: str, path: str) -> str:
    """text(), and no control character or line separator either."""
    text(value, path)
    if any(ch < " " or ch in LINE_SEPARATORS for ch in value):
        raise FieldError(path, "contains a control character or line separator")
    return value


def string(value: Any, path: str, *, max_len: int, pattern: re.Pattern[str] | None = None,
           rule: str | None = None, got: bool = False, typed: bool = True,
           nonempty: bool = False, nul: bool = False, choices: tuple[str, ...] = (),
           single_line: bool = False) -> str:
    """A string of at most `max_len` characters. In order: its type (`typed` names the type
    found), `nonempty`, the length, `nul` (no NUL character), `choices`, `pattern` (the
    message says `rule`, by default the pattern; `got` shows the value), `single_line`."""
    if not isinstance(value, str):
        found = f", got {json_type_name(value)}" if typed else ""
        raise FieldError(path, f"must be a string{found}")
    if nonempty and not value:
        raise FieldError(path, "must not be empty")
    if len(value) > max_len:
        raise FieldError(path, f"is longer than {max_len} characters")
    if nul and "\x00" in value:
        raise FieldError(path, "contains a NUL character")
    if choices and value not in choices:
        raise FieldError(path, f"must be one of {'|'.join(choices)}, got {value[:40]!r}")
    if pattern is not None and not pattern.fullmatch(value):
        shown = f", got {value[:40]!r}" if got else ""
        raise FieldError(path, f"must match {rule or pattern.pattern}{shown}")
    if single_line:
        one_line(value, path)
    return value


def number(value: Any, path: str, *, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, got: bool = False) -> float:
    """A finite number (booleans are not numbers) in [lo, hi] (`lo_open`: above lo), as a
    float; `got` shows the value in the range messages."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(path, f"must be a number, got {json_type_name(value)}")
    try:
        value = float(value)
    except OverflowError:
        raise FieldError(path, "is out of range") from None
    if not math.isfinite(value):
        raise FieldError(path, "must be finite")
    shown = f", got {value:g}" if got else ""
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise FieldError(path, f"must be {'>' if lo_open else '>='} {lo:g}{shown}")
    if hi is not None and value > hi:
        raise FieldError(path, f"must be <= {hi:g}{shown}")
    return value


def between(value: int, path: str, lo: int, hi: int) -> int:
    """An integer within [lo, hi]."""
    if not lo <= value <= hi:
        raise FieldError(path, f"must be between {lo} and {hi}, got {value}")
    return value


def boolean(value: Any, path: str) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise FieldError(path, f"must be true or false, got {json_type_name(value)}")
    return value


def iso_time(value: Any, path: str) -> datetime:
    """An ISO-8601 time with an offset (`Z` or `+hh:mm`), in UTC, between years 1 and 9999;
    fractions beyond microseconds are truncated."""
    if not isinstance(value, str):
        raise FieldError(path, "must be an ISO-8601 string with an offset")
    if not TIME_RE.fullmatch(value):
        raise FieldError(path, "must be ISO-8601 with an offset, like 2025-01-15T10:30:00Z; "
                               f"got {value[:40]!r}")
    try:
        moment = datetime.fromisoformat(value.upper())
    except ValueError:
        raise FieldError(path, f"is not a valid time: {value[:40]!r}") from None
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 or 9999-12-31T23:59-01:00: no UTC form
        raise FieldError(path, f"is out of range: {value[:40]!r} has no UTC time between "
                               "years 1 and 9999") from None


def free_object(value: Any, path: str, *, limit: int,
                encode: Callable[[Any], bytes | str]) -> dict:
    """A free-form JSON object: nested at most MAX_DEPTH levels, at most `limit` long as
    `encode` writes it (too_large past that; an `encode` error says it is not JSON)."""
    if not isinstance(value, dict):
        raise FieldError(path, f"must be a JSON object, got {json_type_name(value)}")
    if depth(value) > MAX_DEPTH:
        raise FieldError(path, f"is nested deeper than {MAX_DEPTH} levels")
    bounded(value, path, limit=limit, encode=encode)
    return value


def bounded(value: Any, path: str, *, limit: int, encode: Callable[[Any], bytes | str]) -> int:
    """The length of `value` as `encode` writes it, at most `limit` (too_large past that;
    an `encode` error says it is not JSON)."""
    try:
        size = len(encode(value))
    except (TypeError, ValueError) as exc:
        raise FieldError(path, f"is not JSON: {exc}") from None
    if size > limit:
        raise FieldError(path, f"is larger than {limit // 1024} KiB", too_large=True)
    return size


def depth(value: Any, *, nul: bool = False) -> int:
    """Nesting depth of a JSON value, a scalar counting as one level, without recursion.
    With `nul`, a NUL character in a string or key raises FieldError (path empty)."""
    if not isinstance(value, dict | list):
        if nul and isinstance(value, str) and "\x00" in value:
            raise FieldError("", "contains a NUL character")
        return 1
    deepest, stack = 1, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            if nul and any("\x00" in key for key in item):
                raise FieldError("", "contains a NUL character")
            children = item.values()
        else:
            children = item
        deepest = max(deepest, level)
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, level + 1))
            else:
                if level >= deepest:
                    deepest = level + 1
                if nul and isinstance(child, str) and "\x00" in child:
                    raise FieldError("", "contains a NUL character")
    return deepest


def walk(value: Any, path: str) -> Iterator[tuple[Any, str, int]]:
    """Every value inside `value` as (item, path, level), `value` itself at level 1, without
    recursion. A dict is yielded before its children are taken, so a caller that checks its
    keys on receipt checks them before anything below them."""
    stack: list[tuple[Any, str, int]] = [(value, path, 1)]
    while stack:
        item, where, level = stack.pop()
        yield item, where, level
        if isinstance(item, dict):
            stack.extend((child, join(where, key) if isinstance(key, str) else where,
                          level + 1) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, join(where, i), level + 1) for i, child in enumerate(item))
