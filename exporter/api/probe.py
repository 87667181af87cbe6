"""GET /probe?service=NAME: a fresh probe answered with blackbox_exporter's metric names.

With `debug=true` the answer is the probe's own log lines (resolve, connect, each phase,
the decision and its reason), then the metrics it would have returned, as blackbox_exporter
does. Probers write those lines through `ProbeContext.note`; none holds a secret.
"""

from __future__ import annotations

import math
from time import perf_counter

from aiohttp import web

from ..health.checker import HealthChecker
from ..health.result import PHASES, ProbeResult
from ..health.state import STATUSES, ServiceState
from ..samples import format_sample
from .blackbox import FAMILIES
from .errors import bad_request, not_found
from .keys import CHECKER
from .validation import check_query

SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
TIMEOUT_OFFSET = 0.5  # leave Prometheus time to receive the answer, as blackbox_exporter does


def render_probe(name: str, result: ProbeResult, observed: str, kind: str = "http") -> str:
    """The text exposition of one probe's result (`kind`: the service's type)."""
    out = [
        "# HELP probe_success Displays whether or not the probe was a success",
        "# TYPE probe_success gauge",
        f"probe_success {format_sample(1 if result.success else 0)}",
        "# HELP probe_duration_seconds Returns how long the probe took to complete in seconds",
        "# TYPE probe_duration_seconds gauge",
        f"probe_duration_seconds {format_sample(result.duration_s)}",
    ]
    typed = FAMILIES.get(kind)
    if typed is not None:
        out += typed(result)
    elif result.phases:
        out += [
            "# HELP probe_http_duration_seconds Duration of http request by phase, summed over all redirects",
            "# TYPE probe_http_duration_seconds gauge",
        ]
        out += [
            f'probe_http_duration_seconds{{phase="{phase}"}} {format_sample(result.phases[phase])}'
            for phase in PHASES if phase in result.phases
        ]
        if "resolve" in result.phases:
            out += [
                "# HELP probe_dns_lookup_time_seconds Returns the time taken for probe dns lookup in seconds",
                "# TYPE probe_dns_lookup_time_seconds gauge",
                f"probe_dns_lookup_time_seconds {format_sample(result.phases['resolve'])}",
            ]
    if typed is None and result.http_status is not None:
        out += [
            "# HELP probe_http_status_code Response HTTP status code",
            "# TYPE probe_http_status_code gauge",
            f"probe_http_status_code {format_sample(result.http_status)}",
        ]
    if typed is None and result.tls_expiry is not None:
        out += [
            "# HELP probe_ssl_earliest_cert_expiry Returns last SSL chain expiry in unixtime",
            "# TYPE probe_ssl_earliest_cert_expiry gauge",
            f"probe_ssl_earliest_cert_expiry {format_sample(result.tls_expiry)}",
        ]
    out += [
        "# HELP usdcop_probe_status Status this probe alone indicates (one-hot).",
        "# TYPE usdcop_probe_status gauge",
    ]
    out += [
        f'usdcop_probe_status{{status="{st}"}} {format_sample(1 if st == observed else 0)}'
        for st in STATUSES if st != "unknown"
    ]
    return "\n".join(out) + "\n"


async def get_probe(request: web.Request) -> web.Response:
    """GET /probe?service=NAME (any shard; never changes the service's recorded state)."""
    query = check_query(request, ("service", "debug"))
    name = query.get("service")
    if not name:
        raise bad_request("query parameter 'service' is required", "service")
    debug = query.get("debug", "false")
    if debug not in ("true", "false"):
        raise bad_request("query parameter 'debug' must be true or false", "debug")
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
    lines: list[str] = []
    trace = None
    if debug == "true":
        began = perf_counter()

        def trace(line: str) -> None:
            lines.append(f"{perf_counter() - began:9.6f}s {line}")

        limit = service.timeout if timeout is None else min(timeout, service.timeout)
        trace(f"probing service {name} (type {service.type}, timeout {limit:g}s)")
    result = await checker.probe_once(service, timeout, trace)
    observed = ServiceState(service).observed_status(result)
    text = render_probe(name, result, observed, service.type)
    if trace is not None:
        if result.phases:
            trace("phases: " + ", ".join(f"{k} {v:.6f}s" for k, v in result.phases.items()))
        if result.success:
            trace(f"decision: success in {result.duration_s:.6f}s, status {observed}")
        else:
            trace(f"decision: failure, reason {result.reason}: {result.message or ''}".rstrip(": "))
        text = ("Logs for the probe:\n" + "\n".join(lines)
                + "\n\nMetrics that would have been returned:\n" + text)
    return web.Response(
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )
