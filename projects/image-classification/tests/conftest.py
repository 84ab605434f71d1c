"""Fixtures: the demo model, trained once per run, and the real service around it.

Set TEST_DEVICE=cuda to run the same suite on a GPU; without one it is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import torch

from image_classification.app import create_app
from image_classification.settings import Settings
from image_classification.training import TrainingReport, train_demo_model
from tests.api_keys import HEADERS, SETTINGS
from tests.live_server import serve
from tests.workload import Workload

DEVICE = os.environ.get("TEST_DEVICE", "cpu")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if DEVICE == "cuda" and not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="TEST_DEVICE=cuda but no CUDA GPU is visible to torch")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device() -> str:
    return DEVICE


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> TrainingReport:
    return train_demo_model(tmp_path_factory.mktemp("demo-model"))


@pytest.fixture(scope="session")
def model_dir(demo_model: TrainingReport) -> Path:
    return demo_model.output_dir


@pytest.fixture(scope="session")
def make_settings(model_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "model_path": model_dir / "model.pt",
            "device": DEVICE,
            "warmup_iterations": 1,
            **SETTINGS,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="module")
def fuzz_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    """The service as the schema fuzz run meets it: the demo model, ready."""
    with serve(create_app(make_settings())) as url:
        yield url


@pytest.fixture(scope="module")
def base_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    """One service with default settings, shared by a test module."""
    with serve(create_app(make_settings())) as url:
        yield url


@pytest.fixture(scope="session")
def auth_headers() -> dict[str, str]:
    """Headers every /v1 call needs: the API key, when the service requires one."""
    return dict(HEADERS)


@pytest.fixture
def client(base_url: str, auth_headers: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30, headers=auth_headers) as http:
        yield http


@pytest.fixture(scope="session")
def samples(model_dir: Path) -> dict[str, bytes]:
    """One held-out PNG per digit, keyed by its true label."""
    return {str(d): (model_dir / "samples" / f"digit-{d}.png").read_bytes() for d in range(10)}


@pytest.fixture(scope="session")
def workload(make_settings: Callable[..., Settings], samples: dict[str, bytes]) -> Workload:
    """Requests of four digits, with room for one in the queue and one in the model."""
    sized = {
        "max_queue_size": 4,
        "max_batch_size": 4,
        "max_wait_ms": 2,
        "request_memory_bytes": 256 * 2**20,  # a budget the burst's RSS is checked against
    }
    files = [("files", (f"{d}.png", samples[d], "image/png")) for d in "0123"]
    return Workload(
        app=lambda **settings: create_app(make_settings(**{**sized, **settings})),
        capacity=2,
        request={"method": "POST", "url": "/v1/classify", "files": files},
    )


@pytest.fixture(scope="session")
def send_traffic(samples: dict[str, bytes]) -> Callable[[httpx.Client], None]:
    """One round of typical traffic (the observability tests drive it): requests of one
    to three digits, and one that is not an image (a 4xx)."""

    def send(client: httpx.Client) -> None:
        for count in (1, 2, 3):
            files = [("files", (f"{count}.png", samples[str(count)], "image/png"))] * count
            client.post("/v1/classify", files=files)
        client.post("/v1/classify", files={"files": ("bad.png", b"not an image", "image/png")})

    return send


@pytest.fixture(scope="session")
def smoke_files(model_dir: Path) -> Path:
    """The files tests/smoke.json takes from the image: the demo model's sample digits."""
    return model_dir / "samples"
