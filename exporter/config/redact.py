"""Printable forms of configuration with secrets taken out: header values, URL passwords."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qsl, urlencode

from .model import Config, ServiceConfig

REDACTED = "***"
# user:password@ in the authority; works on malformed URLs too, so errors can use it.
_USERINFO = re.compile(r"(?P<head>^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*):[^/?#]*@")
_SECRET_PARAM = re.compile(r"pass|secret|token|key|auth", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`url` with the password (and secret-looking query values) replaced by `***`."""
    out = _USERINFO.sub(lambda m: f"{m.group('head')}:{REDACTED}@", url, count=1)
    base, sep, rest = out.partition("?")
    if not sep:
        return out
    query, hsep, fragment = rest.partition("#")
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_SECRET_PARAM.search(k) for k, _ in pairs):
        return out
    redacted = [(k, REDACTED if _SECRET_PARAM.search(k) else v) for k, v in pairs]
    return f"{base}?{urlencode(redacted, safe='*')}{hsep}{fragment}"


def public_service(svc: ServiceConfig) -> dict[str, Any]:
    """A JSON-ready dict of one service, header values and URL passwords redacted."""
    out: dict[str, Any] = {
        "name": svc.name,
        "type": svc.type,
        "interval": svc.interval,
        "timeout": svc.timeout,
        "degraded_latency": svc.degraded_latency,
        "failure_threshold": svc.failure_threshold,
        "success_threshold": svc.success_threshold,
        "critical": svc.critical,
        "labels": dict(svc.labels),
        "line": svc.line,
    }
    if svc.url is not None:
        out["url"] = redact_url(svc.url)
    if svc.address is not None:
        out["address"] = svc.address
    if svc.type == "http":
        out.update(
            method=svc.method,
            headers={name: REDACTED for name, _ in svc.headers},
            expect_status=list(svc.expect_status),
            body_format=svc.body_format,
            max_body=svc.max_body,
            follow_redirects=svc.follow_redirects,
            tls={"verify": svc.tls.verify, "ca_file": svc.tls.ca_file, "server_name": svc.tls.server_name},
        )
    if svc.type == "websocket":
        # A first message may carry a credential (a login frame): shown redacted.
        out.update(headers={name: REDACTED for name, _ in svc.headers},
                   send=REDACTED if svc.send is not None else None, expect=svc.expect)
    if svc.type in ("websocket", "grpc", "tls"):
        out["tls"] = {"verify": svc.tls.verify, "ca_file": svc.tls.ca_file,
                      "server_name": svc.tls.server_name}
        if svc.type == "grpc":
            out["tls"]["enabled"] = svc.tls.enabled
            out["grpc_service"] = svc.grpc_service
    if svc.type == "dns":
        out.update(server=svc.server, query_name=svc.query_name, query_type=svc.query_type,
                   transport=svc.transport, valid_rcodes=list(svc.valid_rcodes),
                   expect_answer=svc.expect_answer)
    if svc.type == "icmp":
        out.update(host=svc.host, count=svc.count)
    if svc.type == "push":
        out["max_silence"] = svc.max_silence
    if svc.type == "python":
        out["check"] = svc.check if svc.check else getattr(svc.check_fn, "__qualname__", "callable")
    out["conditions"] = [c.text for c in svc.conditions]
    return out


def redact_config(config: Config) -> dict[str, Any]:
    """A JSON-ready dict of the whole config that is safe to print or serve."""
    return {
        "source": config.source,
        "digest": config.digest,
        "defaults": asdict(config.defaults),
        "allowed_targets": list(config.allowed_targets),
        "services": [public_service(svc) for svc in config.services],
    }
