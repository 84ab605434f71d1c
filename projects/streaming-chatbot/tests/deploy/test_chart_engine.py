"""The chart's LLM engine and Redis: the vLLM Deployment, its scaling and metrics, and Redis."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.chart import FULLNAME, VALUE_SETS, by_kind, named, render, scaling_signal, values
from tests.deploy.test_dockerfile import arguments
from tests.deploy.tools import DOCKERFILES, module


def claims(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(c["metadata"]["name"] for c in by_kind(docs, "PersistentVolumeClaim"))


def config_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    return named(docs, "ConfigMap")["data"]


def test_without_vllm_the_gateway_runs_its_embedded_engine() -> None:
    docs = render({"vllm": {"enabled": False}})
    assert config_of(docs)["APP_ENGINE"] == "embedded"
    assert "APP_VLLM_URL" not in config_of(docs)
    assert f"{FULLNAME}-vllm" not in {d["metadata"]["name"] for d in by_kind(docs, "Deployment")}
    assert f"{FULLNAME}-vllm-cache" not in claims(docs)


def test_the_gateway_streams_from_vllm_through_its_service() -> None:
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
    assert f"{FULLNAME}-vllm-cache" not in claims(docs)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HF_HOME"].startswith("/models/")
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 15 * 60
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert deployment["spec"]["replicas"] == chart["replicaCount"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert f"{FULLNAME}-vllm-cache" in claims(render(VALUE_SETS["vllm"]))


def test_vllm_scales_on_waiting_requests_with_keda_or_an_hpa() -> None:
    keda = render(VALUE_SETS["vllm-keda"])
    scaled = named(keda, "ScaledObject", "-vllm")
    assert scaled["spec"]["scaleTargetRef"]["name"] == f"{FULLNAME}-vllm"
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
    assert f"{FULLNAME}-redis" not in deployments  # no Redis of its own
    secret = render(VALUE_SETS["redis-secret"])
    assert "APP_REDIS_URL" not in config_of(secret)
    env = named(secret, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    url = next(e for e in env if e["name"] == "APP_REDIS_URL")
    secret_name = VALUE_SETS["redis-secret"]["redis"]["existingSecret"]
    assert url["valueFrom"]["secretKeyRef"] == {"name": secret_name, "key": "redis-url"}
    assert "APP_REDIS_URL" not in config_of(render({}))  # in memory by default


def test_the_gateway_serves_the_model_baked_into_its_image() -> None:
    container = named(render({}), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["APP_MODEL_PATH"] == values()["model"]["path"]
    for dockerfile in DOCKERFILES:
        assert f"APP_MODEL_PATH={values()['model']['path']}" in " ".join(
            arguments(dockerfile, "ENV")
        )


def test_the_schema_rejects_bad_engine_and_redis_values() -> None:
    helm = module("helm_python")
    for bad in (
        {"vllm": {"tensorParallelSize": 0}},
        {"vllm": {"maxModelLen": "2048"}},
        {"vllm": {"image": {"tag": ""}}},
        {"vllm": {"autoscaling": {"unknownKnob": True}}},
        {"redis": {"enabled": True, "url": "redis://cache:6379/0"}},  # two Redis at once
        {"redis": {"url": "cache:6379"}},  # not a redis:// URL
    ):
        with pytest.raises(helm.HelmValuesError):
            render(bad)


def test_the_gateway_scales_on_open_streams() -> None:
    pods, queries = scaling_signal()
    assert pods == [values()["autoscaling"]["activeStreams"]["metricName"]]
    assert pods == ["llm_active_streams"]  # the gauge the gateway exports
    assert any("sum(llm_active_streams{" in query for query in queries)
