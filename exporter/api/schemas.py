"""OpenAPI schema pieces shared by the feature routes' documents (cache, latency, desk)."""

from __future__ import annotations

from typing import Any

# Anything a JSON string may hold except NUL, which the body parser refuses (400).
NO_NUL = "^[^\\x00]*$"
ERROR = {"$ref": "#/components/schemas/Error"}


def reply(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A JSON response object."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def refusal(description: str) -> dict[str, Any]:
    """An error response object (the one error shape)."""
    return reply(ERROR, description)


def closed(**properties: Any) -> dict[str, Any]:
    """An object with exactly these properties, all required."""
    return {"type": "object", "additionalProperties": False, "required": list(properties),
            "properties": properties}


def closed_optional(required: tuple[str, ...], **properties: Any) -> dict[str, Any]:
    """An object with at most these properties, `required` among them."""
    return {"type": "object", "additionalProperties": False, "required": list(required),
            "properties": properties}


def body_pointer(path: str, method: str = "post") -> str:
    """JSON pointer to an operation's JSON request body schema in the document."""
    escaped = path.replace("~", "~0").replace("/", "~1")
    return f"#/paths/{escaped}/{method}/requestBody/content/application~1json/schema"


def free_form(pointer: str) -> dict[str, Any]:
    """A free-form object (or null) as the body parser takes it: any JSON without NUL.

    `pointer` is where this schema sits in the document: the nested values refer back to its
    `$defs`, since the document has no shared component for them.
    """
    value = {"$ref": f"{pointer}/$defs/value"}
    names = {"pattern": NO_NUL}
    return {
        "type": ["object", "null"],
        "description": "free-form JSON object, at most 64 KiB and 16 levels deep",
        "propertyNames": names,
        "additionalProperties": value,
        "$defs": {"value": {"anyOf": [
            {"type": ["number", "boolean", "null"]},
            {"type": "string", "pattern": NO_NUL},
            {"type": "array", "items": value},
            {"type": "object", "propertyNames": names, "additionalProperties": value},
        ]}},
    }
