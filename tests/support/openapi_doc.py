"""Reading the sidecar's OpenAPI document in tests."""

from __future__ import annotations


def query_schemas(operation: dict) -> dict:
    """name → schema of each query parameter, also inside an exploded form object's branches."""
    out = {}
    for param in operation["parameters"]:
        schema = param["schema"]
        if param.get("explode") and param.get("style", "form") == "form":
            for branch in schema.get("oneOf", [schema]):
                out.update(branch.get("properties", {}))
        else:
            out[param["name"]] = schema
    return out
