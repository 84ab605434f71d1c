"""Fixtures: the demo ensemble, trained once per run, and the real service around it.

Set TEST_DEVICE=cuda to run the same suite on a GPU; without one it is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from ensemble.app import create_app
from ensemble.settings import Settings
from ensemble.stacking import Split
from ensemble.training import TrainingReport, train_demo_ensemble
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
def demo_ensemble(tmp_path_factory: pytest.TempPathFactory) -> TrainingReport:
    return train_demo_ensemble(tmp_path_factory.mktemp("demo-ensemble"))


@pytest.fixture(scope="session")
def members_path(demo_ensemble: TrainingReport) -> Path:
    return demo_ensemble.output_dir / "members.yaml"


@pytest.fixture(scope="session")
def test_split(demo_ensemble: TrainingReport) -> Split:
    """The 450 digits no member and no stacker saw."""
    return Split.load(demo_ensemble.output_dir / "test.npz")


@pytest.fixture(scope="session")
def make_settings(members_path: Path) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "members_path": members_path,
            "device": DEVICE,
            "warmup_iterations": 1,
            **SETTINGS,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="module")
def fuzz_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    """The service as the schema fuzz run meets it: the demo members, ready."""
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
def digit_inputs(test_split: Split) -> dict[str, list[float]]:
    """One held-out digit per label, as the 64 values a request sends."""
    found = {}
    for row, target in zip(test_split.inputs, test_split.targets, strict=True):
        found.setdefault(str(target), np.asarray(row).tolist())
    return found


@pytest.fixture(scope="session")
def workload(
    make_settings: Callable[..., Settings], digit_inputs: dict[str, list[float]]
) -> Workload:
    """Requests of four digits; each member has room for one in its queue and one in its
    model, and the required member's full queue refuses the rest."""
    sized = {
        "max_queue_size": 4,
        "max_batch_size": 4,
        "inference_workers": 1,
        "max_wait_ms": 2,
        "request_memory_bytes": 256 * 2**20,  # a budget the burst's RSS is checked against
    }
    return Workload(
        app=lambda **settings: create_app(make_settings(**{**sized, **settings})),
        capacity=2,
        request={
            "method": "POST",
            "url": "/v1/classify",
            "json": {"inputs": [digit_inputs[d] for d in "0123"]},
        },
    )


@pytest.fixture(scope="session")
def send_traffic(digit_inputs: dict[str, list[float]]) -> Callable[[httpx.Client], None]:
    """One round of typical traffic (the observability tests drive it): requests of one to
    three digits with each aggregation, and one of the wrong size (a 4xx)."""

    def send(client: httpx.Client) -> None:
        for count, aggregation in ((1, "weighted"), (2, "stacking"), (3, "vote"), (1, "mean")):
            inputs = [digit_inputs[str(d)] for d in range(count)]
            client.post("/v1/classify", json={"inputs": inputs, "aggregation": aggregation})
        client.post("/v1/classify", json={"inputs": [[1.0, 2.0]]})
        client.get("/v1/members")

    return send
