"""The hash chain: RFC 8785 canonical JSON (JCS), event hashes, canonical times.

Hand-written because the value types that occur are few (objects, arrays, strings, finite
numbers, booleans, null) and the one PyPI implementation is unmaintained; the property
tests in tests/audit/test_chain.py check it against the RFC's examples and invariants.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from ..fields import MAX_DEPTH

GENESIS = bytes(32)
CHAIN_FIELDS = ("sequence", "event_id", "event_type", "timestamp", "received_at", "symbol",
                "actor", "data")
MAX_SAFE_INTEGER = 2**53 - 1



# The json module's string encoder (ensure_ascii off) escapes exactly as RFC 8785 says:
# the two-character forms for \b \t \n \f \r " \\, \u00xx (lower case) for the other
# controls, everything else literal.
_string = encode_basestring


def format_number(value: int | float) -> str:
    """ECMAScript Number.prototype.toString of a finite IEEE-754 double (RFC 8785 §3.2.2.3)."""
    if isinstance(value, int) and abs(value) <= MAX_SAFE_INTEGER:
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        raise ValueError("NaN and Infinity have no JSON form")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr gives the shortest digits that round-trip, as ECMAScript requires.
    mantissa, _, exp = repr(abs(value)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    n = len(whole.lstrip("0")) if whole != "0" else -(len(frac) - len(frac.lstrip("0")))
    n += int(exp) if exp else 0
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        text = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e >= 0 else "e-") + str(abs(e))
    return sign + text


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be")


class NotCanonical(ValueError):
    """Input the strict encoder refuses (strict mode only: checked again slowly for details)."""


def _encode(value: Any, out: list[str], depth: int = 0, strict: bool = False) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        if strict and "\x00" in value:
            raise NotCanonical("NUL")
        out.append(_string(value))
    elif isinstance(value, int):
        if strict and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise NotCanonical("integer beyond 2^53")
        out.append(format_number(value))
    elif isinstance(value, float):
        out.append(format_number(value))
    elif isinstance(value, dict):
        if strict and depth >= MAX_DEPTH:
            raise NotCanonical("too deep")
        out.append("{")
        first = True
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"object key {key!r} is not a string")
            if strict and "\x00" in key:
                raise NotCanonical("NUL")
        # Code point order equals UTF-16 order unless a key leaves the BMP.
        plain = all(key.isascii() for key in value)
        for key in sorted(value) if plain else sorted(value, key=_utf16_key):
            if not first:
                out.append(",")
            first = False
            out.append(_string(key))
            out.append(":")
            _encode(value[key], out, depth + 1, strict)
        out.append("}")
    elif isinstance(value, list | tuple):
        if strict and depth >= MAX_DEPTH:
            raise NotCanonical("too deep")
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, depth + 1, strict)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} has no canonical JSON form")


def canonical_checked(value: Any) -> bytes:
    """canonical() for input: also refuses NUL, integers beyond ±2^53 and nesting beyond 16
    (NotCanonical, TypeError, ValueError or UnicodeEncodeError: the caller explains)."""
    out: list[str] = []
    _encode(value, out, 0, True)
    return "".join(out).encode("utf-8")


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON of `value`, as UTF-8 bytes."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")


def format_time(value: datetime) -> str:
    """A time in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (the chain's and the API's form)."""
    if value.tzinfo is None:
        raise ValueError("time without an offset")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: str | None) -> str:
    return "null" if value is None else _string(value)


def link_hash(prev_hash: bytes, *, sequence: int, event_id: str, event_type: str,
              timestamp: str, received_at: str, symbol: str | None, actor: str | None,
              data_json: bytes) -> bytes:
    """SHA-256(prev_hash || JCS(chain fields)) with `data` already canonical.

    The envelope's keys are ASCII and fixed, so their canonical order is fixed too:
    building the text directly hashes the same bytes as canonical() of the whole object,
    while the free-form `data` is canonicalised only once per event.
    """
    head = (f'{{"actor":{_text(actor)},"data":').encode()
    tail = (f',"event_id":{_string(event_id)},"event_type":{_string(event_type)},'
            f'"received_at":{_string(received_at)},"sequence":{format_number(sequence)},'
            f'"symbol":{_text(symbol)},"timestamp":{_string(timestamp)}}}').encode()
    return hashlib.sha256(prev_hash + head + data_json + tail).digest()


def event_hash(prev_hash: bytes, event: dict[str, Any]) -> bytes:
    """SHA-256(prev_hash || JCS(event's chain fields))."""
    return link_hash(prev_hash, sequence=event["sequence"], event_id=event["event_id"],
                     event_type=event["event_type"], timestamp=event["timestamp"],
                     received_at=event["received_at"], symbol=event.get("symbol"),
                     actor=event.get("actor"), data_json=canonical(event.get("data")))


def client_digest(event_type: str, timestamp: str | None, symbol: str | None,
                  actor: str | None, data_json: bytes) -> bytes:
    """Digest of the client-supplied fields (JCS of {actor, data, event_type, symbol,
    timestamp}): what an idempotent retry must repeat exactly."""
    text = (f'{{"actor":{_text(actor)},"data":').encode() + data_json + (
        f',"event_type":{_string(event_type)},"symbol":{_text(symbol)},'
        f'"timestamp":{_text(timestamp)}}}').encode()
    return hashlib.sha256(text).digest()
