"""JSON's names for Python values, for error messages (ground floor: imports nothing)."""

from __future__ import annotations

from typing import Any


def json_type_name(value: Any) -> str:
    """JSON's name for the type of `value` (null, boolean, number, string, array, object)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
