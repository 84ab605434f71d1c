"""The Helm chart: lint, renders, strict Kubernetes schemas, CRD fields, policy, values schema."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy_tools import CHART, DOCKERFILES, OBSERVABILITY, executable, module
from tests.test_dockerfile import arguments, run_checkov

KUBERNETES_VERSION = "1.30.0"
RELEASE, NAMESPACE = "demo", "ml"
SHA256 = "0" * 64
# The value sets the chart must render with; each one is linted, validated and policy-checked.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "gateway-gpu": {"gpu": {"enabled": True}, "vllm": {"enabled": False}},
    "milvus": {
        "vectorStore": {"backend": "milvus"},
        "milvus": {"enabled": True},
        "autoscaling": {"enabled": True},
    },
    "milvus-external": {
        "vectorStore": {
            "backend": "milvus",
            "milvus": {"uri": "http://milvus.example:19530", "tokenSecret": "milvus-token"},
        },
        "autoscaling": {"enabled": True},
    },
    # The shared tests read the first Deployment and Service: the gateway's, with an
    # external Milvus (the subchart's objects would come first).
    "autoscaling-off": {
        "vectorStore": {"backend": "milvus", "milvus": {"uri": "http://milvus:19530"}},
        "vllm": {"autoscaling": {"enabled": False}},
    },
    "keda": {
        "vectorStore": {"backend": "milvus", "milvus": {"uri": "http://milvus:19530"}},
        "keda": {"enabled": True},
        "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    },
    "lancedb-existing-claim": {
        "vectorStore": {"lancedb": {"persistence": {"existingClaim": "documents"}}}
    },
    "vllm": {"vllm": {"enabled": True}},
    "vllm-keda": {
        "vectorStore": {"backend": "milvus"},
        "milvus": {"enabled": True},
        "vllm": {"enabled": True},
        "keda": {"enabled": True},
        "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    },
    "vllm-fixed-size": {
        "vllm": {
            "enabled": True,
            "autoscaling": {"enabled": False},
            "modelCache": {"existingClaim": "llm-models"},
            "tensorParallelSize": 2,
        },
    },
    "redis": {"redis": {"enabled": True}},
    "redis-url": {"redis": {"url": "redis://cache.example:6379/0"}},
    "redis-secret": {"redis": {"existingSecret": "rag-redis"}},
}
# Custom resources: the fields each must have for its operator to act on it.
CRD_REQUIRED_FIELDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ["spec.selector.matchLabels", "spec.endpoints"],
    ("monitoring.coreos.com/v1", "PrometheusRule"): ["spec.groups"],
    ("keda.sh/v1alpha1", "ScaledObject"): ["spec.scaleTargetRef.name", "spec.triggers"],
}


def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


def merged(overrides: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(values())
    _merge(result, overrides)
    return result


def _merge(into: dict[str, Any], overrides: dict[str, Any]) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def render(overrides: dict[str, Any]) -> list[dict[str, Any]]:
    helm = module("helm_python")
    chart = helm.Chart.load(str(CHART))
    try:
        files = chart.render(overrides, name=RELEASE, namespace=NAMESPACE)
    finally:
        chart.close()
    return [
        doc
        for path, text in sorted(files.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def field(doc: dict[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


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


def test_the_schema_rejects_values_it_does_not_know_and_unsafe_models() -> None:
    helm = module("helm_python")
    for bad in (
        {"unknownKey": 1},
        {"image": {"pullPolicy": "Sometimes"}},
        {"vectorStore": {"backend": "pgvector"}},
        {"autoscaling": {"enabled": True}},  # LanceDB has one writer
        {"keda": {"enabled": True}},
        {"milvus": {"enabled": True}},  # Milvus in the chart, LanceDB in use
        {"vectorStore": {"backend": "milvus"}},  # no Milvus at all
        {  # two Milvus at once
            "vectorStore": {"backend": "milvus", "milvus": {"uri": "http://milvus:19530"}},
            "milvus": {"enabled": True},
        },
        {"vectorStore": {"backend": "milvus", "milvus": {"uri": "milvus:19530"}}},  # no scheme
        {  # the subchart's own schema: a release tag, never "latest"
            "vectorStore": {"backend": "milvus"},
            "milvus": {"enabled": True, "image": {"tag": "latest"}},
        },
        {"vllm": {"tensorParallelSize": 0}},
        {"redis": {"url": "cache:6379"}},
    ):
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
    deployment = by_kind(render({}), "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(validator.ValidationError):
        validator.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_container_listens_on_the_port_the_image_exposes() -> None:
    deployment = by_kind(render({}), "Deployment")[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for dockerfile in DOCKERFILES:
        assert arguments(dockerfile, "EXPOSE") == [str(container["ports"][0]["containerPort"])]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["APP_PORT"] == str(container["ports"][0]["containerPort"])


def test_probes_resources_and_a_locked_down_pod() -> None:
    pod = by_kind(render({}), "Deployment")[0]["spec"]["template"]["spec"]
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
    config = by_kind(docs, "ConfigMap")[0]
    container = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    assert all(key.startswith(("APP_", "OTEL_")) for key in config["data"])


def test_gpu_values_request_a_gpu_on_a_gpu_node() -> None:
    gpu = values()["gpu"]
    pod = by_kind(render({"gpu": {"enabled": True}}), "Deployment")[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"][gpu["resourceName"]] == gpu["count"]
    assert pod["runtimeClassName"] == gpu["runtimeClassName"]
    assert gpu["nodeSelector"].items() <= pod["nodeSelector"].items()
    assert all(t in pod["tolerations"] for t in gpu["tolerations"])
    assert {"name": "APP_DEVICE", "value": "cuda"} in container["env"]
    cpu = by_kind(render({"gpu": {"enabled": False}}), "Deployment")[0]["spec"]["template"]["spec"]
    assert gpu["resourceName"] not in cpu["containers"][0]["resources"].get("limits", {})
    assert "runtimeClassName" not in cpu


def test_autoscaling_on_cpu_and_queue_depth_or_keda() -> None:
    hpa = by_kind(render(VALUE_SETS["milvus"]), "HorizontalPodAutoscaler")[0]
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "llm_active_streams"
    fixed = render(VALUE_SETS["autoscaling-off"])
    assert by_kind(fixed, "HorizontalPodAutoscaler") == []
    assert by_kind(fixed, "Deployment")[0]["spec"]["replicas"] == values()["replicaCount"]
    keda = render(VALUE_SETS["keda"])
    assert by_kind(keda, "HorizontalPodAutoscaler") == []  # KEDA owns the HPA then
    scaled = by_kind(keda, "ScaledObject")[0]
    deployment = by_kind(keda, "Deployment")[0]
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert "llm_active_streams" in scaled["spec"]["triggers"][0]["metadata"]["query"]
    assert "replicas" not in deployment["spec"]


def test_monitoring_objects_match_the_service_and_the_alert_rules() -> None:
    docs = render(VALUE_SETS["keda"])
    service = by_kind(docs, "Service")[0]
    monitor = by_kind(docs, "ServiceMonitor")[0]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["spec"]["selector"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    rules = by_kind(docs, "PrometheusRule")[0]
    shipped = yaml.safe_load((OBSERVABILITY / "alerts.rules.yml").read_text())
    assert rules["spec"] == shipped
    assert (CHART / "files" / "alerts.rules.yml").read_text() == (
        OBSERVABILITY / "alerts.rules.yml"
    ).read_text()


def test_a_pdb_and_a_network_policy_guard_the_pods() -> None:
    docs = render({})
    assert by_kind(docs, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"] == 1
    policy = by_kind(docs, "NetworkPolicy")[0]
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]


def named(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    """The object of `kind` named <release>-<chart>[suffix]: the gateway's, -vllm or -redis."""
    name = f"{RELEASE}-{values_name()}{suffix}"
    found = [doc for doc in by_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"no single {kind} {name}"
    return found[0]


def values_name() -> str:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())["name"]


def claims(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(c["metadata"]["name"] for c in by_kind(docs, "PersistentVolumeClaim"))


def config_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    return named(docs, "ConfigMap")["data"]


def test_without_vllm_the_gateway_runs_its_embedded_engine() -> None:
    docs = render({"vllm": {"enabled": False}})
    assert config_of(docs)["APP_ENGINE"] == "embedded"
    assert "APP_VLLM_URL" not in config_of(docs)
    assert [d["metadata"]["name"] for d in by_kind(docs, "Deployment")] == [
        f"{RELEASE}-{values_name()}"
    ]
    assert claims(docs) == [f"{RELEASE}-{values_name()}-lancedb"]  # the vector store's


def test_the_gateway_streams_from_the_vllm_service() -> None:
    docs = render(VALUE_SETS["vllm"])
    config = config_of(docs)
    service = named(docs, "Service", "-vllm")
    port = service["spec"]["ports"][0]["port"]
    assert config["APP_ENGINE"] == "vllm"
    assert config["APP_VLLM_URL"] == f"http://{service['metadata']['name']}:{port}"
    container = named(docs, "Deployment", "-vllm")["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == service["spec"]["ports"][0]["port"]
    args = dict(arg.removeprefix("--").split("=", 1) for arg in container["args"])
    # The gateway counts tokens against the same window and asks for the same model name.
    assert config["APP_MAX_CONTEXT_TOKENS"] == args["max-model-len"] == "2048"
    assert config["APP_VLLM_MODEL"] == config["APP_MODEL_NAME"] == args["served-model-name"]
    gateway = named(docs, "Service")
    vllm_pod = named(docs, "Deployment", "-vllm")["spec"]["template"]["metadata"]["labels"]
    gateway_pod = named(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    # Each Service selects its own pods only.
    assert not gateway["spec"]["selector"].items() <= vllm_pod.items()
    assert not service["spec"]["selector"].items() <= gateway_pod.items()
    assert service["spec"]["selector"].items() <= vllm_pod.items()


def test_vllm_gets_gpus_its_args_a_model_cache_and_a_long_startup_probe() -> None:
    chart = values()["vllm"]
    docs = render(VALUE_SETS["vllm-fixed-size"])
    deployment = named(docs, "Deployment", "-vllm")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    repository, tag = container["image"].rsplit(":", 1)
    assert repository == "vllm/vllm-openai"
    assert tag == chart["image"]["tag"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag)  # a release, never "latest"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2  # tensorParallelSize
    args = dict(arg.removeprefix("--").split("=", 1) for arg in container["args"])
    assert args["model"] == chart["model"]
    assert args["tensor-parallel-size"] == "2"
    assert args["max-model-len"] == str(chart["maxModelLen"])
    assert float(args["gpu-memory-utilization"]) == chart["gpuMemoryUtilization"]
    assert chart["nodeSelector"].items() <= pod["nodeSelector"].items()
    assert all(t in pod["tolerations"] for t in chart["tolerations"])
    assert pod["runtimeClassName"] == chart["runtimeClassName"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    cache = volumes[mounts["/models"]]["persistentVolumeClaim"]["claimName"]
    assert cache == "llm-models"  # the existing claim; the chart makes none for vLLM then
    assert claims(docs) == [f"{RELEASE}-{values_name()}-lancedb"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HF_HOME"].startswith("/models/")
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 15 * 60
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert deployment["spec"]["replicas"] == chart["replicaCount"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    made = claims(render(VALUE_SETS["vllm"]))
    assert made == [f"{RELEASE}-{values_name()}-lancedb", f"{RELEASE}-{values_name()}-vllm-cache"]


def test_vllm_scales_on_waiting_requests_with_keda_or_an_hpa() -> None:
    keda = render(VALUE_SETS["vllm-keda"])
    scaled = named(keda, "ScaledObject", "-vllm")
    assert scaled["spec"]["scaleTargetRef"]["name"] == f"{RELEASE}-{values_name()}-vllm"
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    assert "vllm:num_requests_waiting" in trigger["metadata"]["query"]
    per_replica = values()["vllm"]["autoscaling"]["waitingRequestsPerReplica"]
    assert trigger["metadata"]["threshold"] == per_replica
    assert "replicas" not in named(keda, "Deployment", "-vllm")["spec"]
    assert [h["metadata"]["name"] for h in by_kind(keda, "HorizontalPodAutoscaler")] == []
    hpa = named(render(VALUE_SETS["vllm"]), "HorizontalPodAutoscaler", "-vllm")
    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    assert metric == values()["vllm"]["autoscaling"]["metricName"]
    fixed = render(VALUE_SETS["vllm-fixed-size"])
    assert by_kind(fixed, "HorizontalPodAutoscaler") == by_kind(fixed, "ScaledObject") == []


def test_vllm_metrics_are_scraped_with_the_gateways() -> None:
    docs = render(VALUE_SETS["vllm-keda"])
    monitor = named(docs, "ServiceMonitor", "-vllm")
    service = named(docs, "Service", "-vllm")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["spec"]["selector"].items()
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    policy = named(docs, "NetworkPolicy", "-vllm")
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_redis_in_the_chart_or_outside_it() -> None:
    docs = render(VALUE_SETS["redis"])
    service = named(docs, "Service", "-redis")
    assert config_of(docs)["APP_REDIS_URL"] == f"redis://{service['metadata']['name']}:6379/0"
    pod = named(docs, "Deployment", "-redis")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+-\w+", container["image"])  # a release tag
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["limits"]
    policy = named(docs, "NetworkPolicy", "-redis")
    gateway = named(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert allowed.items() <= gateway.items()  # the gateway, and nothing else
    external = render(VALUE_SETS["redis-url"])
    assert config_of(external)["APP_REDIS_URL"] == "redis://cache.example:6379/0"
    deployments = {d["metadata"]["name"] for d in by_kind(external, "Deployment")}
    assert f"{RELEASE}-{values_name()}-redis" not in deployments  # no Redis of its own
    secret = render(VALUE_SETS["redis-secret"])
    assert "APP_REDIS_URL" not in config_of(secret)
    env = named(secret, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    url = next(e for e in env if e["name"] == "APP_REDIS_URL")
    assert url["valueFrom"]["secretKeyRef"] == {"name": "rag-redis", "key": "redis-url"}
    assert "APP_REDIS_URL" not in config_of(render({}))  # in memory by default


def test_the_gateway_serves_the_model_baked_into_its_image() -> None:
    container = named(render({}), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["APP_MODEL_PATH"] == values()["model"]["path"]
    for dockerfile in DOCKERFILES:
        assert f"APP_MODEL_PATH={values()['model']['path']}" in " ".join(
            arguments(dockerfile, "ENV")
        )


def milvus_objects(docs: list[dict[str, Any]]) -> list[str]:
    """Kind/name of every object of the Milvus subchart."""
    return sorted(
        f"{doc['kind']}/{doc['metadata']['name']}"
        for doc in docs
        if doc["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "milvus"
    )


def test_by_default_lancedb_lives_on_a_claim_and_the_gateway_runs_alone() -> None:
    docs = render({})
    deployment = named(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    scalers = by_kind(docs, "HorizontalPodAutoscaler") + by_kind(docs, "ScaledObject")
    gateway = deployment["metadata"]["name"]
    assert [s for s in scalers if s["spec"]["scaleTargetRef"]["name"] == gateway] == []
    config = config_of(docs)
    path = values()["vectorStore"]["lancedb"]["path"]
    assert config["APP_VECTOR_STORE"] == "lancedb"
    assert config["APP_LANCEDB_PATH"] == path
    assert "APP_MILVUS_URI" not in config
    pod = deployment["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = named(docs, "PersistentVolumeClaim", "-lancedb")
    assert volumes[mounts[path]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert milvus_objects(docs) == []
    existing = render(VALUE_SETS["lancedb-existing-claim"])
    pod = named(existing, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts[path]]["persistentVolumeClaim"]["claimName"] == "documents"
    assert store_claims(existing) == []


def test_the_image_keeps_lancedb_where_the_chart_mounts_its_claim() -> None:
    path = values()["vectorStore"]["lancedb"]["path"]
    for dockerfile in DOCKERFILES:
        assert f"APP_LANCEDB_PATH={path}" in " ".join(arguments(dockerfile, "ENV"))
        volumes = " ".join(arguments(dockerfile, "VOLUME"))
        assert any(path.startswith(v.strip('[]" ')) for v in volumes.split())


def test_milvus_in_the_chart_serves_the_gateway_which_may_scale() -> None:
    docs = render(VALUE_SETS["milvus"])
    service = named_exactly(docs, "Service", f"{RELEASE}-milvus")
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports == {"grpc": 19530, "metrics": 9091}
    config = config_of(docs)
    assert config["APP_VECTOR_STORE"] == "milvus"
    assert config["APP_MILVUS_URI"] == f"http://{service['metadata']['name']}:{ports['grpc']}"
    assert "APP_LANCEDB_PATH" not in config
    assert store_claims(docs) == [f"{RELEASE}-milvus-data"]  # Milvus's; none for LanceDB
    gateway = named(docs, "Deployment")
    assert "replicas" not in gateway["spec"]  # the HPA owns the count
    assert gateway["spec"]["strategy"]["type"] == "RollingUpdate"
    assert named(docs, "HorizontalPodAutoscaler")["spec"]["maxReplicas"] > 1
    milvus = named_exactly(docs, "Deployment", f"{RELEASE}-milvus")
    assert milvus["spec"]["replicas"] == 1
    assert milvus["spec"]["strategy"] == {"type": "Recreate"}
    pod = milvus["spec"]["template"]["spec"]
    container = pod["containers"][0]
    repository, tag = container["image"].rsplit(":", 1)
    assert repository == "milvusdb/milvus"
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag)  # a release, never "latest"
    assert container["args"] == ["milvus", "run", "standalone"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["ETCD_USE_EMBED"] == "true"
    assert env["COMMON_STORAGETYPE"] == "local"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert env["ETCD_DATA_DIR"].startswith("/var/lib/milvus/")
    data = volumes[mounts["/var/lib/milvus"]]["persistentVolumeClaim"]["claimName"]
    assert data == f"{RELEASE}-milvus-data"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 19530, "metrics": 9091}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    policy = named_exactly(docs, "NetworkPolicy", f"{RELEASE}-milvus")
    grpc = next(rule for rule in policy["spec"]["ingress"] if rule["ports"][0]["port"] == "grpc")
    allowed = grpc["from"][0]["podSelector"]["matchLabels"]
    assert allowed.items() <= gateway["spec"]["template"]["metadata"]["labels"].items()
    assert milvus_objects(docs) == [
        f"Deployment/{RELEASE}-milvus",
        f"NetworkPolicy/{RELEASE}-milvus",
        f"PersistentVolumeClaim/{RELEASE}-milvus-data",
        f"Service/{RELEASE}-milvus",
    ]


def test_an_external_milvus_gets_its_uri_and_a_token_from_a_secret() -> None:
    docs = render(VALUE_SETS["milvus-external"])
    config = config_of(docs)
    assert config["APP_MILVUS_URI"] == "http://milvus.example:19530"
    assert "APP_MILVUS_TOKEN" not in config
    env = named(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    token = next(e for e in env if e["name"] == "APP_MILVUS_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "milvus-token", "key": "token"}
    assert milvus_objects(docs) == []
    assert store_claims(docs) == []


def test_the_chart_declares_its_vendored_milvus_dependency() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (dependency,) = chart["dependencies"]
    assert dependency["condition"] == "milvus.enabled"
    vendored = yaml.safe_load((CHART / "charts" / "milvus" / "Chart.yaml").read_text())
    assert (vendored["name"], vendored["version"]) == (dependency["name"], dependency["version"])


def store_claims(docs: list[dict[str, Any]]) -> list[str]:
    """The claims of the vector store: all but vLLM's model cache (with vllm.enabled)."""
    return [claim for claim in claims(docs) if not claim.endswith("-vllm-cache")]


def named_exactly(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in by_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"no single {kind} {name}"
    return found[0]


def test_the_helm_test_hook_calls_readyz_through_the_service() -> None:
    docs = render({})
    service = by_kind(docs, "Service")[0]
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
