"""ServiceRegistry: the services to probe, from services.yaml or registered in code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config.model import Config, ServiceConfig


class ServiceRegistry:
    """An ordered set of ServiceConfig by name; `version` rises on every change."""

    def __init__(self, config: Config | None = None) -> None:
        self._services: dict[str, ServiceConfig] = {}
        self.allowed_targets: tuple[str, ...] = ()
        self.config: Config | None = None
        self.version = 0
        if config is not None:
            self.replace(config)

    @classmethod
    def from_file(cls, path: str) -> ServiceRegistry:
        """Load and validate a services.yaml file."""
        from ..config.loader import load_config

        return cls(load_config(path))

    def replace(self, config: Config) -> None:
        """Swap in a whole validated configuration (reload)."""
        self._services = {svc.name: svc for svc in config.services}
        self.allowed_targets = config.allowed_targets
        self.config = config
        self.version += 1

    def register(
        self,
        name: str,
        url: str | None = None,
        check_interval: float | str = 30,
        timeout: float | str = 5,
        health_check: Callable[[], Any] | None = None,
        **probe_options: Any,
    ) -> ServiceConfig:
        """Register (or replace) one service; durations in seconds or as strings like "30s"."""
        from ..config.loader import service_from_options

        svc = service_from_options(
            name,
            url=url,
            interval=check_interval,
            timeout=timeout,
            health_check=health_check,
            defaults=self.config.defaults if self.config else None,
            **probe_options,
        )
        self._services[svc.name] = svc
        self.version += 1
        return svc

    def unregister(self, name: str) -> bool:
        """Remove a service; True when it was registered."""
        if self._services.pop(name, None) is None:
            return False
        self.version += 1
        return True

    def get(self, name: str) -> ServiceConfig | None:
        """The service called `name`, or None."""
        return self._services.get(name)

    def list(self) -> list[ServiceConfig]:
        """All services in declaration order."""
        return list(self._services.values())

    def __len__(self) -> int:
        return len(self._services)

    def __contains__(self, name: object) -> bool:
        return name in self._services
