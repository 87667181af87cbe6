"""services.yaml: the frozen model, its loader, and the errors that say where a problem is."""

from .conditions import ConditionError, parse_condition
from .errors import ConfigError
from .loader import (
    ConfigDiff,
    build_service_config,
    diff_configs,
    import_checks,
    load_config,
    parse_bytes,
    parse_config,
    service_from_options,
)
from .model import (
    BODY_FORMATS,
    DURING,
    WEEKDAYS,
    Condition,
    Config,
    Defaults,
    DeskConfig,
    ReconciliationConfig,
    RiskLimits,
    ServiceConfig,
    TLSConfig,
)
from .probe_types import PROBE_TYPES
from .redact import REDACTED, public_service, redact_config, redact_url
from .services import check_target, resolve_check

__all__ = [
    "BODY_FORMATS",
    "DURING",
    "PROBE_TYPES",
    "REDACTED",
    "WEEKDAYS",
    "Condition",
    "ConditionError",
    "Config",
    "ConfigDiff",
    "ConfigError",
    "Defaults",
    "DeskConfig",
    "ReconciliationConfig",
    "RiskLimits",
    "ServiceConfig",
    "TLSConfig",
    "build_service_config",
    "check_target",
    "diff_configs",
    "import_checks",
    "load_config",
    "parse_bytes",
    "parse_condition",
    "parse_config",
    "public_service",
    "redact_config",
    "redact_url",
    "resolve_check",
    "service_from_options",
]
