"""usdcop_http_requests_total and usdcop_http_request_duration_seconds for the API."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from .keys import CORE_METRICS

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route_label(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "other"  # unmatched paths stay one bounded label
    return info.route.resource.canonical


@web.middleware
async def http_metrics_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Count and time every request by route template, method and status code."""
    start = time.perf_counter()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except web.HTTPException as exc:
        code = exc.status
        raise
    except asyncio.CancelledError:
        code = 499  # the client went away before the answer (nginx's code); not our fault
        raise
    finally:
        metrics = request.app.get(CORE_METRICS)
        if metrics is not None:
            method = request.method if request.method in _METHODS else "other"
            labels = (_route_label(request), method, code)
            children = metrics.http_children.get(labels)
            if children is None:  # labels() validates and locks: once per label set, not per request
                text = (labels[0], method, str(code))
                children = (metrics.http_requests.labels(*text), metrics.http_duration.labels(*text))
                metrics.http_children[labels] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - start)
