"""The chart scales the service on its batching queue: an HPA per-pod metric, or KEDA."""

from __future__ import annotations

from tests.deploy.chart import VALUE_SETS, named, render, values


def test_the_hpa_and_keda_scale_on_the_queue_depth() -> None:
    hpa = named(render(VALUE_SETS["hpa"]), "HorizontalPodAutoscaler")
    pods = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods == [values()["autoscaling"]["queueDepth"]["metricName"]]
    assert pods == ["inference_queue_depth"]  # the gauge the service exports
    scaled = named(render(VALUE_SETS["keda"]), "ScaledObject")
    triggers = scaled["spec"]["triggers"]
    queries = [t["metadata"]["query"] for t in triggers if t["type"] == "prometheus"]
    assert any("sum(inference_queue_depth{" in query for query in queries)
