"""Service lifecycle: probes during warm-up and after a failed load, metrics, logs."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from image_classification.app import create_app
from image_classification.settings import Settings
from tests.live_server import serve
from tests.metrics import metric_value


def test_probes_answer_503_while_warming_up_then_200(
    make_settings: Callable[..., Settings], samples: dict[str, bytes], auth_headers: dict[str, str]
) -> None:
    # Enough warm-up passes of the largest batch to keep the model busy for a while.
    settings = make_settings(warmup_iterations=400, max_batch_size=64)
    with serve(create_app(settings), wait_ready=False) as url:
        first = httpx.get(f"{url}/readyz")
        assert first.status_code == 503
        assert first.json()["error"]["code"] == "not_ready"
        assert first.headers["retry-after"] == "1"
        assert httpx.get(f"{url}/healthz").status_code == 200
        early = httpx.post(
            f"{url}/v1/classify", files={"files": ("a.png", samples["1"])}, headers=auth_headers
        )
        assert early.status_code == 503
        assert early.json()["error"]["code"] == "not_ready"
        assert "retry-after" in early.headers
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "warm-up never finished"
            time.sleep(0.1)
        metrics = httpx.get(f"{url}/metrics").text
        assert metric_value(metrics, "model_ready") == 1
        assert metric_value(metrics, "model_load_duration_seconds") > 0


def test_a_checkpoint_with_the_wrong_digest_fails_both_probes(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(model_sha256="0" * 64)
    with serve(create_app(settings), wait_ready=False) as url:
        deadline = time.monotonic() + 30
        while (ready := httpx.get(f"{url}/readyz")).json()["error"]["code"] == "not_ready":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "model_load_failed"
        assert "sha256" in ready.json()["error"]["message"]
        live = httpx.get(f"{url}/healthz")
        assert live.status_code == 503
        assert live.json()["error"]["code"] == "model_load_failed"


def test_a_matching_digest_is_accepted(
    make_settings: Callable[..., Settings], model_dir: Path
) -> None:
    digest = hashlib.sha256((model_dir / "model.pt").read_bytes()).hexdigest()
    with serve(create_app(make_settings(model_sha256=digest.upper()))) as url:
        assert httpx.get(f"{url}/readyz").status_code == 200


def test_request_ids_are_echoed_or_generated(client: httpx.Client) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(generated.headers["x-request-id"]) == 32


def test_metrics_count_requests_by_route_and_status(
    client: httpx.Client, samples: dict[str, bytes]
) -> None:
    client.post("/v1/classify", files={"files": ("2.png", samples["2"], "image/png")})
    client.post("/v1/classify", files={"files": ("x.png", b"", "image/png")})
    text = client.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/v1/classify",status="200"}' in text
    assert 'http_requests_total{method="POST",route="/v1/classify",status="422"}' in text
    assert (
        'http_request_duration_seconds_bucket{le="0.1",method="POST",route="/v1/classify"}' in text
    )
    assert 'predictions_total{label="2"}' in text
    for name in (
        "inference_duration_seconds_count",
        "inference_batch_size_count",
        "inference_queue_depth",
        "inference_queue_capacity",
        "model_load_duration_seconds",
    ):
        assert name in text


def test_unmatched_paths_share_one_metrics_label(client: httpx.Client) -> None:
    for i in range(3):
        client.get(f"/random/{i}")
    text = client.get("/metrics").text
    assert 'route="unmatched",status="404"' in text
    assert "/random/" not in text


def test_logs_are_json_lines_with_the_request_id(
    make_settings: Callable[..., Settings],
    samples: dict[str, bytes],
    auth_headers: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings()
    with serve(create_app(settings)) as url:
        httpx.post(
            f"{url}/v1/classify",
            files={"files": ("8.png", samples["8"], "image/png")},
            headers={"X-Request-ID": "trace-me-42", **auth_headers},
        )
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    access = [entry for entry in lines if entry.get("request_id") == "trace-me-42"]
    assert access, lines
    assert access[0]["route"] == "/v1/classify"
    assert access[0]["status"] == 200
    assert {"ts", "level", "logger", "message", "duration_ms"} <= set(access[0])
    assert any(entry["message"] == "model ready" for entry in lines)
