"""The OpenAPI 3 document, generated from the route table so it cannot drift from it.

Each Route may carry OpenAPI operation fields in `spec` (parameters, requestBody as a
schema or as a map of closed-object properties, responses). The generator adds what every
route shares: security by auth level, the JSON error answers a route can give (400 for
malformed input, 401/403 by level, 413/415/422 for bodies, 429 for the rate limit, 503),
and, for the core routes, full response schemas. A test checks the document against the
router and against live answers, and runs schemathesis against a live sidecar.
"""

from __future__ import annotations

from typing import Any

from .._version import __version__
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
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_HEALTH = {
    "type": "object",
    "required": ["service", "status", "latency_ms", "last_check", "details", "metadata"],
    "properties": {
        "service": {"type": "string"},
        "status": {"type": "string", "enum": ["healthy", "degraded", "unhealthy", "unknown"]},
        "latency_ms": _NUMBER_OR_NULL,
        "last_check": {"type": ["string", "null"], "format": "date-time"},
        "details": {
            "type": "object",
            "required": ["uptime", "requests_per_minute", "error_rate", "memory_usage_mb"],
            "properties": {k: _NUMBER_OR_NULL for k in
                           ("uptime", "requests_per_minute", "error_rate", "memory_usage_mb")},
        },
        "metadata": {
            "type": "object",
            "required": ["probe", "reported"],
            "properties": {
                "probe": {"type": "object", "properties": {"reason": {"type": ["string", "null"]}}},
                "reported": {"type": ["object", "null"]},
            },
        },
    },
}
_COUNT = {"type": "integer", "minimum": 0}
_OVERVIEW = {
    "type": "object",
    "required": ["overall_status", "services", "summary", "timestamp", "shard"],
    "properties": {
        "overall_status": {"type": "string", "enum": ["healthy", "degraded", "unhealthy", "unknown"]},
        "services": {"type": "array", "items": {"$ref": "#/components/schemas/Health"}},
        "summary": {
            "type": "object",
            "required": ["total", "healthy", "degraded", "unhealthy", "unknown"],
            "properties": {k: _COUNT for k in ("total", "healthy", "degraded", "unhealthy", "unknown")},
        },
        "timestamp": {"type": "string", "format": "date-time"},
        "shard": {"type": "string", "pattern": r"^[0-9]+/[0-9]+$"},
    },
}
_NAMES = {"type": "array", "items": {"type": "string"}}
_RELOAD = {
    "type": "object",
    "required": ["status", "services", "added", "removed", "changed", "digest"],
    "properties": {"status": {"const": "reloaded"}, "services": _COUNT, "added": _NAMES,
                   "removed": _NAMES, "changed": _NAMES, "digest": {"type": ["string", "null"]}},
}
_READY = {
    "type": "object",
    "required": ["status", "components", "dependencies"],
    "properties": {
        "status": {"type": "string", "enum": ["ready", "starting"]},
        "components": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "dependencies": {"type": "object"},
    },
}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str) -> dict:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


# Full answers of the core routes; the feature routes describe their own in Route.spec.
CORE_RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/api/health/services"): {"200": _json({"$ref": "#/components/schemas/Overview"})},
    ("POST", "/api/health/services"): {
        "200": _json({"$ref": "#/components/schemas/Health"}, "the health format of the service"),
        "404": _json({"$ref": "#/components/schemas/Error"}, "no such service, or `not_in_shard`"),
    },
    ("POST", "/-/reload"): {
        "200": _json({"$ref": "#/components/schemas/Reload"}),
        "400": _json({"$ref": "#/components/schemas/Error"}, "the new file is invalid; the old one stays"),
    },
    ("GET", "/metrics"): {"200": {"description": "Prometheus text format, or OpenMetrics on request",
                                  "content": {"text/plain": {"schema": {"type": "string"}},
                                              "application/openmetrics-text": {"schema": {"type": "string"}}}}},
    ("GET", "/probe"): {"200": _text("blackbox_exporter-style metrics of one fresh probe"),
                        "404": _json({"$ref": "#/components/schemas/Error"}, "no such service")},
    ("GET", "/healthz"): {"200": _json({"type": "object", "required": ["status"],
                                        "properties": {"status": {"const": "ok"}}})},
    ("GET", "/readyz"): {"200": _json({"$ref": "#/components/schemas/Ready"}),
                         "503": _json({"$ref": "#/components/schemas/Ready"}, "still starting")},
    ("GET", "/api/openapi.json"): {"200": _json({"type": "object", "required": ["openapi", "paths"]})},
}
CORE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/health/services"): {
        "type": "object", "required": ["service"], "additionalProperties": False,
        "properties": {"service": {"type": "string", "minLength": 1, "maxLength": 64}},
    },
}
CORE_PARAMETERS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("GET", "/probe"): [{"name": "service", "in": "query", "required": True,
                         "description": "a service registered in services.yaml (never a URL)",
                         "schema": {"type": "string", "minLength": 1, "maxLength": 64}},
                        {"name": "debug", "in": "query", "required": False,
                         "description": "true: the probe's log lines, then its metrics",
                         "schema": {"type": "string", "enum": ["true", "false"]}}],
}
_SECURITY = {
    "read": [{}, {"bearer": []}, {"basic": []}],  # open unless basic-auth users are configured
    "write": [{"bearer": []}],
    "admin": [{"bearer": []}],
}


def _error(description: str) -> dict:
    return _json({"$ref": "#/components/schemas/Error"}, description)


def _errors(route: Route, has_input: bool, has_body: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if has_input:
        out["400"] = _error("malformed request: bad JSON, a bad or unknown query parameter")
    if route.level != "public":
        out["401"] = _error("credentials missing or wrong (WWW-Authenticate says which)")
        out["403"] = _error("these credentials may not use this route")
    if has_body:
        out["413"] = _error("body, batch or free-form object too large")
        out["415"] = _error("Content-Type is not application/json")
        out["422"] = _error("well-formed but invalid; `field` names what")
    if route.level != "public":
        out["429"] = _error("the rate limit of the web configuration, a connection cap, or too many "
                            "password checks queued (Retry-After)")
    out["431"] = _error("request headers too large")
    out["503"] = _error("a dependency is away, the spool is full, or the web configuration "
                        "cannot be used (Retry-After)")
    out["default"] = _error("error")
    return out


def _body_schema(body: dict) -> dict:
    if body.get("type") or "$ref" in body or "oneOf" in body or "anyOf" in body:
        return body
    return {"type": "object", "properties": body, "additionalProperties": False}


def build_openapi(routes: list[Route]) -> dict[str, Any]:
    """An OpenAPI 3.1 document describing every route, its auth level, inputs and answers."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        key = (route.method, route.path)
        spec = dict(route.spec or {})
        parameters = spec.pop("parameters", None)
        parameters = CORE_PARAMETERS.get(key, parameters)
        body = CORE_BODIES.get(key) or spec.pop("requestBody", None)
        spec.pop("requestBody", None)
        if body and "content" in body:  # already a full requestBody object
            request_body = body
        elif body:
            request_body = {"required": True, "content": {"application/json": {"schema": _body_schema(body)}}}
        else:
            request_body = None
        responses = _errors(route, bool(parameters or request_body), request_body is not None)
        responses.update(spec.pop("responses", None) or CORE_RESPONSES.get(key) or
                         {"200": _json({"type": "object"})})
        operation: dict[str, Any] = {
            "operationId": f"{route.method.lower()}{route.path.replace('/', '_').replace('-', '_')}",
            "summary": route.summary,
            "x-auth-level": route.level,
            "responses": dict(sorted(responses.items(), key=lambda kv: (kv[0] == "default", kv[0]))),
        }
        if route.level != "public":
            operation["security"] = _SECURITY[route.level]
        if parameters:
            operation["parameters"] = parameters
        if request_body:
            operation["requestBody"] = request_body
        operation.update(spec)
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "usdcop-exporter", "version": __version__,
                 "description": "No request field names a host or a URL: probes go only to "
                                "services configured in services.yaml."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "basic": {"type": "http", "scheme": "basic"}},
            "schemas": {"Error": _ERROR, "Health": _HEALTH, "Overview": _OVERVIEW,
                        "Reload": _RELOAD, "Ready": _READY},
        },
    }
