"""Strict request parsing: JSON bodies, closed objects, typed fields, query parameters.

Every failure is an ApiError naming the field. Nothing here touches state, so a request
that fails validation changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from .. import fields
from ..fields import MAX_DEPTH, FieldError, join
from .encoding import decoder_for, too_large
from .errors import ApiError, bad_request, invalid

BODY_LIMIT = 1024 * 1024  # 1 MiB per request
BATCH_BODY_LIMIT = 8 * 1024 * 1024  # 8 MiB for batch routes
FREE_FORM_LIMIT = 64 * 1024  # features, metadata, audit data
MAX_STRING = 4096  # ordinary string fields
MAX_INT_DIGITS = 40  # refuse absurd integers before Python parses them
BODY_READ_TIMEOUT = 30.0  # seconds for a whole request body: a dripping client gets 408


class _DuplicateKey(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer with {len(text)} digits is too large")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def parse_json(raw: bytes) -> Any:
    """Parse bytes as strict JSON: UTF-8, no NaN/Infinity, no duplicate keys, bounded depth."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"body is not valid UTF-8 (byte {exc.start})") from None
    if "\x00" in text:
        raise bad_request("body contains a NUL character")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_constant=_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except _DuplicateKey as exc:
        raise bad_request(f"duplicate key {str(exc)!r} in JSON object", str(exc)) from None
    except RecursionError:
        raise bad_request(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise bad_request(f"malformed JSON: {exc}") from None
    # A NUL can only arrive escaped (a literal one was refused above); look for it only then.
    try:
        depth = fields.depth(value, nul="\\u0000" in text)
    except FieldError:
        raise bad_request("body contains a NUL character") from None
    if depth > MAX_DEPTH + 2:  # envelope + object + free-form payload
        raise bad_request(f"JSON nested deeper than {MAX_DEPTH} levels")
    # Likewise a lone surrogate (valid JSON, but no text: nothing can store or log it).
    if _SURROGATE_ESCAPE.search(text):
        _refuse_surrogates(value)
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _printable_path(path: str) -> str:
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


def _refuse_surrogates(value: Any) -> None:
    """422 naming the first string (key or value) holding a lone UTF-16 surrogate."""
    for item, path, _ in fields.walk(value, ""):
        if isinstance(item, dict):
            for key in item:
                if not fields.is_text(key):
                    where = _printable_path(join(path, key))
                    raise invalid(f"{where or 'body'} (a key) contains a lone UTF-16 surrogate",
                                  where)
        elif isinstance(item, str) and not fields.is_text(item):
            where = _printable_path(path)
            raise invalid(f"{where or 'body'} contains a lone UTF-16 surrogate", where or None)


async def read_json(request: web.Request, limit: int = BODY_LIMIT, *,
                    batch_key: str | None = None) -> Any:
    """Read and parse the request body. In order: 415 for a Content-Encoding other than
    identity or gzip, 413 for a body over the limit, 415 for a Content-Type other than
    JSON, 400 for a body that is not strict JSON.

    `limit` applies to the body as sent and, for gzip, again after decompression. With
    `batch_key`, only an object holding that key may use `limit`; any other body is held
    to BODY_LIMIT (decompressed size)."""
    raw = await read_body(request, limit)
    value = parse_json(raw)
    if batch_key is not None and len(raw) > BODY_LIMIT and not (
            isinstance(value, dict) and batch_key in value):
        raise ApiError(413, "payload_too_large",
                       f"request body over {BODY_LIMIT} bytes (only batches may be larger)")
    return value


async def read_body(request: web.Request, limit: int = BODY_LIMIT) -> bytes:
    """The raw JSON request body, decompressed: 415 for a Content-Encoding other than
    identity or gzip, 413 over `limit` (as sent, and again decompressed), 408 when it
    drips, 415 when it is not JSON, 400 when empty; `parse_json` takes it from there."""
    decoder = decoder_for(request.headers.get("Content-Encoding"), limit)
    length = request.content_length
    if length is not None and length > limit:
        raise too_large(limit)
    received = 0
    raw = bytearray()

    def take(chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)
        if received > limit:
            raise too_large(limit)
        raw.extend(decoder.feed(chunk) if decoder is not None else chunk)

    # A small body has usually arrived with the headers: take it without a timer or an
    # async iteration (the common case of every API call).
    if length:
        take(request.content.read_nowait(-1))
    if length is None or received < length:
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT):
                async for chunk in request.content.iter_chunked(65536):
                    take(chunk)
        except TimeoutError:
            raise ApiError(408, "request_timeout",
                           f"request body not received within {BODY_READ_TIMEOUT:g} s") from None
    if decoder is not None:
        decoder.finish()
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
    if not raw:
        raise bad_request("request body is empty")
    return bytes(raw)


def check_query(request: web.Request, allowed: Iterable[str]) -> Mapping[str, str]:
    """Refuse unknown and repeated query parameters; returns the query mapping."""
    allowed = set(allowed)
    seen: set[str] = set()
    for key, _ in request.query.items():  # items(): a repeated key shows each time
        if key not in allowed:
            raise bad_request(f"unknown query parameter {key!r}", key)
        if key in seen:
            raise bad_request(f"query parameter {key!r} given twice", key)
        seen.add(key)
    return request.query


def query_int(query: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within [lo, hi]."""
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        if len(text) > MAX_INT_DIGITS:
            raise ValueError
        value = int(text)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {text[:40]!r}", name) from None
    try:
        return fields.between(value, name, lo, hi)
    except FieldError as exc:
        raise bad_request(exc.sentence, name) from None


def query_float(query: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    """A finite number query parameter within [lo, hi]."""
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        if len(text) > 64:
            raise ValueError
        value = float(text)
    except ValueError:
        raise bad_request(f"{name} must be a number, got {text[:40]!r}", name) from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise bad_request(f"{name} must be between {lo:g} and {hi:g}", name)
    return value


def closed_object(
    value: Any, where: str, required: Iterable[str] = (), optional: Iterable[str] = ()
) -> dict[str, Any]:
    """Check `value` is an object with exactly the known keys (unknown → 422 naming it)."""
    if not isinstance(value, dict):
        raise invalid(f"{where or 'body'} must be a JSON object", where or None)
    required = tuple(required)
    key = fields.unknown_key(value, set(required) | set(optional))
    if key is not None:
        raise invalid(f"unknown field {key!r}", join(where, key))
    for key in required:
        if key not in value or value[key] is None:
            raise invalid(f"field {key!r} is required", join(where, key))
    return value


def field_path(where: str, key: str | int) -> str:
    """`records[3].service`-style paths for error messages."""
    return join(where, key)


def refused(exc: FieldError) -> ApiError:
    """The API's answer to a FieldError: 413 over a size bound, else 422, naming the field."""
    if exc.too_large:
        return ApiError(413, "payload_too_large", exc.sentence, exc.path or None)
    return invalid(exc.sentence, exc.path or None)


def _field(obj: dict, key: str, where: str, check: Any, **rules: Any) -> Any:
    try:
        return fields.get(obj, key, join(where, key), check, **rules)
    except FieldError as exc:
        if exc.message == fields.REQUIRED:
            raise invalid(f"field {key!r} is required", exc.path) from None
        raise refused(exc) from None


def get_str(obj: dict, key: str, where: str, *, max_len: int = MAX_STRING, pattern=None,
            required: bool = False) -> str | None:
    """A string field (None when absent and optional)."""
    return _field(obj, key, where, fields.string, required=required, max_len=max_len,
                  pattern=pattern)


def get_number(obj: dict, key: str, where: str, *, lo: float | None = None, hi: float | None = None,
               required: bool = False, lo_open: bool = False) -> float | None:
    """A finite number field (booleans are not numbers)."""
    return _field(obj, key, where, fields.number, required=required, lo=lo, hi=hi,
                  lo_open=lo_open)


def get_bool(obj: dict, key: str, where: str, default: bool) -> bool:
    """A boolean field."""
    value = _field(obj, key, where, fields.boolean)
    return default if value is None else value


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def get_free_object(obj: dict, key: str, where: str) -> dict | None:
    """A free-form JSON object bounded in size (64 KiB) and depth (16)."""
    return _field(obj, key, where, fields.free_object, limit=FREE_FORM_LIMIT, encode=_compact)
