"""docker-compose.yml and the Dockerfile: validated by docker-compose, read for wiring."""

from __future__ import annotations

import json
import os
import re
import subprocess
from urllib.parse import urlsplit

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
            source = re.sub(r"^\$\{[A-Z_]+:-(.*?)\}", r"\1", vol).split(":")[0]
            if source.startswith("./"):
                continue
            assert source in named, f"{name}: {vol} is neither a repository path nor a named volume"


def _probe_example() -> tuple[str, dict]:
    """prometheus.yml's commented probe-mode job, uncommented, and the file with it enabled."""
    text = (a.PROMETHEUS_DIR / "prometheus.yml").read_text()
    begin, end = "  # --- probe mode: begin ---\n", "  # --- probe mode: end ---\n"
    block = text[text.index(begin) + len(begin):text.index(end)]
    job = "".join("  " + line[4:] + "\n" for line in block.splitlines())
    return text.replace(block, job), yaml.safe_load(job)[0]


def test_probe_job_is_an_example_and_not_scraped():
    prom = yaml.safe_load((a.PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert [j["job_name"] for j in prom["scrape_configs"]] == [
        "usdcop-exporter", "prometheus", "alertmanager"]
    assert all(j.get("metrics_path") != "/probe" for j in prom["scrape_configs"])


def test_probe_example_relabels_like_blackbox_and_is_a_valid_config(tmp_path):
    enabled, job = _probe_example()
    assert job["job_name"] == "usdcop-probe" and job["metrics_path"] == "/probe"
    relabel = job["relabel_configs"]
    assert relabel[0] == {"source_labels": ["__address__"], "target_label": "__param_service"}
    assert {"source_labels": ["__param_service"], "target_label": "instance"} in relabel
    assert relabel[-1] == {"target_label": "__address__", "replacement": "usdcop-exporter:9322"}
    assert re.search(r"#\s+action: hashmod", enabled), "the commented sharding example"
    promtool = require_tool("promtool")
    (tmp_path / "rules").symlink_to(a.PROMETHEUS_DIR / "rules")
    (tmp_path / "prometheus.yml").write_text(enabled)
    res = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def _mounts(service: dict) -> dict[str, str]:
    """target → source of a resolved service's volumes (short or long syntax)."""
    out = {}
    for vol in service.get("volumes", []):
        if isinstance(vol, str):
            source, target = vol.split(":")[:2]
        else:
            source, target = vol["source"], vol["target"]
        out[target] = source
    return out


def test_a_plain_up_probes_only_what_the_stack_runs(resolved):
    """Without the demo profile no probe target is a host the stack does not have."""
    from exporter.config.loader import load_config

    plain = _compose("config")
    assert plain.returncode == 0, plain.stderr
    svc = yaml.safe_load(plain.stdout)["services"]["usdcop-exporter"]
    source = _mounts(svc)["/etc/usdcop-exporter/services.yaml"]
    assert source == str(a.REPO / "deploy/compose/services.yaml")
    env = {k: str(v) for k, v in svc["environment"].items()}
    config = load_config(source, environ=env)
    hosts = {urlsplit(s.url).hostname for s in config.services}
    assert config.services and hosts <= set(yaml.safe_load(plain.stdout)["services"])


def test_one_image_and_pinned_tool_versions(resolved):
    services = resolved["services"]
    assert "build" not in services["usdcop-demo"]
    assert services["usdcop-demo"]["pull_policy"] == "never"
    assert services["usdcop-demo"]["image"] == services["usdcop-exporter"]["image"]
    assert [n for n, s in services.items() if "build" in s] == ["usdcop-exporter"]
    for image, tool in (("prom/prometheus", "promtool"), ("prom/alertmanager", "amtool")):
        (tag,) = [s["image"].split(":")[1] for s in services.values()
                  if s["image"].startswith(image + ":")]
        out = subprocess.run([require_tool(tool), "--version"], capture_output=True, text=True)
        version = re.search(r"version (\d+\.\d+)\.", out.stdout + out.stderr).group(1)
        assert tag.startswith(f"v{version}."), (image, tag, tool, version)
    grafana = services["grafana"]["image"]
    assert re.fullmatch(r"grafana/grafana-oss:11\.2\.\d+", grafana)
    for path in a.REPO.glob("grafana/dashboards/*.json"):
        assert json.loads(path.read_text())["schemaVersion"] <= 39, path.name


def test_grafana_reads_the_audit_trail_as_the_reader_role(resolved):
    services = resolved["services"]
    pg, grafana = services["postgres"]["environment"], services["grafana"]["environment"]
    assert grafana["GRAFANA_AUDIT_DB_USER"] == pg["GRAFANA_AUDIT_DB_USER"] == "usdcop_grafana"
    assert grafana["GRAFANA_AUDIT_DB_USER"] != pg["POSTGRES_USER"]
    assert grafana["GRAFANA_AUDIT_DB_PASSWORD"] == pg["GRAFANA_AUDIT_DB_PASSWORD"]
    mounts = _mounts(services["postgres"])
    assert mounts["/docker-entrypoint-initdb.d"] == str(a.REPO / "deploy/compose/postgres-init")


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
    assert any(re.search(r"\bpip install -c constraints\.txt \.(\s|$)", r) for r in by["RUN"])
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
    for needed in ("exporter", "pyproject.toml", "constraints.txt", "README.md", "services.yaml"):
        assert needed not in ignored
    for bulky in (".git", ".venv", "tests"):
        assert bulky in ignored
    copied = [r for w, r in _dockerfile() if w == "COPY"]
    sources = {s for r in copied if not r.startswith("--from") for s in r.split()[:-1]}
    assert {"pyproject.toml", "constraints.txt", "README.md", "exporter", "services.yaml"} <= sources


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_constraints_pin_every_dependency_and_installs_use_them():
    """constraints.txt (scripts/lock.sh) pins each dependency of every extra exactly."""
    import tomllib

    project = tomllib.loads((a.REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra}
    pinned = {}
    for line in (a.REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.split(";")[0].strip().partition("==")
            pinned[name.lower().replace("_", "-")] = version
    missing = sorted(wanted - set(pinned))
    assert not missing, f"not in constraints.txt (run bash scripts/lock.sh): {missing}"
    assert all(re.fullmatch(r"\d[\w.+!-]*", v) for v in pinned.values())
    test_sh = (a.REPO / "scripts/test.sh").read_text()
    assert "pip install -q --disable-pip-version-check -c constraints.txt -e '.[test," in test_sh
    assert "uv pip compile pyproject.toml --all-extras" in (a.REPO / "scripts/lock.sh").read_text()
