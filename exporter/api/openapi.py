"""The OpenAPI 3 document, generated from the route table so it cannot drift from it."""

from __future__ import annotations

from typing import Any

from .. import __version__
from .routes import Route

_ERROR = {
    "type": "object",
    "required": ["error", "detail", "field"],
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "string"},
        "field": {"type": ["string", "null"]},
    },
}


def build_openapi(routes: list[Route]) -> dict[str, Any]:
    """An OpenAPI 3.1 document describing every route, its auth level and its inputs."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        spec = dict(route.spec or {})
        operation: dict[str, Any] = {
            "summary": route.summary,
            "x-auth-level": route.level,
            "responses": spec.pop("responses", None) or {
                "200": {"description": "OK"},
                "default": {"description": "Error",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        }
        if route.level != "public":
            operation["security"] = [{"bearer": []}, {}] if route.level == "read" else [{"bearer": []}]
        parameters = spec.pop("parameters", None)
        if parameters:
            operation["parameters"] = parameters
        body = spec.pop("requestBody", None)
        if body:
            schema = body if body.get("type") or "$ref" in body or "oneOf" in body else {
                "type": "object", "properties": body, "additionalProperties": False}
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema}},
            }
        operation.update(spec)
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "usdcop-exporter", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR},
        },
    }
