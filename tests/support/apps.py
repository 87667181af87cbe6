"""Sidecars for tests, all built by create_app: the whole sidecar or only some features.

    sidecar_settings(tmp_path, services, web_config, **env) -> Settings
    sidecar_app(tmp_path, registry, services, web_config, features=FEATURES, **env)
    feature_app(tmp_path, registry, features, middlewares=(), **settings_fields)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.app import FEATURES, create_app
from exporter.settings import Settings, load_settings

NO_SERVICES = "services: []\n"


def sidecar_settings(tmp_path: Path, services: str = NO_SERVICES, web_config: str | None = None,
                     **env: str) -> Settings:
    """Settings from the environment `env` over a services file of `services`, the scheduler
    off, and the audit trail (SQLite, spool, checkpoints) under `tmp_path`."""
    path = tmp_path / "services.yaml"
    path.write_text(services)
    environ = {"EXPORTER_CONFIG": str(path), "EXPORTER_SCHEDULER": "off",
               "AUDIT_SQLITE_PATH": str(tmp_path / "audit.sqlite3"),
               "AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
               "AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"), **env}
    if web_config is not None:
        web_file = tmp_path / "web.yml"
        web_file.write_text(web_config)
        environ["EXPORTER_WEB_CONFIG"] = str(web_file)
    return load_settings(environ)


def sidecar_app(tmp_path: Path, registry: CollectorRegistry, services: str = NO_SERVICES,
                web_config: str | None = None, features: Sequence[ModuleType] = FEATURES,
                **env: str) -> web.Application:
    """create_app over sidecar_settings(tmp_path, services, web_config, **env)."""
    return create_app(sidecar_settings(tmp_path, services, web_config, **env), registry,
                      features=features)


def feature_app(tmp_path: Path, registry: CollectorRegistry, features: Sequence[ModuleType],
                middlewares: Sequence = (), **fields) -> web.Application:
    """create_app with only `features`, its Settings fields replaced by `fields`;
    `middlewares` run inside the sidecar's own (after them, before the handler)."""
    settings = replace(sidecar_settings(tmp_path), **fields)
    app = create_app(settings, registry, features=features)
    app.middlewares.extend(middlewares)
    return app
