"""The type-specific families of GET /probe, under blackbox_exporter's names where its
module of that kind has them (dns, icmp, grpc, tcp with TLS), and `usdcop_probe_*` where
it has none (WebSocket phases, ICMP loss)."""

from __future__ import annotations

from collections.abc import Callable

from ..health.result import ProbeResult
from ..samples import format_sample

GRPC_SERVING = ("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")


def _gauge(name: str, doc: str, value: float) -> list[str]:
    return [f"# HELP {name} {doc}", f"# TYPE {name} gauge", f"{name} {format_sample(value)}"]


def _labelled(name: str, doc: str, label: str, values: list[tuple[str, float]]) -> list[str]:
    out = [f"# HELP {name} {doc}", f"# TYPE {name} gauge"]
    out += [f'{name}{{{label}="{key}"}} {format_sample(value)}' for key, value in values]
    return out


def _phases(result: ProbeResult, name: str, doc: str, names: dict[str, str]) -> list[str]:
    values = [(shown, result.phases[phase]) for phase, shown in names.items()
              if phase in result.phases]
    return _labelled(name, doc, "phase", values) if values else []


def _lookup(result: ProbeResult) -> list[str]:
    if "resolve" not in result.phases:
        return []
    return _gauge("probe_dns_lookup_time_seconds",
                  "Returns the time taken for probe dns lookup in seconds", result.phases["resolve"])


def _expiry(result: ProbeResult) -> list[str]:
    if result.tls_expiry is None:
        return []
    return _gauge("probe_ssl_earliest_cert_expiry", "Returns last SSL chain expiry in unixtime",
                  result.tls_expiry)


def _tls_version(result: ProbeResult) -> list[str]:
    version = result.facts.get("tls_version")
    if not version:
        return []
    return _labelled("probe_tls_version_info", "Returns the TLS version used or NaN when unknown",
                     "version", [(version, 1.0)])


def websocket(result: ProbeResult) -> list[str]:
    """blackbox_exporter has no WebSocket module: its lookup and TLS names, our phases."""
    out = _lookup(result)
    out += _phases(result, "usdcop_probe_phase_duration_seconds", "Duration of the probe by phase",
                   {p: p for p in ("resolve", "connect", "tls", "handshake", "first_message")})
    if result.http_status is not None:
        out += _gauge("probe_http_status_code", "Response HTTP status code", result.http_status)
    return out + _expiry(result) + _tls_version(result)


def _known(facts: dict, table: tuple[tuple[str, str, str], ...]) -> list[str]:
    """A gauge for each (fact, name, doc) of `table` whose fact the probe found."""
    out: list[str] = []
    for key, name, doc in table:
        if key in facts:
            out += _gauge(name, doc, facts[key])
    return out


_DNS_FACTS = (
    ("answer_rrs", "probe_dns_answer_rrs",
     "Returns number of entries in the answer resource record list"),
    ("authority_rrs", "probe_dns_authority_rrs",
     "Returns number of entries in the authority resource record list"),
    ("additional_rrs", "probe_dns_additional_rrs",
     "Returns number of entries in the additional resource record list"),
    ("serial", "probe_dns_serial", "Returns the serial number of the zone"),
)
_ICMP_FACTS = (
    ("hop_limit", "probe_icmp_reply_hop_limit", "Replied packet hop limit (TTL for ipv4)"),
    ("ip_protocol", "probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6"),
    ("loss_ratio", "usdcop_probe_icmp_loss_ratio", "Share of echo requests left unanswered"),
)


def dns(result: ProbeResult) -> list[str]:
    """blackbox_exporter's dns module names."""
    out = _lookup(result)
    out += _phases(result, "probe_dns_duration_seconds", "Duration of DNS request by phase",
                   {"resolve": "resolve", "connect": "connect", "query": "request"})
    facts = result.facts
    out += _known(facts, _DNS_FACTS)
    out += _gauge("probe_dns_query_succeeded", "Displays whether or not the query was executed successfully",
                  1.0 if facts.get("query_succeeded") else 0.0)
    return out


def icmp(result: ProbeResult) -> list[str]:
    """blackbox_exporter's icmp module names, and the share of echo requests unanswered."""
    out = _lookup(result)
    out += _phases(result, "probe_icmp_duration_seconds", "Duration of icmp request by phase",
                   {"resolve": "resolve", "setup": "setup", "rtt": "rtt"})
    return out + _known(result.facts, _ICMP_FACTS)


def grpc(result: ProbeResult) -> list[str]:
    """blackbox_exporter's grpc module names."""
    out = _lookup(result)
    out += _phases(result, "probe_grpc_duration_seconds", "Duration of gRPC request by phase",
                   {"resolve": "resolve", "check": "check"})
    facts = result.facts
    serving = facts.get("serving_status")
    if serving is not None:
        out += _labelled("probe_grpc_healthcheck_response", "Response HealthCheck response",
                         "serving_status", [(s, 1.0 if s == serving else 0.0) for s in GRPC_SERVING])
    if "status_code" in facts:
        out += _gauge("probe_grpc_status_code", "Response gRPC status code", facts["status_code"])
    out += _gauge("probe_grpc_ssl", "Indicates if SSL was used for the connection",
                  1.0 if facts.get("ssl") else 0.0)
    return out + _expiry(result) + _tls_version(result)


def tls(result: ProbeResult) -> list[str]:
    """blackbox_exporter's tcp module with TLS: lookup, expiry, version."""
    out = _lookup(result)
    out += _phases(result, "usdcop_probe_phase_duration_seconds", "Duration of the probe by phase",
                   {"resolve": "resolve", "connect": "connect", "tls": "tls"})
    return out + _expiry(result) + _tls_version(result)


def push(result: ProbeResult) -> list[str]:
    """A push check has no blackbox_exporter counterpart and no phases."""
    return []


FAMILIES: dict[str, Callable[[ProbeResult], list[str]]] = {
    "websocket": websocket, "dns": dns, "icmp": icmp, "grpc": grpc, "tls": tls, "push": push,
}
