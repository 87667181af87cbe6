"""Health response bodies: detect the format, read the status word, keep the details.

Formats (docs/probes.md): the native health format (`status` healthy/degraded/unhealthy,
`details`, `metadata`), the IETF draft (`status` pass/warn/fail, aliases ok/up and
error/down, `checks`), Spring Boot actuator (`status` UP/DOWN/OUT_OF_SERVICE/UNKNOWN,
`components`), any other JSON, plain text and the empty body.

Status words match case-insensitively ("Pass", "up" and "UP" are the same word); any
other word, or a `status` that is not a string, makes the body `bad_body`.
"""

from __future__ import annotations

import codecs
import json
import math
from dataclasses import dataclass, field
from typing import Any

# Formats a body can be detected as; `auto` and `none` are configuration-only.
DETECTED_FORMATS = ("seed", "ietf", "spring", "json", "text", "empty")

SEED_WORDS = {"healthy": "healthy", "degraded": "degraded", "unhealthy": "unhealthy"}
IETF_WORDS = {
    "pass": "healthy",
    "ok": "healthy",
    "up": "healthy",
    "warn": "degraded",
    "fail": "unhealthy",
    "error": "unhealthy",
    "down": "unhealthy",
}
# UNKNOWN says nothing: HTTP status and latency decide.
SPRING_WORDS = {"up": "healthy", "down": "unhealthy", "out_of_service": "unhealthy", "unknown": None}
WORDS = {"seed": SEED_WORDS, "ietf": IETF_WORDS, "spring": SPRING_WORDS}

# The health format's `details` keys, the only ones kept (they become the reported_* gauges).
DETAIL_KEYS = ("uptime", "requests_per_minute", "error_rate", "memory_usage_mb")


@dataclass(frozen=True)
class Body:
    """A response body as understood: its format, claim, details and value for conditions."""

    format: str  # one of DETECTED_FORMATS
    value: Any  # parsed JSON, else the decoded text ("" when empty)
    reported: str | None = None  # healthy | degraded | unhealthy | None
    details: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    error: str | None = None  # set: the body is unusable (reason bad_body)


def is_json_type(content_type: str | None) -> bool:
    """True for application/json, application/health+json and other `+json` types."""
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


def _charset(content_type: str | None) -> str:
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            name = value.strip().strip('"')
            try:
                return codecs.lookup(name).name
            except LookupError:
                break
    return "utf-8"


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; accepting them would let them reach the gauges.
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    """Strict JSON (no NaN/Infinity); raises ValueError with a short reason."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except UnicodeDecodeError:
        raise ValueError("body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        raise ValueError(f"invalid JSON: {str(exc)[:100]}") from None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _seed_details(doc: dict[str, Any]) -> dict[str, float]:
    details = doc.get("details")
    if not isinstance(details, dict):
        return {}
    out = {}
    for key in DETAIL_KEYS:
        number = _number(details.get(key))
        if number is not None:
            out[key] = number
    return out


def _ietf_details(doc: dict[str, Any]) -> dict[str, float]:
    # The draft's well-known "uptime" check carries seconds in observedValue.
    checks = doc.get("checks")
    if not isinstance(checks, dict) or not isinstance(checks.get("uptime"), list):
        return {}
    for item in checks["uptime"]:
        if isinstance(item, dict) and item.get("observedUnit") in (None, "s"):
            number = _number(item.get("observedValue"))
            if number is not None:
                return {"uptime": number}
    return {}


def _detect(doc: dict[str, Any], word: str) -> str | None:
    lower = word.lower()
    if lower in SEED_WORDS:
        return "seed"
    if lower in ("out_of_service", "unknown"):
        return "spring"
    if lower in ("up", "down"):
        # Both formats know UP/DOWN with the same meaning; the shape names the format.
        if "checks" in doc:
            return "ietf"
        if "components" in doc or word.isupper():
            return "spring"
        return "ietf"
    if lower in IETF_WORDS:
        return "ietf"
    return None


def _structured(doc: Any, value: Any, fmt: str | None) -> Body:
    """A JSON body that must (fmt given) or may (fmt None) carry a status word."""
    expected = f"expected {fmt} health format" if fmt else "health body"
    if not isinstance(doc, dict) or "status" not in doc:
        if fmt:
            return Body(fmt, value, error=f"{expected}: no 'status' field")
        return Body("json", value)
    word = doc["status"]
    if not isinstance(word, str):
        return Body(fmt or "json", value, error=f"{expected}: 'status' is not a string")
    found = fmt or _detect(doc, word)
    if found is None or word.lower() not in WORDS[found]:
        shown = word if len(word) <= 40 else word[:40] + "..."
        return Body(found or "json", value, error=f"{expected}: unknown status word {shown!r}")
    reported = WORDS[found][word.lower()]
    if found == "seed":
        meta = doc.get("metadata")
        return Body(found, value, reported, _seed_details(doc), meta if isinstance(meta, dict) else None)
    rest = {k: v for k, v in doc.items() if k != "status"} or None
    details = _ietf_details(doc) if found == "ietf" else {}
    return Body(found, value, reported, details, rest)


def interpret(raw: bytes, content_type: str | None = None, body_format: str = "auto") -> Body:
    """Understand a body read from a service; `body_format` is auto|seed|ietf|spring|text."""
    if body_format not in ("auto", "seed", "ietf", "spring", "text"):
        raise ValueError(f"body_format {body_format!r} is not one a body can be read as")
    text = raw.decode(_charset(content_type), errors="replace")
    if body_format == "text":
        # Any body is fine; conditions still see JSON when it is JSON.
        try:
            return Body("text", parse_json(raw) if raw.strip() else text)
        except ValueError:
            return Body("text", text)
    if not raw.strip():
        if body_format == "auto":
            return Body("empty", "")
        return Body(body_format, "", error=f"expected {body_format} health format: empty body")
    try:
        doc = parse_json(raw)
    except ValueError as exc:
        if body_format != "auto":
            return Body(body_format, text, error=f"expected {body_format} health format: {exc}")
        if is_json_type(content_type):
            return Body("json", text, error=f"JSON content type but {exc}")
        return Body("text", text)
    return _structured(doc, doc, None if body_format == "auto" else body_format)
