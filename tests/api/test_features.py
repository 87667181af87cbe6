"""create_app with only some features: the shared parts are there, each feature sets up on
them alone, and the routes are those of the features asked for."""

from __future__ import annotations

from exporter.api import audit, cache, health, latency
from exporter.api.keys import CHECKER, RELOADER, ROUTES
from exporter.app import FEATURES
from tests.support.apps import sidecar_app

SERVICE = "services:\n  - name: engine\n    url: http://127.0.0.1:1/health\n"


def paths(app) -> set[str]:
    return {route.path for route in app[ROUTES]}


def test_only_the_features_asked_for_are_set_up(tmp_path, registry):
    app = sidecar_app(tmp_path, registry, SERVICE, features=(cache,))
    assert "/api/cache/signals" in paths(app)
    assert "/api/health/services" not in paths(app)
    assert "/metrics" not in paths(app)
    # The shared parts are built whichever features are set up.
    assert app[CHECKER].registry.config.service("engine") is not None
    assert app[RELOADER].checker is app[CHECKER]
    assert registry.get_sample_value("usdcop_config_last_reload_successful") == 1.0


def test_audit_hooks_into_reloads_without_the_health_feature(tmp_path, registry):
    app = sidecar_app(tmp_path, registry, SERVICE, features=(latency, audit))
    service = app[audit.AUDIT]
    assert service.own.record_config_change in app[RELOADER].listeners
    assert "/api/audit/signals" in paths(app)
    assert "/-/reload" not in paths(app)


async def test_a_reload_reaches_the_checker_and_the_listeners(tmp_path, registry):
    app = sidecar_app(tmp_path, registry, "services: []\n", features=(health,))
    heard = []

    async def listener(digest, added, removed, changed):
        heard.append((added, removed, changed))

    app[RELOADER].listeners.append(listener)
    (tmp_path / "services.yaml").write_text(SERVICE)
    answer = await app[RELOADER].reload()
    assert (answer["status"], list(answer["added"])) == ("reloaded", ["engine"])
    assert [tuple(map(list, h)) for h in heard] == [(["engine"], [], [])]
    assert set(app[CHECKER].states) == {"engine"}


def test_the_whole_sidecar_is_every_feature(tmp_path, registry):
    app = sidecar_app(tmp_path, registry)
    assert {"/api/health/services", "/api/cache/signals", "/api/audit/signals",
            "/metrics"} <= paths(app)
    assert len(FEATURES) == 6
