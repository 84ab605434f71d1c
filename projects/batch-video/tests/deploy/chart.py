"""The Helm chart as the tests see it: its values, schema and value sets, rendered offline.

Each file ci/<name>-values.yaml in the chart is a value set the chart must render with (CI
lints it with each, too); "default" is values.yaml alone.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from tests.deploy.tools import CHART, PROJECT_NAME, module

KUBERNETES_VERSION = "1.30.0"
RELEASE, NAMESPACE = "demo", "ml"
# The name the chart gives the service's own objects (the release's, not a subchart's).
FULLNAME = f"{RELEASE}-{PROJECT_NAME}"
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    **{
        path.name.removesuffix("-values.yaml"): yaml.safe_load(path.read_text())
        for path in sorted((CHART / "ci").glob("*-values.yaml"))
    },
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
    """Every object the chart renders with `overrides` on top of values.yaml."""
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


def named(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    """The one object of `kind` named after the release and chart, plus `suffix`."""
    found = [doc for doc in by_kind(docs, kind) if doc["metadata"]["name"] == FULLNAME + suffix]
    assert len(found) == 1, f"no single {kind} {FULLNAME}{suffix}"
    return found[0]


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The pod spec of the service's own Deployment."""
    return named(docs, "Deployment")["spec"]["template"]["spec"]


def scaling_signal() -> tuple[list[str], list[str]]:
    """What the service's pods scale on besides CPU: the per-pod metrics of the HPA (the
    "hpa" value set) and the Prometheus queries of KEDA's triggers (the "keda" one)."""
    hpa = named(render(VALUE_SETS["hpa"]), "HorizontalPodAutoscaler")
    pods = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    triggers = named(render(VALUE_SETS["keda"]), "ScaledObject")["spec"]["triggers"]
    queries = [t["metadata"]["query"] for t in triggers if t["type"] == "prometheus"]
    return pods, queries


def field(doc: dict[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
