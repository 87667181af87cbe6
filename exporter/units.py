"""Durations and sizes as operators write them: `250ms`, `30s`, `1m30s`; `64KiB`, `1MiB`; counted nouns."""

from __future__ import annotations

import math
import re
from fractions import Fraction

# Largest first: a compound duration must use them in this order, each at most once.
_DURATION_UNITS: dict[str, Fraction] = {
    "d": Fraction(86400),
    "h": Fraction(3600),
    "m": Fraction(60),
    "s": Fraction(1),
    "ms": Fraction(1, 1000),
}
_SIZE_UNITS: dict[str, int] = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}

DURATION_FORMS = "a number and a unit (ms, s, m, h, d), e.g. 250ms, 30s, 2m, 1h, 30d or 1m30s"
SIZE_FORMS = "a whole number and a unit (B, KiB, MiB, GiB, TiB), e.g. 512B, 64KiB, 1MiB, 256MiB"
MAX_DURATION = 100 * 365 * 86400.0  # far beyond any sane setting, well inside what timers accept
MAX_SIZE = 1 << 50

_MAX_TEXT = 64  # longer texts are refused before any regex runs on them
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_SIZE = re.compile(r"(\d+)([A-Za-z]+)")
# Decimal or lower-case spellings people reach for; each has one unambiguous replacement.
_SIZE_HINTS = {"k": "KiB", "kb": "KiB", "m": "MiB", "mb": "MiB", "g": "GiB", "gb": "GiB",
               "t": "TiB", "tb": "TiB", "kib": "KiB", "mib": "MiB", "gib": "GiB", "tib": "TiB",
               "b": "B", "bytes": "B"}


class UnitError(ValueError):
    """A duration or size that does not parse; names the text and the accepted forms."""

    def __init__(self, kind: str, text: object, hint: str) -> None:
        self.kind = kind
        self.text = text
        self.hint = hint
        super().__init__(f"invalid {kind} {text!r}: {hint}")


def _check_text(kind: str, text: object, forms: str) -> None:
    """UnitError unless `text` is a string, not empty and not over _MAX_TEXT characters."""
    if not isinstance(text, str):
        raise UnitError(kind, text, f"expected a string, {forms}")
    if not text:
        raise UnitError(kind, text, f"empty; expected {forms}")
    if len(text) > _MAX_TEXT:
        raise UnitError(kind, text[:_MAX_TEXT] + "...", f"too long; expected {forms}")


def parse_duration(text: str) -> float:
    """Seconds in `text` (`250ms`, `30s`, `2m`, `1h`, `30d`, `1m30s`); bare numbers are refused."""
    _check_text("duration", text, DURATION_FORMS)
    if _NUMBER.fullmatch(text):
        # A bare number could mean seconds or milliseconds; make the writer say which.
        raise UnitError("duration", text, f"missing unit; expected {DURATION_FORMS}")
    if not _DURATION.fullmatch(text):
        raise UnitError("duration", text, f"expected {DURATION_FORMS}")
    total = Fraction(0)
    ranks = list(_DURATION_UNITS)
    last = -1
    for number, unit in _DURATION_PART.findall(text):
        rank = ranks.index(unit)
        if rank <= last:
            raise UnitError("duration", text, "units must go from largest to smallest, each once")
        last = rank
        total += Fraction(number) * _DURATION_UNITS[unit]
    seconds = float(total)
    if seconds > MAX_DURATION:
        raise UnitError("duration", text, "longer than 100 years")
    return seconds


def format_duration(seconds: float) -> str:
    """`seconds` written the way parse_duration reads it (`1m30s`, `250ms`) for messages."""
    if not math.isfinite(seconds):
        return f"{seconds}s"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    millis = round(seconds * 1000)
    if (millis == 0 and seconds != 0) or abs(millis / 1000 - seconds) > 1e-9 * max(1.0, seconds):
        return f"{seconds:g}s"  # finer than a millisecond: plain seconds
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_size(text: str) -> int:
    """Bytes in `text` (`512B`, `64KiB`, `1MiB`, `256MiB`, `1GiB`); binary units only."""
    _check_text("size", text, SIZE_FORMS)
    if text.isdigit():
        raise UnitError("size", text, f"missing unit; write {text}B for bytes, or {SIZE_FORMS}")
    match = _SIZE.fullmatch(text)
    if not match:
        raise UnitError("size", text, f"expected {SIZE_FORMS}")
    number, unit = match.groups()
    if unit not in _SIZE_UNITS:
        better = _SIZE_HINTS.get(unit.lower())
        hint = f"unknown unit {unit!r}"
        if better:
            raise UnitError("size", text, f"{hint}; write {number}{better} (binary units, case-sensitive)")
        raise UnitError("size", text, f"{hint}; expected {SIZE_FORMS}")
    size = int(number) * _SIZE_UNITS[unit]
    if size > MAX_SIZE:
        raise UnitError("size", text, "larger than 1024TiB")
    return size


def format_size(size: int) -> str:
    """`size` bytes in the largest unit that divides it exactly (`1MiB`, `1536B`)."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        factor = _SIZE_UNITS[unit]
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def plural(n: int, noun: str) -> str:
    """`n` and the noun, plural unless n is 1: "1 service", "6 services"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
