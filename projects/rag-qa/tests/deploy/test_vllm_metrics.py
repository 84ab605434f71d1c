"""vLLM's own metrics, which the dashboard and rules read: checked against the families a
real vLLM 0.32 server exported (vllm_metrics.txt beside this file)."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.test_observability import (
    all_queries,
    concrete,
    exported_names,
    metric_names,
    unknown_metrics,
)

VLLM_METRICS = Path(__file__).with_name("vllm_metrics.txt")


def vllm_names() -> set[str]:
    return exported_names(VLLM_METRICS.read_text())


def vllm_queries() -> list[tuple[str, str]]:
    return [(t, e) for t, e in all_queries() if "vllm:" in e]


def test_the_captured_vllm_families_hold_what_the_chart_and_dashboard_rely_on() -> None:
    names = vllm_names()
    for needed in (
        "vllm:num_requests_waiting",  # KEDA's trigger and the HPA's custom metric
        "vllm:num_requests_running",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:kv_cache_usage_perc",
        "vllm:generation_tokens_total",
    ):
        assert needed in names
    assert vllm_queries(), "no panel or rule reads vLLM's metrics"


def test_vllm_queries_read_only_what_a_real_vllm_server_exports() -> None:
    # No gateway needed: every vllm:* name against the families vLLM 0.32 exported.
    exported = vllm_names()
    for title, expr in vllm_queries():
        engine = {name for name in metric_names(concrete(expr)) if name.startswith("vllm:")}
        assert engine <= exported, f"{title}: {engine - exported}"


def test_a_vllm_metric_that_vllm_does_not_export_is_caught() -> None:
    made_up = [("Made up", "sum(vllm:num_requests_swapped)")]
    assert unknown_metrics(made_up, exported=set(), captured=set()) == {
        "Made up": {"vllm:num_requests_swapped"}
    }
