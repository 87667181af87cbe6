"""What a sidecar loads: the client libraries of Postgres and Redis only where they are used."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # a fresh interpreter per case

_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from exporter.app import create_app
    from exporter.settings import load_settings
    work = Path(sys.argv[1])
    (work / "services.yaml").write_text(sys.argv[2])
    env = {"EXPORTER_CONFIG": str(work / "services.yaml"), "EXPORTER_SCHEDULER": "off",
           "AUDIT_SQLITE_PATH": str(work / "a.sqlite3"), "AUDIT_SPOOL_DIR": str(work / "spool"),
           "AUDIT_CHECKPOINT_DIR": str(work / "cp")}
    create_app(load_settings(env))
    print(json.dumps({name: name in sys.modules for name in ("psycopg", "redis")}))
""")


def _loaded(tmp_path, services: str) -> dict[str, bool]:
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), services],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_sidecar_without_postgres_or_redis_loads_neither_client(tmp_path):
    services = "services:\n  - name: web\n    url: http://127.0.0.1:9/health\n"
    assert _loaded(tmp_path, services) == {"psycopg": False, "redis": False}


def test_redis_and_postgres_services_configured_at_start_up_load_their_clients_then(tmp_path):
    # at start-up, so that no first probe stalls the loop on a 50-70 ms import
    services = ("services:\n  - name: r\n    type: redis\n    url: redis://127.0.0.1:9/0\n"
                "  - name: p\n    type: postgres\n    url: postgresql://u@127.0.0.1:9/db\n")
    assert _loaded(tmp_path, services) == {"psycopg": True, "redis": True}
    only_redis = "services:\n  - name: r\n    type: redis\n    url: redis://127.0.0.1:9/0\n"
    assert _loaded(tmp_path, only_redis) == {"psycopg": False, "redis": True}


_FIRST_PROBE = textwrap.dedent("""
    import asyncio, json, sys
    from exporter.config.model import ServiceConfig
    from exporter.health.probes import ProbeContext, run_probe
    async def main():
        r = await run_probe(ServiceConfig(name="r", type="redis", url="redis://127.0.0.1:9/0"),
                            ProbeContext(timeout=2.0))
        p = await run_probe(ServiceConfig(name="p", type="postgres",
                                          url="postgresql://u@127.0.0.1:9/db"),
                            ProbeContext(timeout=2.0))
        return [[r.success, r.reason], [p.success, p.reason]]
    before = {name: name in sys.modules for name in ("psycopg", "redis")}
    print(json.dumps([before, asyncio.run(main())]))
""")


def test_a_first_probe_of_a_service_added_later_loads_its_client():
    out = subprocess.run([sys.executable, "-c", _FIRST_PROBE], capture_output=True, text=True,
                         timeout=60, check=True)
    before, results = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == {"psycopg": False, "redis": False}
    assert results == [[False, "connect"], [False, "connect"]]  # nothing listens on port 9


def test_a_prober_library_loaded_at_first_probe_is_not_timed(tmp_path, monkeypatch):
    # A prober whose module takes 0.3 s to import, for a service no services file brought
    # (so nothing preloaded it): the import happens before the probe's deadline starts, so
    # a 0.1 s timeout is not spent on it, and the duration is the probe's own.
    import asyncio

    from exporter.config.model import ServiceConfig
    from exporter.health import probes
    from exporter.health.probes import ProbeContext, run_probe

    (tmp_path / "slow_to_import_prober.py").write_text(
        "import asyncio, time\n"
        "from exporter.health.result import ProbeResult\n"
        "time.sleep(0.3)\n"
        "async def probe(service, ctx):\n"
        "    await asyncio.sleep(0.01)  # a probe waits on the network\n"
        "    return ProbeResult(success=True, duration_s=0.011)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(probes.PROBERS, "tcp", probes._OnFirstUse("slow_to_import_prober", "probe"))
    result = asyncio.run(run_probe(ServiceConfig(name="t", type="tcp", address="127.0.0.1:9"),
                                   ProbeContext(timeout=0.1)))
    assert (result.success, result.reason, result.duration_s) == (True, None, 0.011)
