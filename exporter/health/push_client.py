"""report_push: a batch job or engine reports in to its sidecar's push check.

It goes where the latency forwarder goes: `EXPORTER_URL`, with `EXPORTER_API_TOKEN` (or
`EXPORTER_API_TOKEN_FILE`) as the bearer token. One synchronous POST, so a job can call it
as its last step without an event loop; a refusal or an unreachable sidecar raises
PushError saying which, never silently.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .._version import __version__
from ..config.errors import ConfigError
from .probes.push import PUSH_STATUSES

ROUTE = "/api/health/push"


class PushError(RuntimeError):
    """The report did not reach the sidecar, or the sidecar refused it."""


def _token(env: Mapping[str, str]) -> str | None:
    from ..latency.library import _secret

    return _secret(env, "EXPORTER_API_TOKEN")


def report_push(service: str, status: str = "healthy", latency_ms: float | None = None,
                message: str | None = None, *, url: str | None = None,
                token: str | None = None, timeout: float = 5.0,
                environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Report `service` (a push service of the sidecar) as `status`; returns its health.

    `url` and `token` default to EXPORTER_URL and EXPORTER_API_TOKEN(_FILE). ValueError for
    a bad argument, ConfigError when no sidecar URL is known, PushError when the sidecar
    cannot be reached or refuses the report (the message says its answer).
    """
    if status not in PUSH_STATUSES:
        raise ValueError(f"status must be one of {', '.join(PUSH_STATUSES)}, got {status!r}")
    env = os.environ if environ is None else environ
    url = url or env.get("EXPORTER_URL") or None
    if not url:
        raise ConfigError("set EXPORTER_URL to the sidecar's address (http://host:port)",
                          field="EXPORTER_URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.username:
        raise ConfigError("must be http(s)://host[:port][/path] without query or credentials",
                          field="EXPORTER_URL")
    token = token if token is not None else _token(env)
    body: dict[str, Any] = {"service": service, "status": status}
    if latency_ms is not None:
        body["latency_ms"] = latency_ms
    if message is not None:
        body["message"] = message
    headers = {"Content-Type": "application/json",
               "User-Agent": f"usdcop-exporter-push/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", parts.path.rstrip("/") + ROUTE, json.dumps(body).encode(), headers)
        response = conn.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise PushError(f"sidecar unreachable: {type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
    if response.status != 200:
        raise PushError(f"sidecar answered HTTP {response.status}: "
                        f"{data[:300].decode('utf-8', 'replace')}")
    return json.loads(data)
