"""A generation reserves the memory its KV cache will hold before it starts: one that does
not fit the replica's budget is refused at once (503 overloaded), and what one held is
given back when it ends."""

from __future__ import annotations

import httpx

from tests.live_server import serve
from tests.metrics import metric_value
from tests.workload import Workload


def test_a_generation_past_the_memory_budget_is_refused_before_it_starts(
    workload: Workload, auth_headers: dict[str, str]
) -> None:
    # A megabyte holds the KV cache of a few tokens of the demo model, not a whole answer.
    with serve(workload.app(request_memory_bytes=1_000_000)) as url:
        workload.prepare(url)
        with httpx.Client(base_url=url, headers=auth_headers, timeout=120) as http:
            refused = http.request(**workload.request)
            metrics = http.get("/metrics").text
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "overloaded"
    assert "KV cache" in refused.json()["error"]["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert metric_value(metrics, "admission_memory_rejected_total") == 1
    assert metric_value(metrics, "admission_memory_reserved_bytes") == 0


def test_a_generation_inside_the_budget_is_served_and_gives_its_memory_back(
    workload: Workload, auth_headers: dict[str, str]
) -> None:
    with serve(workload.app(request_memory_bytes=500_000_000)) as url:
        workload.prepare(url)
        with httpx.Client(base_url=url, headers=auth_headers, timeout=120) as http:
            served = http.request(**workload.request)
            metrics = http.get("/metrics").text
    assert served.status_code == 200, served.text
    assert metric_value(metrics, "admission_memory_rejected_total") == 0
    assert metric_value(metrics, "admission_memory_reserved_bytes") == 0
