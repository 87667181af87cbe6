"""The `demo` command: simulated services and a simulated trading engine that give the dashboards life."""

from .engine import DemoEngine, EngineParts
from .services import ServiceSpec, SimulatedServices, default_specs

__all__ = ["DemoEngine", "EngineParts", "ServiceSpec", "SimulatedServices", "default_specs"]
