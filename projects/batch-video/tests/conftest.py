"""Fixtures: the demo classifier, trained once per run; videos made here with digits drawn
on them; and the real service around both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from batch_video.app import create_app
from batch_video.demo_videos import Script, demo_scripts, write_corrupt, write_folder, write_video
from batch_video.settings import Settings
from batch_video.training import TrainingReport, train_demo_model
from tests.api_keys import HEADERS, SETTINGS
from tests.live_server import serve
from tests.workload import Workload

SCRIPT = Script((3, 1, 4, 1, 5, 9, 2, 6), 2.0)  # 16 s: a digit every two seconds


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> TrainingReport:
    return train_demo_model(tmp_path_factory.mktemp("model"), epochs=30)


@pytest.fixture(scope="session")
def video_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the service may read videos from: demo/ (as the image has it), a long
    one, a corrupt one and an empty one."""
    root = tmp_path_factory.mktemp("videos")
    demo = write_folder(root / "demo", demo_scripts(3, 16.0))
    write_video(root / "long.mp4", Script(SCRIPT.digits * 6, 2.0))
    write_corrupt(root / "corrupt.mp4", demo[0])
    (root / "empty.mp4").write_bytes(b"")
    return root


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    return tmp_path / "jobs"


@pytest.fixture(scope="session")
def make_settings(
    demo_model: TrainingReport, video_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "model_dir": demo_model.output_dir,
            "video_roots": str(video_root),
            "jobs_dir": tmp_path_factory.mktemp("jobs"),
            "workers": 1,
            "warmup_iterations": 1,
            **SETTINGS,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="module")
def base_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    """One service with default settings, shared by a test module."""
    with serve(create_app(make_settings())) as url:
        yield url


@pytest.fixture(scope="module")
def fuzz_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    """The service as the schema fuzz run meets it: the demo model and videos, ready."""
    with serve(create_app(make_settings())) as url:
        yield url


@pytest.fixture(scope="session")
def auth_headers() -> dict[str, str]:
    """Headers every /v1 call needs: the API key, when the service requires one."""
    return dict(HEADERS)


@pytest.fixture
def client(base_url: str, auth_headers: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60, headers=auth_headers) as http:
        yield http


@pytest.fixture(scope="session")
def workload(make_settings: Callable[..., Settings]) -> Workload:
    """One demo video analysed inline; the service analyses two at once and refuses more."""
    return Workload(
        app=lambda **settings: create_app(
            make_settings(**{"max_concurrent_analyses": 2, **settings})
        ),
        capacity=2,
        request={
            "method": "POST",
            "url": "/v1/analyse",
            "json": {"video": "demo/video-000.mp4", "sampling": {"interval_s": 0.25}},
        },
    )


@pytest.fixture(scope="session")
def send_traffic() -> Callable[[httpx.Client], None]:
    """One round of typical traffic (the observability tests drive it): a short job, an
    inline analysis, and a request for a video that does not exist (a 4xx)."""

    def send(client: httpx.Client) -> None:
        job = client.post("/v1/jobs", json={"videos": ["demo/video-001.mp4", "empty.mp4"]})
        client.post("/v1/analyse", json={"video": "demo/video-002.mp4"})
        client.post("/v1/analyse", json={"video": "no-such.mp4"})
        if job.status_code == 202:
            client.get(f"/v1/jobs/{job.json()['job_id']}")

    return send
