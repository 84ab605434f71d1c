"""The Helm chart: lint, renders, strict Kubernetes schemas, CRD fields, policy, values schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.chart import (
    KUBERNETES_VERSION,
    VALUE_SETS,
    by_kind,
    field,
    merged,
    named,
    pod_spec,
    render,
    schema,
    values,
)
from tests.deploy.test_dockerfile import arguments, run_checkov
from tests.deploy.tools import CHART, DOCKERFILES, OBSERVABILITY, executable, module

# Custom resources: the fields each must have for its operator to act on it.
CRD_REQUIRED_FIELDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ["spec.selector.matchLabels", "spec.endpoints"],
    ("monitoring.coreos.com/v1", "PrometheusRule"): ["spec.groups"],
    ("keda.sh/v1alpha1", "ScaledObject"): ["spec.scaleTargetRef.name", "spec.triggers"],
}


# values.schema.json in step with values.yaml


def values_without_schema(data: Any, node: dict[str, Any], path: str = "") -> Iterator[str]:
    """Every key of `data` that the schema `node` does not describe."""
    node = _resolve(node)
    if not isinstance(data, dict):
        return
    properties = node.get("properties", {})
    extra = node.get("additionalProperties")
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if key in properties:
            yield from values_without_schema(value, properties[key], where)
        elif isinstance(extra, dict):
            yield from values_without_schema(value, extra, where)
        else:
            yield where


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = schema()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_every_value_has_a_schema() -> None:
    assert list(values_without_schema(values(), schema())) == []


def test_a_value_added_without_schema_is_caught() -> None:
    data = merged({"service": {"sessionAffinity": "ClientIP"}, "newTopLevel": True})
    found = sorted(values_without_schema(data, schema()))
    assert found == ["newTopLevel", "service.sessionAffinity"]


def test_the_schema_rejects_values_it_does_not_know() -> None:
    helm = module("helm_python")
    for bad in ({"unknownKey": 1}, {"image": {"pullPolicy": "Sometimes"}}):
        with pytest.raises(helm.HelmValuesError):
            render(bad)


# Helm lint and renders


def test_helm_lint_is_clean_with_every_value_set() -> None:
    helm = module("helm_python")
    for name, overrides in VALUE_SETS.items():
        report = helm.lint(
            str(CHART), merged(overrides), strict=True, kube_version=f"v{KUBERNETES_VERSION}"
        )
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert report["errors"] == [], f"{name}: {report}"
        assert problems == [], f"{name}: {report}"


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_rendered_object_passes_strict_schema_validation(name: str) -> None:
    validator = module("kubernetes_validate")
    docs = render(VALUE_SETS[name])
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount", "Pod"} <= kinds
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CRD_REQUIRED_FIELDS:
            missing = [f for f in CRD_REQUIRED_FIELDS[key] if not field(doc, f)]
            assert missing == [], f"{doc['kind']} lacks {missing}"
            continue
        validator.validate(doc, KUBERNETES_VERSION, strict=True)


def test_strict_validation_catches_an_unknown_field() -> None:
    validator = module("kubernetes_validate")
    deployment = named(render({}), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(validator.ValidationError):
        validator.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_container_listens_on_the_port_the_image_exposes() -> None:
    container = pod_spec(render({}))["containers"][0]
    for dockerfile in DOCKERFILES:
        assert arguments(dockerfile, "EXPOSE") == [str(container["ports"][0]["containerPort"])]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["APP_PORT"] == str(container["ports"][0]["containerPort"])


def test_probes_resources_and_a_locked_down_pod() -> None:
    pod = pod_spec(render({}))
    container = pod["containers"][0]
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert pod["automountServiceAccountToken"] is False


def test_settings_come_from_a_configmap() -> None:
    docs = render({})
    config = named(docs, "ConfigMap")
    container = pod_spec(docs)["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    assert all(key.startswith(("APP_", "OTEL_")) for key in config["data"])


@pytest.mark.default_device
def test_gpu_values_request_a_gpu_on_a_gpu_node() -> None:
    gpu = values()["gpu"]
    pod = pod_spec(render(VALUE_SETS["gpu"]))
    container = pod["containers"][0]
    assert container["resources"]["limits"][gpu["resourceName"]] == gpu["count"]
    assert pod["runtimeClassName"] == gpu["runtimeClassName"]
    assert gpu["nodeSelector"].items() <= pod["nodeSelector"].items()
    assert all(t in pod["tolerations"] for t in gpu["tolerations"])
    assert {"name": "APP_DEVICE", "value": "cuda"} in container["env"]
    cpu = pod_spec(render({"gpu": {"enabled": False}}))
    assert gpu["resourceName"] not in cpu["containers"][0]["resources"].get("limits", {})
    assert "runtimeClassName" not in cpu


def test_autoscaling_on_cpu_fixed_replicas_or_keda() -> None:
    hpa = named(render(VALUE_SETS["hpa"]), "HorizontalPodAutoscaler")
    metrics = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
    assert [m["resource"]["name"] for m in metrics] == ["cpu"]
    fixed = render(VALUE_SETS["autoscaling-off"])
    hpas = [h["metadata"] for h in by_kind(fixed, "HorizontalPodAutoscaler")]
    assert hpa["metadata"] not in hpas
    assert named(fixed, "Deployment")["spec"]["replicas"] == values()["replicaCount"]
    keda = render(VALUE_SETS["keda"])
    deployment = named(keda, "Deployment")
    hpas = {h["metadata"]["name"] for h in by_kind(keda, "HorizontalPodAutoscaler")}
    assert deployment["metadata"]["name"] not in hpas  # KEDA owns the HPA then
    scaled = named(keda, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert {"cpu"} <= {trigger["type"] for trigger in scaled["spec"]["triggers"]}
    assert "replicas" not in deployment["spec"]


def test_monitoring_objects_match_the_service_and_the_alert_rules() -> None:
    docs = render(VALUE_SETS["keda"])
    service = named(docs, "Service")
    monitor = named(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["spec"]["selector"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    rules = named(docs, "PrometheusRule")
    shipped = yaml.safe_load((OBSERVABILITY / "alerts.rules.yml").read_text())
    assert rules["spec"] == shipped
    assert (CHART / "files" / "alerts.rules.yml").read_text() == (
        OBSERVABILITY / "alerts.rules.yml"
    ).read_text()


def test_a_pdb_and_a_network_policy_guard_the_pods() -> None:
    docs = render({})
    assert named(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    policy = named(docs, "NetworkPolicy")
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_the_helm_test_hook_calls_readyz_through_the_service() -> None:
    docs = render({})
    service = named(docs, "Service")
    hooks = [
        doc
        for doc in by_kind(docs, "Pod")
        if doc["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    ]
    assert len(hooks) == 1
    script = hooks[0]["spec"]["containers"][0]["args"][0]
    port = service["spec"]["ports"][0]["port"]
    assert f"http://{service['metadata']['name']}:{port}/readyz" in script


def test_checkov_passes_every_rendered_value_set(tmp_path: Path) -> None:
    checkov = executable("checkov")
    files = []
    for name, overrides in VALUE_SETS.items():
        for index, doc in enumerate(render(overrides)):
            path = tmp_path / f"{name}-{index:02d}-{doc['kind'].lower()}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            files += ["-f", str(path)]  # named files: checkov skips folders under a dot folder
    report = run_checkov(checkov, [*files, "--framework", "kubernetes"])
    assert report["failed"] == [], report["failed"]
    assert report["passed"] > 0
