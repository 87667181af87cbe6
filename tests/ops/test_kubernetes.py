"""deploy/kubernetes: every core object valid for Kubernetes (kubernetes-validate, offline),
the generated PrometheusRule and dashboard ConfigMaps equal to their sources, the rules
accepted by promtool, and the wiring between the objects consistent."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from exporter.config.loader import load_config
from exporter.settings import SettingsError, load_settings
from tests.ops import artefacts as a
from tests.support.tools import require_tool

K8S = a.REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"  # the oldest release the base is checked against (pod-index: 1.28+)
CORE_KINDS = {"ConfigMap", "Secret", "Service", "StatefulSet"}
LAST_APPLIED_LIMIT = 262_144  # kubectl apply keeps the whole object in one annotation


def _objects() -> list[tuple[str, dict]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    out = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            if doc is not None:
                out.append((name, doc))
    return out


OBJECTS = _objects()


def _one(kind: str) -> dict:
    (obj,) = [o for _, o in OBJECTS if o["kind"] == kind]
    return obj


def test_kustomization_lists_every_file():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert {kind for _, o in OBJECTS for kind in [o["kind"]]} == CORE_KINDS | {
        "ServiceMonitor", "PrometheusRule"}


@pytest.mark.parametrize(
    "obj", [o for _, o in OBJECTS if o["kind"] in CORE_KINDS],
    ids=lambda o: f"{o['kind']}/{o['metadata']['name']}",
)
def test_core_objects_are_valid_kubernetes(obj):
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert len(json.dumps(obj)) < LAST_APPLIED_LIMIT


def test_an_invalid_object_is_refused():
    bad = json.loads(json.dumps(_one("StatefulSet")))
    bad["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = ["1"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_generated_files_are_up_to_date():
    res = subprocess.run([sys.executable, str(a.REPO / "scripts/gen_k8s.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_prometheus_rules_are_the_rule_files_and_promtool_accepts_them(tmp_path):
    rules = {o["metadata"]["name"]: o for _, o in OBJECTS if o["kind"] == "PrometheusRule"}
    assert set(rules) == {p.stem for p in a.rule_files()}
    promtool = require_tool("promtool")
    for path in a.rule_files():
        obj = rules[path.stem]
        assert obj["apiVersion"] == "monitoring.coreos.com/v1"
        assert obj["spec"]["groups"] == yaml.safe_load(path.read_text())["groups"]
        out = tmp_path / f"{path.stem}.yml"
        out.write_text(yaml.safe_dump({"groups": obj["spec"]["groups"]}, sort_keys=False))
    res = subprocess.run([promtool, "check", "rules", *sorted(str(p) for p in tmp_path.glob("*.yml"))],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_dashboard_configmaps_are_the_dashboard_files():
    maps = {o["metadata"]["name"]: o for _, o in OBJECTS
            if o["kind"] == "ConfigMap" and o["metadata"]["labels"].get("grafana_dashboard")}
    files = sorted(a.DASHBOARDS_DIR.glob("*.json"))
    assert set(maps) == {f"{p.stem}-dashboard" for p in files}
    for path in files:
        obj = maps[f"{path.stem}-dashboard"]
        assert obj["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert obj["data"] == {path.name: path.read_text()}


def test_the_pod_runs_unprivileged_with_limits_and_probes():
    pod = _one("StatefulSet")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    ctx = container["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 9322, "protocol": "TCP"}]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    # Everything the process writes: the state directory (the Dockerfile's) and /tmp.
    assert mounts == {"/etc/usdcop-exporter", "/var/lib/usdcop-exporter", "/tmp"}


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def test_each_pod_takes_its_shard_from_its_ordinal():
    sts = _one("StatefulSet")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    env = _env(container)
    assert env["SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']")
    assert int(env["SHARD_COUNT"]["value"]) == sts["spec"]["replicas"]
    for index, count in ((0, 1), (2, 3)):
        # Kubernetes expands $(NAME) from the variables defined before it.
        value = env["EXPORTER_SHARD"]["value"].replace("$(SHARD_INDEX)", str(index)).replace(
            "$(SHARD_COUNT)", str(count))
        settings = load_settings({"EXPORTER_SHARD": value})
        assert (settings.shard_index, settings.shard_count) == (index, count)
    with pytest.raises(SettingsError, match="EXPORTER_SHARD"):  # no pod-index label: refused
        load_settings({"EXPORTER_SHARD": env["EXPORTER_SHARD"]["value"].replace("$(SHARD_INDEX)", "")})


def test_objects_refer_to_each_other():
    sts, service, monitor = _one("StatefulSet"), _one("Service"), _one("ServiceMonitor")
    secret = _one("Secret")
    pod = sts["spec"]["template"]
    assert sts["spec"]["serviceName"] == service["metadata"]["name"] == "usdcop-exporter"
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    (container,) = pod["spec"]["containers"]
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"]
            if "secretKeyRef" in e.get("valueFrom", {})]
    assert {r["name"] for r in refs} == {secret["metadata"]["name"]}
    assert {r["key"] for r in refs} == set(secret["stringData"])
    (volume,) = [v for v in pod["spec"]["volumes"] if "configMap" in v]
    services_map = [o for _, o in OBJECTS if o["kind"] == "ConfigMap"
                    and o["metadata"]["name"] == volume["configMap"]["name"]]
    assert services_map and "services.yaml" in services_map[0]["data"]
    assert _env(container)["EXPORTER_CONFIG"]["value"] == "/etc/usdcop-exporter/services.yaml"
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert [i["name"] for i in kustomization["images"]] == [container["image"]]


def test_the_services_configmap_is_a_valid_services_file(tmp_path):
    (services,) = [o for _, o in OBJECTS if o["metadata"]["name"] == "usdcop-exporter-services"]
    path = Path(tmp_path / "services.yaml")
    path.write_text(services["data"]["services.yaml"])
    env = {"REDIS_URL": "redis://redis:6379/0", "POSTGRES_URL": "postgresql://u@pg:5432/usdcop"}
    config = load_config(path, environ=env)
    assert [s.name for s in config.services] == ["postgres", "redis"]


@pytest.mark.parametrize("key", sorted(yaml.safe_load((K8S / "secret.yaml").read_text())["stringData"]))
def test_a_placeholder_left_in_the_secret_stops_the_sidecar(key):
    value = yaml.safe_load((K8S / "secret.yaml").read_text())["stringData"][key]
    assert re.search(r"<[^>]+>", value)
    with pytest.raises(SettingsError, match=key):
        load_settings({key: value})


def test_kustomize_builds_the_base_and_the_built_objects_are_valid():
    kubectl = require_tool("kubectl")  # its built-in kustomize; offline
    res = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    built = [o for o in yaml.safe_load_all(res.stdout) if o]
    key = sorted((o["kind"], o["metadata"]["name"]) for o in built)
    assert key == sorted((o["kind"], o["metadata"]["name"]) for _, o in OBJECTS)
    for obj in built:
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "usdcop"
        if obj["kind"] in CORE_KINDS:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    (sts,) = [o for o in built if o["kind"] == "StatefulSet"]
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == "usdcop-exporter:0.1.0"
