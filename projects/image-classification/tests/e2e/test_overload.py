"""Load behaviour through real HTTP: batching under concurrency, 503 past the queue bound or
the memory budget, 504."""

from __future__ import annotations

import asyncio
import collections
import gc
import time
from collections.abc import Callable

import httpx
from PIL import Image

from image_classification.admission import PeakRSS, rss_bytes
from image_classification.app import create_app
from image_classification.settings import Settings
from tests.images import encode
from tests.live_server import serve
from tests.metrics import metric_samples, metric_value


def batch_histogram(metrics_text: str) -> dict[float, float]:
    """Cumulative count of model calls by batch size bucket (le)."""
    buckets = metric_samples(metrics_text, "inference_batch_size_bucket")
    return {float(labels["le"]): value for labels, value in buckets}


async def _fire(
    url: str, requests: int, files: list, headers: dict[str, str], rounds: int = 1
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=requests, max_keepalive_connections=requests)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, headers=headers) as http:

        async def one_client() -> list[httpx.Response]:
            return [await http.post("/v1/classify", files=files) for _ in range(rounds)]

        results = await asyncio.gather(*(one_client() for _ in range(requests)))
    return [response for responses in results for response in responses]


def test_concurrent_clients_are_served_in_batches_larger_than_one(
    make_settings: Callable[..., Settings], samples: dict[str, bytes], auth_headers: dict[str, str]
) -> None:
    settings = make_settings(max_batch_size=16, max_wait_ms=5)
    files = [("files", ("6.png", samples["6"], "image/png"))]
    with serve(create_app(settings)) as url:
        responses = asyncio.run(_fire(url, 24, files, auth_headers, rounds=4))
        metrics = httpx.get(f"{url}/metrics").text
    assert all(r.status_code == 200 for r in responses)
    assert all(r.json()["predictions"][0]["labels"][0]["label"] == "6" for r in responses)
    histogram = batch_histogram(metrics)
    batches = histogram[float("inf")]
    single = histogram[1.0]
    # 96 single-image requests; merged batches mean fewer model calls than requests.
    assert batches - single >= 1, histogram
    assert batches < len(responses), histogram


def test_a_burst_past_the_queue_bound_gets_503_and_the_rest_succeed(
    make_settings: Callable[..., Settings], samples: dict[str, bytes], auth_headers: dict[str, str]
) -> None:
    settings = make_settings(max_queue_size=4, max_batch_size=1, max_wait_ms=0)
    files = [("files", (f"{d}.png", samples[d], "image/png")) for d in "0123"]
    with serve(create_app(settings)) as url:
        responses = asyncio.run(_fire(url, 48, files, auth_headers))
        after = httpx.post(f"{url}/v1/classify", files=files, headers=auth_headers)
        metrics = httpx.get(f"{url}/metrics").text
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503}, statuses
    rejected = [r for r in responses if r.status_code == 503]
    accepted = [r for r in responses if r.status_code == 200]
    assert rejected, "the burst never filled the queue"
    assert accepted, "no request got through"
    for r in rejected:
        assert r.json()["error"]["code"] == "overloaded"
        assert int(r.headers["retry-after"]) >= 1
    for r in accepted:
        labels = [p["labels"][0]["label"] for p in r.json()["predictions"]]
        assert labels == list("0123")
    assert after.status_code == 200
    # A request refused on arrival counts as one item, one refused once read as its four.
    refused_items = metric_value(metrics, "inference_rejected_total", reason="queue_full")
    assert len(rejected) <= refused_items <= 4 * len(rejected)


def test_past_the_request_timeout_the_answer_is_504(
    make_settings: Callable[..., Settings], samples: dict[str, bytes], auth_headers: dict[str, str]
) -> None:
    settings = make_settings(request_timeout_s=0.000001)
    with serve(create_app(settings)) as url:
        response = httpx.post(
            f"{url}/v1/classify", files={"files": ("9.png", samples["9"])}, headers=auth_headers
        )
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "inference_timeout"
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_a_burst_of_large_images_stays_inside_the_memory_budget_and_gives_it_back(
    make_settings: Callable[..., Settings], auth_headers: dict[str, str]
) -> None:
    """20 requests of 4 images of 9 Mpx at once: decoding each takes about 100 MB, so
    admitted all together they would hold 8 GB; the budget admits what fits and refuses the
    rest at once, and the memory a burst used is handed back when it ends."""
    budget = 400 * 1024 * 1024
    settings = make_settings(request_memory_bytes=budget, decode_workers=2, max_queue_size=256)
    large = encode(Image.linear_gradient("L").resize((3000, 3000)).convert("RGB"))
    files = [("files", (f"large-{i}.png", large, "image/png")) for i in range(4)]
    with serve(create_app(settings)) as url:
        httpx.post(f"{url}/v1/classify", files=files[:1], headers=auth_headers, timeout=30)
        gc.collect()
        with PeakRSS() as rss:
            responses = asyncio.run(_fire(url, 20, files, auth_headers))
        time.sleep(0.5)  # the trim runs as the last reservation is given back
        after = rss_bytes()
        metrics = httpx.get(f"{url}/metrics").text
    statuses = collections.Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] >= 1, statuses
    for r in responses:
        if r.status_code == 503:
            assert r.json()["error"]["code"] == "overloaded"
            assert int(r.headers["retry-after"]) >= 1
    assert rss.peak - rss.baseline <= budget, (rss.peak - rss.baseline) / 2**20
    assert after - rss.baseline <= budget / 4, (after - rss.baseline) / 2**20
    assert metric_value(metrics, "admission_memory_reserved_bytes") == 0
