"""Nothing lost, nothing twice: a job killed with SIGKILL mid-way and run again redoes only
its unfinished videos and ends byte-identical to a run straight through; a restarted
service takes up the jobs a killed one left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from batch_video.app import create_app
from batch_video.demo_videos import demo_scripts, write_folder
from batch_video.settings import Settings
from batch_video.training import TrainingReport
from tests.live_server import serve

# Long enough that the kill lands with videos unfinished: a worker takes about a tenth of
# a second a video here, and an orphaned worker notices its parent is gone within 0.1 s.
VIDEOS = 8
SECONDS = 24.0
INTERVAL_S = 0.04  # every frame


def _run(folder: Path, output: Path, model: Path, **popen: object) -> subprocess.Popen[str]:
    env = {**os.environ, "APP_MODEL_DIR": str(model), "APP_LOG_JSON": "false"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batch_video",
            "run",
            str(folder),
            "--output",
            str(output),
            "--interval",
            str(INTERVAL_S),
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,  # type: ignore[arg-type]
    )


def test_a_job_killed_mid_way_resumes_to_the_same_bytes(
    demo_model: TrainingReport, tmp_path: Path
) -> None:
    folder = tmp_path / "videos"
    write_folder(folder, demo_scripts(VIDEOS, SECONDS))
    model = demo_model.output_dir

    straight = _run(folder, tmp_path / "straight", model)
    out, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err
    assert f"{VIDEOS} videos ({VIDEOS} run now, 0 failed)" in out

    killed = _run(folder, tmp_path / "killed", model)
    manifests = tmp_path / "killed" / "videos"
    deadline = time.monotonic() + 120
    committed = "[0-9][0-9][0-9][0-9][0-9].json"  # manifests, not progress files
    while not list(manifests.glob(committed)) and time.monotonic() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    done_before = len(list(manifests.glob(committed)))
    print(f"{done_before} of {VIDEOS} videos committed when the kill landed")
    assert 1 <= done_before < VIDEOS, "the kill did not land mid-way"
    assert not (tmp_path / "killed" / "results.parquet").exists()

    resumed = _run(folder, tmp_path / "killed", model)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    redone = VIDEOS - done_before
    assert f"{VIDEOS} videos ({redone} run now, 0 failed)" in out, out
    first = (tmp_path / "straight" / "results.parquet").read_bytes()
    again = (tmp_path / "killed" / "results.parquet").read_bytes()
    assert first == again
    rows = pq.read_table(tmp_path / "killed" / "results.parquet").to_pylist()
    keys = [(r["video"], r["frame_index"]) for r in rows]
    frames = round(SECONDS / INTERVAL_S)
    assert len(keys) == len(set(keys)) == VIDEOS * frames  # no row twice, none lost
    for name in ("summary.json", *(f"videos/{n:05d}.json" for n in range(VIDEOS))):
        assert (tmp_path / "straight" / name).read_bytes().replace(b"straight", b"killed") == (
            tmp_path / "killed" / name
        ).read_bytes(), name


def test_a_restarted_service_finishes_the_jobs_a_killed_one_left(
    make_settings: Callable[..., Settings], auth_headers: dict[str, str], tmp_path: Path
) -> None:
    settings = make_settings(jobs_dir=tmp_path / "jobs")
    with (
        serve(create_app(settings)) as url,
        httpx.Client(base_url=url, headers=auth_headers, timeout=60) as client,
    ):
        job = client.post(
            "/v1/jobs", json={"videos": ["demo/video-000.mp4", "demo/video-001.mp4"]}
        ).json()
        client.delete(f"/v1/jobs/{job['job_id']}")  # so it ends unfinished-looking below
    folder = tmp_path / "jobs" / job["job_id"]
    for leftover in ("summary.json", "results.parquet", "cancel"):
        (folder / leftover).unlink(missing_ok=True)  # as if the process had died before its end
    for manifest in (folder / "videos").glob("*.json"):
        manifest.unlink()
    with (
        serve(create_app(settings)) as url,
        httpx.Client(base_url=url, headers=auth_headers, timeout=60) as client,
    ):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            body = client.get(f"/v1/jobs/{job['job_id']}").json()
            if body["status"] == "done":
                break
            time.sleep(0.1)
    assert body["status"] == "done"
    assert [v["status"] for v in body["videos"]] == ["done", "done"]
