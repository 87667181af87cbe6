"""The latency record, described once (FIELDS, beside LatencyRecord in the monitor): its
fields drive the OpenAPI schema, the typed decoder of a single record's body, the inline
check of a batch's records, the field-by-field checks whose messages name what is wrong,
and the monitor's own check_record.

Two paths take a record. The usual one, a plain record, is decoded and checked in one
pass by msgspec from the same field list (`decode_single`, `well_formed`); anything
msgspec does not take (a metadata object, a null, an escape, a type or range error, a
duplicate key, NaN, deep nesting, a NUL) goes the strict way (`parse_json` and
`checked_record`), which refuses it with the same message as ever, or takes it.
"""

from __future__ import annotations

import re
from operator import attrgetter
from typing import Annotated, Any

import msgspec

from ..latency.guard import NAME_RE
from ..latency.monitor import FIELDS, Field, LatencyBatch
from ..latency.record import LatencyRecord
from .schemas import free_form
from .validation import (
    closed_object,
    get_bool,
    get_free_object,
    get_number,
    get_str,
)

NAMES = frozenset(f.name for f in FIELDS)
REQUIRED = tuple(f.name for f in FIELDS if f.required)
OPTIONAL = tuple(f.name for f in FIELDS if not f.required)
NAME_MAX = 64
NAME_SCHEMA = {"type": "string", "pattern": f"^{NAME_RE.pattern}$", "minLength": 1,
               "maxLength": NAME_MAX}


def openapi(metadata_pointer: str) -> dict[str, Any]:
    """The record's JSON schema for the OpenAPI document (optional fields may be null,
    which means absent)."""
    properties: dict[str, Any] = {}
    for f in FIELDS:
        if f.kind == "name":
            schema: dict[str, Any] = dict(NAME_SCHEMA)
            if not f.required:
                schema["type"] = ["string", "null"]
        elif f.kind == "number":
            schema = {"type": "number", "minimum": f.lo, "maximum": f.hi}
        elif f.kind == "bool":
            schema = {"type": ["boolean", "null"], "default": f.default}
        else:
            schema = free_form(metadata_pointer)
        if f.description:
            schema["description"] = f.description
        properties[f.name] = schema
    return {"type": "object", "required": list(REQUIRED), "additionalProperties": False,
            "properties": properties}


def checked_record(value: Any, where: str) -> LatencyRecord:
    """Field by field, naming the first thing wrong (ApiError 422)."""
    rec = closed_object(value, where, required=REQUIRED, optional=OPTIONAL)
    got: dict[str, Any] = {}
    for f in FIELDS:
        if f.kind == "name":
            got[f.name] = get_str(rec, f.name, where, max_len=NAME_MAX, pattern=NAME_RE,
                                  required=f.required)
        elif f.kind == "number":
            got[f.name] = get_number(rec, f.name, where, lo=f.lo, hi=f.hi, required=f.required)
        elif f.kind == "bool":
            got[f.name] = get_bool(rec, f.name, where, f.default)
        else:  # checked for shape and size; the window keeps numbers only
            get_free_object(rec, f.name, where)
    return LatencyRecord(got["service"], got["operation"], got["latency_ms"], got["success"],
                         got["trace_id"])


# The typed decoder, built from FIELDS. Free-form fields are left out on purpose: a record
# carrying one takes the strict path, whose size and depth checks they need. msgspec's
# patterns are searched, not matched: anchored with \A and \Z (not $, which a newline
# before the end would satisfy).
_NAME = msgspec.Meta(pattern=rf"\A{NAME_RE.pattern}\Z", min_length=1, max_length=NAME_MAX)


def _annotation(f: Field, name: msgspec.Meta = _NAME) -> Any:
    if f.kind == "name":
        kind: Any = Annotated[str, name]
    elif f.kind == "number":
        kind = Annotated[float, msgspec.Meta(ge=f.lo, le=f.hi)]
    else:
        kind = bool
    return kind if f.required else kind | msgspec.UnsetType


def _typed_struct(title: str, name: msgspec.Meta) -> Any:
    return msgspec.defstruct(
        title,
        [(f.name, _annotation(f, name)) if f.required
         else (f.name, _annotation(f, name), msgspec.UNSET)
         for f in FIELDS if f.kind != "free"],
        forbid_unknown_fields=True,
        array_like=False,
    )


_Typed = _typed_struct("TypedLatencyRecord", _NAME)
_DECODER = msgspec.json.Decoder(_Typed)
_STRINGS = tuple(f.name for f in FIELDS if f.kind == "name")
_PLAIN = tuple(f.name for f in FIELDS if f.kind != "free")


def _record(typed: Any) -> LatencyRecord:
    success = typed.success
    trace_id = typed.trace_id
    return LatencyRecord(
        typed.service, typed.operation, float(typed.latency_ms),
        True if success is msgspec.UNSET else success,
        None if trace_id is msgspec.UNSET else trace_id,
    )


def _quotes(typed: Any) -> int:
    """The quotes a plain record's JSON holds: two per key, two per string value."""
    quotes = 0
    for name in _PLAIN:
        if getattr(typed, name) is not msgspec.UNSET:
            quotes += 4 if name in _STRINGS else 2
    return quotes


# A batch's names are checked for length by msgspec and for their characters afterwards,
# all of them in one regular expression over their concatenation: msgspec's pattern search
# per string cost three quarters of a batch's decoding.
_LENGTH_ONLY = msgspec.Meta(min_length=1, max_length=NAME_MAX)
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.:-]*")  # NAME_RE's characters (a test holds them equal)
_BatchRecord = _typed_struct("TypedBatchRecord", _LENGTH_ONLY)
_Batch = msgspec.defstruct("TypedLatencyBatch", [("records", list[_BatchRecord])],
                           forbid_unknown_fields=True)
_BATCH_DECODER = msgspec.json.Decoder(_Batch)
_COLUMNS = tuple(attrgetter(f.name) for f in FIELDS if f.kind != "free")
_QUOTES = tuple(4 if f.kind == "name" else 2 for f in FIELDS if f.kind != "free")
_DEFAULTS = tuple(f.default for f in FIELDS if f.kind != "free")


def _typed(decoder: msgspec.json.Decoder, raw: bytes) -> Any:
    """What `decoder` makes of a body without escapes, or None."""
    if b"\\" in raw:
        return None
    try:
        return decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def decode_batch(raw: bytes, most: int) -> LatencyBatch | None:
    """`{"records": [...]}` of at most `most` plain records, decoded and checked in one
    pass into the monitor's columns; None for the strict path (same quote count as
    `decode_single`)."""
    typed = _typed(_BATCH_DECODER, raw)
    if typed is None or len(typed.records) > most:
        return None
    records = typed.records
    columns = [list(map(get, records)) for get in _COLUMNS]
    quotes = 2
    for index, column in enumerate(columns):
        unset = column.count(msgspec.UNSET)
        quotes += _QUOTES[index] * (len(records) - unset)
        if unset:
            default = _DEFAULTS[index]
            columns[index] = [default if v is msgspec.UNSET else v for v in column]
    if raw.count(b'"') != quotes:
        return None
    services, operations, latencies, successes, trace_ids = columns
    names = "".join(set(services)) + "".join(set(operations))
    traced = [t for t in trace_ids if t is not None] if None in trace_ids else trace_ids
    if _NAME_CHARS.fullmatch(names + "".join(traced)) is None:
        return None
    return LatencyBatch(services, operations, latencies, successes, trace_ids)


def decode_single(raw: bytes) -> LatencyRecord | None:
    """A plain record decoded and checked in one pass, or None for the strict path.

    msgspec keeps the last of two equal keys; the strict parser refuses them. Every string
    a plain record may hold is a name (no quote, no backslash), so the body holds exactly
    two quotes per key and per string value: any other count is a repeated key (or an
    escape), and goes the strict way.
    """
    typed = _typed(_DECODER, raw)
    if typed is None or raw.count(b'"') != _quotes(typed):
        return None
    return _record(typed)


def well_formed(value: Any) -> LatencyRecord | None:
    """An already-parsed plain record checked in one pass, or None for the field checks."""
    if type(value) is not dict or not value.keys() <= NAMES or "metadata" in value:
        return None
    try:
        typed = msgspec.convert(value, _Typed, strict=True)
    except msgspec.ValidationError:
        return None
    return _record(typed)
