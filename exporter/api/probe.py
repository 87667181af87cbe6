"""GET /probe?service=NAME: a fresh probe answered with blackbox_exporter's metric names."""

from __future__ import annotations

import math

from aiohttp import web

from ..health.checker import HealthChecker
from ..health.result import PHASES, ProbeResult
from ..health.state import STATUSES, ServiceState
from .errors import bad_request, not_found
from .health import CHECKER
from .validation import check_query

SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
TIMEOUT_OFFSET = 0.5  # leave Prometheus time to receive the answer, as blackbox_exporter does


def _fmt(value: float) -> str:
    return repr(float(value))


def render_probe(name: str, result: ProbeResult, observed: str) -> str:
    """The text exposition of one probe's result."""
    out = [
        "# HELP probe_success Displays whether or not the probe was a success",
        "# TYPE probe_success gauge",
        f"probe_success {1 if result.success else 0}",
        "# HELP probe_duration_seconds Returns how long the probe took to complete in seconds",
        "# TYPE probe_duration_seconds gauge",
        f"probe_duration_seconds {_fmt(result.duration_s)}",
    ]
    if result.phases:
        out += [
            "# HELP probe_http_duration_seconds Duration of http request by phase, summed over all redirects",
            "# TYPE probe_http_duration_seconds gauge",
        ]
        out += [
            f'probe_http_duration_seconds{{phase="{phase}"}} {_fmt(result.phases[phase])}'
            for phase in PHASES if phase in result.phases
        ]
        if "resolve" in result.phases:
            out += [
                "# HELP probe_dns_lookup_time_seconds Returns the time taken for probe dns lookup in seconds",
                "# TYPE probe_dns_lookup_time_seconds gauge",
                f"probe_dns_lookup_time_seconds {_fmt(result.phases['resolve'])}",
            ]
    if result.http_status is not None:
        out += [
            "# HELP probe_http_status_code Response HTTP status code",
            "# TYPE probe_http_status_code gauge",
            f"probe_http_status_code {result.http_status}",
        ]
    if result.tls_expiry is not None:
        out += [
            "# HELP probe_ssl_earliest_cert_expiry Returns last SSL chain expiry in unixtime",
            "# TYPE probe_ssl_earliest_cert_expiry gauge",
            f"probe_ssl_earliest_cert_expiry {_fmt(result.tls_expiry)}",
        ]
    out += [
        "# HELP usdcop_probe_status Status this probe alone indicates (one-hot).",
        "# TYPE usdcop_probe_status gauge",
    ]
    out += [
        f'usdcop_probe_status{{status="{st}"}} {1 if st == observed else 0}'
        for st in STATUSES if st != "unknown"
    ]
    return "\n".join(out) + "\n"


async def get_probe(request: web.Request) -> web.Response:
    """GET /probe?service=NAME (any shard; never changes the service's recorded state)."""
    query = check_query(request, ("service",))
    name = query.get("service")
    if not name:
        raise bad_request("query parameter 'service' is required", "service")
    checker: HealthChecker = request.app[CHECKER]
    checker.sync()
    service = checker.registry.get(name)
    if service is None:
        raise not_found(f"no service named {name[:64]!r} is registered", "service")
    timeout = None
    header = request.headers.get(SCRAPE_TIMEOUT_HEADER)
    if header:
        try:
            seconds = float(header)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or seconds <= 0:
            raise bad_request(f"{SCRAPE_TIMEOUT_HEADER} must be a positive number of seconds")
        timeout = max(0.1, seconds - TIMEOUT_OFFSET)
    result = await checker.probe_once(service, timeout)
    observed = ServiceState(service).observed_status(result)
    return web.Response(
        text=render_probe(name, result, observed),
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )
