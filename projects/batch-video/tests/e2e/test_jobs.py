"""The jobs API against the real service: lifecycle, results, failures, cancelling, and
bad requests as clear 4xx."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from batch_video.app import create_app
from batch_video.settings import Settings
from tests.live_server import serve

from ..conftest import SCRIPT


def _wait(client: httpx.Client, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get(f"/v1/jobs/{job_id}").json()
        if body["status"] in ("done", "cancelled"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_a_job_runs_to_parquet_rows_and_segments(
    runtime: str,
    make_settings: Callable[..., Settings],
    auth_headers: dict[str, str],
    video_root: Path,
) -> None:
    with (
        serve(create_app(make_settings(runtime=runtime))) as url,
        httpx.Client(base_url=url, headers=auth_headers, timeout=60) as client,
    ):
        created = client.post(
            "/v1/jobs",
            json={
                "videos": ["long.mp4", "corrupt.mp4", "empty.mp4"],
                "sampling": {"interval_s": 0.5},
            },
        )
        assert created.status_code == 202, created.text
        job = created.json()
        assert created.headers["Location"] == f"/v1/jobs/{job['job_id']}"
        assert job["status"] in ("queued", "running")
        done = _wait(client, job["job_id"])
        assert done["status"] == "done"
        assert done["progress"] == 1.0
        assert (done["videos_done"], done["videos_failed"]) == (1, 2)
        statuses = {Path(v["video"]).name: (v["status"], v["reason"]) for v in done["videos"]}
        assert statuses["long.mp4"] == ("done", None)
        assert statuses["empty.mp4"] == ("failed", "the file is empty")
        assert statuses["corrupt.mp4"][0] == "failed"
        summary = client.get(f"/v1/jobs/{job['job_id']}/summary").json()
        results = client.get(done["results"])
        assert results.status_code == 200
        assert results.headers["content-type"] == "application/vnd.apache.parquet"
    long_summary, *failed = summary["videos"]
    assert [v["status"] for v in failed] == ["failed", "failed"]
    segments = [(s["label"], s["start_s"]) for s in long_summary["segments"]]
    assert segments == [(str(digit), 2.0 * n) for n, digit in enumerate(SCRIPT.digits * 6)]
    rows = pq.read_table(io.BytesIO(results.content)).to_pylist()
    long_video = SCRIPT.duration_s * 6
    assert len(rows) == long_video / 0.5
    assert {r["video"] for r in rows} == {str(video_root / "long.mp4")}
    assert [r["frame_index"] for r in rows] == sorted({r["frame_index"] for r in rows})
    for row in rows:
        assert row["labels"][0] == str(SCRIPT.digit_at(row["timestamp_s"] % SCRIPT.duration_s))
        assert len(row["labels"]) == len(row["scores"]) == 3
        assert row["scores"] == sorted(row["scores"], reverse=True)


def test_inline_analysis_answers_frames_and_segments(client: httpx.Client) -> None:
    answer = client.post(
        "/v1/analyse", json={"video": "demo/video-000.mp4", "sampling": {"interval_s": 2.0}}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [f["labels"][0] for f in body["frames"]] == ["0", "7", "4", "1", "8", "5", "2", "9"]
    assert [s["label"] for s in body["segments"]] == ["0", "7", "4", "1", "8", "5", "2", "9"]
    assert body["frames_decoded"] >= len(body["frames"])


def test_cancelling_one_job_leaves_the_other_running(
    make_settings: Callable[..., Settings], auth_headers: dict[str, str]
) -> None:
    settings = make_settings(workers=2, max_running_jobs=2, batch_size=1)
    with (
        serve(create_app(settings)) as url,
        httpx.Client(base_url=url, headers=auth_headers, timeout=60) as client,
    ):
        every_frame = {"interval_s": 0.04}
        first = client.post("/v1/jobs", json={"videos": ["long.mp4"] * 3, "sampling": every_frame})
        second = client.post("/v1/jobs", json={"videos": ["demo/video-000.mp4"]})
        cancelled = client.delete(f"/v1/jobs/{first.json()['job_id']}")
        assert cancelled.status_code == 202
        ended = _wait(client, first.json()["job_id"])
        other = _wait(client, second.json()["job_id"])
    assert ended["status"] == "cancelled"
    assert {v["status"] for v in ended["videos"]} <= {"cancelled", "done"}
    assert "cancelled" in {v["status"] for v in ended["videos"]}
    assert other["status"] == "done"
    assert other["videos"][0]["status"] == "done"


def test_cancelling_one_video_leaves_the_rest_of_its_job(client: httpx.Client) -> None:
    job = client.post(
        "/v1/jobs",
        json={"videos": ["demo/video-000.mp4", "long.mp4", "demo/video-001.mp4"]},
    ).json()
    assert client.delete(f"/v1/jobs/{job['job_id']}/videos/1").status_code == 202
    done = _wait(client, job["job_id"])
    assert done["status"] == "done"
    statuses = [v["status"] for v in done["videos"]]
    assert statuses[0] == statuses[2] == "done"
    assert statuses[1] in ("cancelled", "done")  # it may have finished before the cancel


def test_bad_requests_are_clear_4xx(client: httpx.Client, tmp_path: Path) -> None:
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"x")
    cases = [
        ("post", "/v1/jobs", {"videos": ["no-such.mp4"]}, 422, "video_not_found"),
        ("post", "/v1/jobs", {"videos": [str(outside)]}, 403, "path_not_allowed"),
        ("post", "/v1/jobs", {"videos": ["../../etc/passwd"]}, 403, "path_not_allowed"),
        ("post", "/v1/jobs", {"videos": []}, 422, "invalid_request"),
        (
            "post",
            "/v1/jobs",
            {"videos": ["long.mp4"], "sampling": {"mode": "x"}},
            422,
            "invalid_request",
        ),
        ("post", "/v1/analyse", {"video": "corrupt.mp4"}, 422, "video_unreadable"),
        ("post", "/v1/analyse", {"video": "long.mp4"}, 422, "video_too_long"),
        ("get", "/v1/jobs/0123456789abcdef0123456789abcdef", None, 404, "job_not_found"),
        ("get", "/v1/jobs/..%2F..%2Fetc", None, 404, "not_found"),  # no such route
        ("delete", "/v1/jobs/nope", None, 404, "job_not_found"),
    ]
    for method, url, body, status, code in cases:
        answer = client.request(method, url, json=body)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), (url, body)
    job = client.post("/v1/jobs", json={"videos": ["long.mp4"]}).json()
    missing = client.delete(f"/v1/jobs/{job['job_id']}/videos/7")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "job_not_found")
    early = client.get(f"/v1/jobs/{job['job_id']}/results")
    if early.status_code != 200:  # the job may already be through
        assert (early.status_code, early.json()["error"]["code"]) == (409, "job_not_finished")


def test_a_full_queue_refuses_new_jobs_at_once_with_retry_after(
    make_settings: Callable[..., Settings], auth_headers: dict[str, str]
) -> None:
    settings = make_settings(max_queued_jobs=2, max_running_jobs=1, max_inline_video_s=1)
    with (
        serve(create_app(settings)) as url,
        httpx.Client(base_url=url, headers=auth_headers, timeout=60) as client,
    ):
        slow = {"videos": ["long.mp4"], "sampling": {"interval_s": 0.04}}
        accepted = [client.post("/v1/jobs", json=slow) for _ in range(2)]
        started = time.perf_counter()
        refused = client.post("/v1/jobs", json=slow)
        seconds = time.perf_counter() - started
        for job in accepted:
            client.delete(f"/v1/jobs/{job.json()['job_id']}")
    assert [a.status_code for a in accepted] == [202, 202]
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "overloaded"
    assert int(refused.headers["Retry-After"]) >= 1
    assert seconds < 1.0
