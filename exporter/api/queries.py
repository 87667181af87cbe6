"""Query-string rules the GET routes share: the `type` a route answers, and no empty value."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from .errors import bad_request


def query_type(request: web.Request, types: tuple[str, ...], default: str) -> str:
    """The `type` parameter, one of `types` (`default` when left out); 400 otherwise."""
    kind = request.query.get("type", default)
    if kind not in types:
        raise bad_request(f"type must be one of {', '.join(types)}, got {kind[:40]!r}", "type")
    return kind


def refuse_empty(query: Mapping[str, str]) -> Mapping[str, str]:
    """Refuse a parameter given empty: `?symbol=` is a mistake, not a request for everything."""
    for key, value in query.items():
        if value == "":
            raise bad_request(f"query parameter {key!r} is empty; leave it out or give a value", key)
    return query
