"""docker-compose.yml and the Dockerfile: validated by docker-compose, read for wiring."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from tests.ops import artefacts as a
from tests.support.tools import require_tool

pytestmark = pytest.mark.slow

COMPOSE = a.REPO / "docker-compose.yml"
DOCKERFILE = a.REPO / "Dockerfile"


def _compose(*args: str) -> subprocess.CompletedProcess:
    binary = require_tool("docker-compose")
    # A clean environment: the defaults in the file are what is checked, not whatever
    # the caller's shell exports.
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL"}}
    return subprocess.run(
        [binary, "-f", str(COMPOSE), "--project-directory", str(a.REPO), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=a.REPO,
    )


def test_docker_compose_config_is_valid():
    res = _compose("config", "-q")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture(scope="module")
def resolved() -> dict:
    """The file as docker-compose resolves it, demo profile included."""
    res = _compose("--profile", "demo", "config")
    assert res.returncode == 0, res.stderr
    return yaml.safe_load(res.stdout)


def test_services(resolved):
    assert set(resolved["services"]) == {
        "usdcop-exporter",
        "usdcop-demo",
        "redis",
        "postgres",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    assert resolved["services"]["usdcop-demo"]["profiles"] == ["demo"]
    assert resolved["services"]["usdcop-demo"]["command"] == ["demo"]
    for name, svc in resolved["services"].items():
        assert "profiles" not in svc or name == "usdcop-demo", name


def test_published_ports_bind_to_loopback_by_default(resolved):
    published = 0
    for name, svc in resolved["services"].items():
        for port in svc.get("ports", []):
            text = (
                port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port['published']}"
            )
            assert text.startswith("127.0.0.1:"), f"{name}: {port}"
            published += 1
    assert published == 6


def test_every_long_running_service_has_a_healthcheck(resolved):
    for name, svc in resolved["services"].items():
        if name == "usdcop-demo":
            continue
        assert svc["healthcheck"]["test"], name


def test_sidecar_wiring(resolved):
    svc = resolved["services"]["usdcop-exporter"]
    assert svc["build"]["dockerfile"] == "Dockerfile"
    env = svc["environment"]
    assert (
        env["POSTGRES_URL"].startswith("postgresql://") and "@postgres:5432/" in env["POSTGRES_URL"]
    )
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert "/healthz" in " ".join(svc["healthcheck"]["test"])
    assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    # The scrape job's target is this service's name and port.
    prom = yaml.safe_load((a.PROMETHEUS_DIR / "prometheus.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "usdcop-exporter"]
    assert job["static_configs"][0]["targets"] == ["usdcop-exporter:9322"]
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]
    assert prom["rule_files"] == ["rules/*.yml"]


def test_named_volumes_and_mounts():
    raw = yaml.safe_load(COMPOSE.read_text())
    named = set(raw["volumes"])
    assert len(named) >= 5
    mounts = {name: svc.get("volumes", []) for name, svc in raw["services"].items()}
    assert "./prometheus:/etc/prometheus:ro" in mounts["prometheus"]
    assert (
        "--config.file=/etc/prometheus/prometheus.yml" in raw["services"]["prometheus"]["command"]
    )
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts["grafana"]
    for name, vols in mounts.items():
        for vol in vols:
            source = vol.split(":")[0]
            if source.startswith("./"):
                continue
            assert source in named, f"{name}: {vol} is neither a repository path nor a named volume"


def test_probe_job_relabels_like_blackbox():
    prom = yaml.safe_load((a.PROMETHEUS_DIR / "prometheus.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j.get("metrics_path") == "/probe"]
    relabel = job["relabel_configs"]
    assert relabel[0] == {"source_labels": ["__address__"], "target_label": "__param_service"}
    assert {"source_labels": ["__param_service"], "target_label": "instance"} in relabel
    assert relabel[-1] == {"target_label": "__address__", "replacement": "usdcop-exporter:9322"}
    text = (a.PROMETHEUS_DIR / "prometheus.yml").read_text()
    assert re.search(r"#\s+action: hashmod", text), "the commented sharding example"


def _dockerfile() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile():
    instructions = _dockerfile()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    by = {}
    for word, rest in instructions:
        by.setdefault(word, []).append(rest)
    assert any(re.search(r"\bpip install \.(\s|$)", r) for r in by["RUN"])
    (user,) = by["USER"]
    assert user.split(":")[0] not in {"root", "0"}
    assert instructions.index(("USER", user)) > max(
        i for i, (w, _r) in enumerate(instructions) if w == "RUN"
    ), "everything after the installation runs unprivileged"
    (healthcheck,) = by["HEALTHCHECK"]
    assert "/healthz" in healthcheck and "9322" in healthcheck
    assert by["EXPOSE"] == ["9322"]
    assert by["ENTRYPOINT"] == ['["usdcop-exporter"]']


def test_dockerignore_keeps_what_the_image_needs():
    ignored = [
        line.strip()
        for line in (a.REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in ("exporter", "pyproject.toml", "README.md", "services.yaml"):
        assert needed not in ignored
    for bulky in (".git", ".venv", "tests"):
        assert bulky in ignored
    copied = [r for w, r in _dockerfile() if w == "COPY"]
    sources = {s for r in copied if not r.startswith("--from") for s in r.split()[:-1]}
    assert {"pyproject.toml", "README.md", "exporter", "services.yaml"} <= sources
