"""What one HTTP probe timed: a hop per request (a redirect adds one), each phase named
the way blackbox_exporter names them (resolve, connect, tls, processing, transfer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter

USER_AGENT = "usdcop-exporter"


@dataclass
class Hop:
    """Timestamps (perf_counter) of one request of a probe; a redirect adds a hop."""

    start: float
    dns_start: float | None = None
    dns_end: float | None = None
    conn_start: float | None = None
    conn_end: float | None = None
    tcp_done: float | None = None
    tls_done: float | None = None
    headers: float | None = None
    first_byte: float | None = None  # when the answer's first byte arrived (kernel stamp where read)
    cert_expiry: float | None = None


@dataclass
class Timeline:
    """Everything one HTTP probe timed, filled in by the prober as each step ends."""

    start: float = field(default_factory=perf_counter)
    hops: list[Hop] = field(default_factory=list)
    body_done: float | None = None
    status: int | None = None  # HTTP status of the final response, once it arrived

    def phases(self) -> dict[str, float]:
        """Seconds per phase, summed over redirects as blackbox_exporter does: processing
        ends at the answer's first byte when it was seen, else at its headers."""
        out = dict.fromkeys(("resolve", "connect", "tls", "processing", "transfer"), 0.0)
        for hop in self.hops:
            resolve = _span(hop.dns_start, hop.dns_end)
            tls = _span(hop.tcp_done, hop.tls_done)
            out["resolve"] += resolve
            out["tls"] += tls
            out["connect"] += max(0.0, _span(hop.conn_start, hop.conn_end) - resolve - tls)
            out["processing"] += _span(hop.conn_end, hop.first_byte or hop.headers)
        last = self.hops[-1] if self.hops else None
        answered = last.first_byte or last.headers if last is not None else None
        if answered is not None and self.body_done is not None:
            out["transfer"] = max(0.0, self.body_done - answered)
        return out

    def cert_expiry(self) -> float | None:
        """The earliest certificate expiry seen over all hops."""
        seen = [h.cert_expiry for h in self.hops if h.cert_expiry is not None]
        return min(seen) if seen else None


def _span(a: float | None, b: float | None) -> float:
    return max(0.0, b - a) if a is not None and b is not None else 0.0
