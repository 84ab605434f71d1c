"""The chart scales the service on its batching queue: an HPA per-pod metric, or KEDA."""

from __future__ import annotations

from tests.deploy.chart import scaling_signal, values


def test_the_hpa_and_keda_scale_on_the_queue_depth() -> None:
    pods, queries = scaling_signal()
    assert pods == [values()["autoscaling"]["queueDepth"]["metricName"]]
    assert pods == ["inference_queue_depth"]  # the gauge the service exports
    assert any("sum(inference_queue_depth{" in query for query in queries)
