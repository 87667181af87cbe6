"""Frozen configuration model of services.yaml (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

DNS_QUERY_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT")
DNS_TRANSPORTS = ("udp", "tcp")
BODY_FORMATS = ("auto", "seed", "ietf", "spring", "text", "none")
DURING = ("always", "session")  # when a service's state may raise alerts
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order


@dataclass(frozen=True)
class TLSConfig:
    """TLS options of a probe. `enabled` matters to grpc only (the other types decide TLS by
    their url's scheme, or always use it: type tls)."""

    verify: bool = True
    ca_file: str | None = None
    server_name: str | None = None
    enabled: bool = False


@dataclass(frozen=True)
class Condition:
    """One parsed condition: `[STATUS] == 200`, `[BODY].a.b[0] < 0.05` ..."""

    text: str  # the condition as written, for display
    subject: str  # STATUS | RESPONSE_TIME | BODY | CERTIFICATE_EXPIRATION
    path: tuple[str | int, ...]  # JSON path below [BODY]; empty otherwise
    op: str  # == != < <= > >=
    value: Any  # float (numbers and durations in seconds), str, bool or None


@dataclass(frozen=True)
class Defaults:
    """The `defaults:` block; every field has its built-in default here, and only here."""

    interval: float = 30.0
    timeout: float = 5.0
    degraded_latency: float = 1.0
    failure_threshold: int = 1
    success_threshold: int = 1
    critical: bool = True


@dataclass(frozen=True)
class ServiceConfig:
    """One service to probe. Durations are seconds, sizes bytes."""

    name: str
    type: str  # one of probe_types.PROBE_TYPES
    interval: float = Defaults.interval
    timeout: float = Defaults.timeout
    degraded_latency: float = Defaults.degraded_latency
    failure_threshold: int = Defaults.failure_threshold
    success_threshold: int = Defaults.success_threshold
    critical: bool = Defaults.critical
    url: str | None = None
    address: str | None = None  # tcp, grpc, tls: host:port
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    expect_status: tuple[str, ...] = ("2xx",)  # "200" or "2xx"
    body_format: str = "auto"
    max_body: int = 1024 * 1024
    follow_redirects: bool = False
    tls: TLSConfig = field(default_factory=TLSConfig)
    conditions: tuple[Condition, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    check: str | None = None  # python: "module:function"
    check_fn: Any = field(default=None, compare=False)  # python: a callable given directly
    send: str | None = None  # websocket: a text message sent once connected
    expect: str | None = None  # websocket: regex the first matching message must match
    server: str | None = None  # dns: host:port of the resolver asked
    query_name: str | None = None  # dns
    query_type: str = "A"  # dns: one of DNS_QUERY_TYPES
    transport: str = "udp"  # dns: udp or tcp
    valid_rcodes: tuple[str, ...] = ("NOERROR",)  # dns
    expect_answer: str | None = None  # dns: regex one answer RR (as text) must match
    host: str | None = None  # icmp: a name or an address
    count: int = 1  # icmp: echo requests per probe
    grpc_service: str = ""  # grpc: grpc.health.v1 service name; "" is the whole server
    max_silence: float | None = None  # push: seconds without a report before unhealthy
    during: str = "always"  # one of DURING: "session" keeps its state from alerting off-hours
    line: int | None = field(default=None, compare=False)  # where it was declared

    def status_expected(self, code: int) -> bool:
        """True when the HTTP status matches `expect_status` (codes or classes)."""
        for item in self.expect_status:
            if item.endswith("xx"):
                if code // 100 == int(item[0]):
                    return True
            elif int(item) == code:
                return True
        return False


@dataclass(frozen=True)
class RiskLimits:
    """The `desk.limits` block; None leaves a limit unwatched. Money in the account currency."""

    max_drawdown: float | None = None  # ratio of the peak, e.g. 0.10
    daily_loss: float | None = None  # loss since the session's open
    max_position: tuple[tuple[str, float], ...] = ()  # symbol (or "*") → largest quantity
    max_open_positions: int | None = None
    min_win_ratio: float | None = None
    min_trades: int = 20  # the win ratio is judged only from this many trades on


@dataclass(frozen=True)
class ReconciliationConfig:
    """The `desk.reconciliation` block: cadence and the windows of the checks."""

    interval: float = 60.0
    stale_position_after: float = 86400.0
    orphan_window: float = 86400.0


def _spot_week() -> tuple[tuple[tuple[int, int], ...], ...]:
    return (((480, 780),),) * 5 + ((), ())  # Monday to Friday 08:00-13:00


@dataclass(frozen=True)
class DeskConfig:
    """The `desk:` section: trading calendar, freshness, risk limits, reconciliation, clocks.

    `sessions` has one entry per weekday (Monday first), each a tuple of (start, end)
    minutes after local midnight, end at most 1440. Durations are seconds.
    """

    timezone: str = "America/Bogota"
    sessions: tuple[tuple[tuple[int, int], ...], ...] = field(default_factory=_spot_week)
    holidays: tuple[date, ...] = ()
    clock_tolerance: float = 2.0
    signal_cadence: tuple[tuple[str, float], ...] = ()  # symbol → expected seconds between signals
    financial_metrics_cadence: float | None = None
    overdue_factor: float = 3.0
    limits: RiskLimits = field(default_factory=RiskLimits)
    reconciliation: ReconciliationConfig = field(default_factory=ReconciliationConfig)
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Config:
    """A whole, validated services file."""

    services: tuple[ServiceConfig, ...] = ()
    defaults: Defaults = field(default_factory=Defaults)
    allowed_targets: tuple[str, ...] = ()
    source: str | None = None  # file path
    digest: str | None = None  # sha256 hex of the file's bytes
    desk: DeskConfig = field(default_factory=DeskConfig)

    def service(self, name: str) -> ServiceConfig | None:
        """The service called `name`, or None."""
        for svc in self.services:
            if svc.name == name:
                return svc
        return None
