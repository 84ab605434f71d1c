"""The chart's vector store: LanceDB on a claim (one replica) or Milvus, in the chart or not."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.chart import RELEASE, VALUE_SETS, by_kind, named, render, values
from tests.deploy.test_dockerfile import arguments
from tests.deploy.tools import CHART, DOCKERFILES, module


def claims(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(c["metadata"]["name"] for c in by_kind(docs, "PersistentVolumeClaim"))


def config_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    return named(docs, "ConfigMap")["data"]


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


def test_the_schema_rejects_bad_vector_store_values() -> None:
    helm = module("helm_python")
    for bad in (
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
    ):
        with pytest.raises(helm.HelmValuesError):
            render(bad)
