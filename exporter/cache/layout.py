"""The Redis key layout shared with the trading engine (docs/library.md), in one place."""

from __future__ import annotations

import re

SYMBOL_RE = re.compile(r"[A-Z0-9]{3,12}")
CUSTOM_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
NAMESPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ACTIONS = ("BUY", "SELL", "HOLD")

SIGNAL_LATEST = "signal:latest"
HISTORY_PREFIX = "signal:history:"
POSITION_PREFIX = "position:active:"
FINANCIAL = "metrics:financial"
CUSTOM_PREFIX = "metrics:custom:"
HEALTH_PREFIX = "health:"


def history_key(symbol: str) -> str:
    """`signal:history:<SYMBOL>` (relative to the namespace)."""
    return HISTORY_PREFIX + symbol


def position_key(symbol: str) -> str:
    """`position:active:<SYMBOL>` (relative to the namespace)."""
    return POSITION_PREFIX + symbol


def custom_key(name: str) -> str:
    """`metrics:custom:<name>` (relative to the namespace)."""
    return CUSTOM_PREFIX + name


def health_key(service: str) -> str:
    """`health:<service>` (relative to the namespace)."""
    return HEALTH_PREFIX + service


def cache_label(relative_key: str) -> str:
    """The `cache` label a key counts under: signals, metrics or generic."""
    if relative_key.startswith("signal:"):
        return "signals"
    if relative_key.startswith(("metrics:", "position:")):
        return "metrics"
    return "generic"


CACHE_LABELS = ("signals", "metrics", "generic")
