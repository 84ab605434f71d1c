"""The ensemble on a real Triton server: the exported repository, Triton's own ensemble
scheduling over it, and the service with every member on Triton."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http
import yaml

from ensemble.app import create_app
from ensemble.config import load_ensemble
from ensemble.members import load_model
from ensemble.settings import Settings
from ensemble.stacking import Split
from ensemble.triton_repository import ENSEMBLE_INPUT, ENSEMBLE_MODEL, export_triton
from tests.live_server import serve
from tests.members import copy_demo
from tests.triton_server import TritonEndpoint, read_config, running_triton

pytest.importorskip("pytriton", reason="PyTriton's Triton server runs on Linux only")


@pytest.fixture(scope="module")
def repository(members_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("model-repository")
    export_triton(members_path, target, Settings.model_construct())
    return target


@pytest.fixture(scope="module")
def triton(repository: Path) -> Iterator[TritonEndpoint]:
    with running_triton(repository) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def in_process(members_path: Path) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Each demo member's logits, computed here from its own file."""
    spec = load_ensemble(members_path)
    settings = Settings.model_construct(device="cpu")
    return {
        m.name: load_model(m, settings, spec.input.size, len(spec.labels)).predict
        for m in spec.members
    }


def test_the_repository_has_every_member_and_an_ensemble_over_them(
    repository: Path, members_path: Path
) -> None:
    spec = load_ensemble(members_path)
    ensemble = read_config(repository / ENSEMBLE_MODEL)
    assert ensemble.platform == "ensemble"
    assert [step.model_name for step in ensemble.ensemble_scheduling.step] == [
        m.name for m in spec.members
    ]
    assert [output.name for output in ensemble.output] == [m.name for m in spec.members]
    backends = {m.name: read_config(repository / m.name).backend for m in spec.members}
    assert backends == {"cnn": "pytorch", "mlp": "onnxruntime", "linear": "pytorch"}
    for member in spec.members:
        config = read_config(repository / member.name)
        assert list(config.input[0].dims) == [spec.input.size]
        assert list(config.output[0].dims) == [len(spec.labels)]
        assert config.max_batch_size >= 1
    exported = load_ensemble(repository / "members.yaml")
    assert [(m.name, m.runtime, m.model) for m in exported.members] == [
        (m.name, "triton", m.name) for m in spec.members
    ]
    assert [(m.weight, m.deadline_ms, m.required) for m in exported.members] == [
        (m.weight, m.deadline_ms, m.required) for m in spec.members
    ]
    # Pinned to what each model's config allows, whatever the service's default.
    assert [m.max_batch_size for m in exported.members] == [
        read_config(repository / m.name).max_batch_size for m in spec.members
    ]
    assert exported.stacker is not None
    assert exported.stacker.is_file()


def test_a_member_triton_cannot_load_from_a_file_is_refused_at_export(
    members_path: Path, tmp_path: Path
) -> None:
    path = copy_demo(
        members_path, tmp_path, linear={"runtime": "python", "factory": "tests.members:meeting"}
    )
    with pytest.raises(ValueError, match="linear are not torch or onnxruntime files"):
        export_triton(path, tmp_path / "repository", Settings.model_construct())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"linear": {"name": "ensemble"}}, "would overwrite the ensemble model"),
        ({"cnn": {"sha256": "0" * 64}}, "expected " + "0" * 64),
    ],
)
def test_a_members_file_that_would_export_a_broken_repository_is_refused(
    members_path: Path, tmp_path: Path, changes: dict[str, dict[str, object]], message: str
) -> None:
    path = copy_demo(members_path, tmp_path, **changes)
    with pytest.raises(ValueError, match=message):
        export_triton(path, tmp_path / "repository", Settings.model_construct())


def test_the_triton_ensemble_answers_every_members_logits(
    triton: TritonEndpoint,
    test_split: Split,
    in_process: dict[str, Callable[[np.ndarray], np.ndarray]],
) -> None:
    batch = test_split.inputs[:8]
    request = triton_http.InferInput(ENSEMBLE_INPUT, list(batch.shape), "FP32")
    request.set_data_from_numpy(batch)
    client = triton_http.InferenceServerClient(triton.url)
    try:
        result = client.infer(ENSEMBLE_MODEL, [request])
    finally:
        client.close()
    for name, predict in in_process.items():
        np.testing.assert_allclose(result.as_numpy(name), predict(batch), rtol=1e-4, atol=1e-4)


def test_the_service_on_triton_members_answers_as_it_does_in_process(
    triton: TritonEndpoint,
    repository: Path,
    make_settings: Callable[..., Settings],
    client: httpx.Client,
    test_split: Split,
    auth_headers: dict[str, str],
) -> None:
    inputs = test_split.inputs[:16].tolist()
    settings = make_settings(members_path=repository / "members.yaml", triton_url=triton.url)
    with (
        serve(create_app(settings)) as url,
        httpx.Client(base_url=url, headers=auth_headers, timeout=30) as http,
    ):
        members = http.get("/v1/members").json()["members"]
        on_triton = http.post("/v1/classify", json={"inputs": inputs}).json()
    in_process = client.post("/v1/classify", json={"inputs": inputs}).json()
    assert {m["runtime"] for m in members} == {"triton"}
    assert not any(m["inline"] for m in members), "a network call never runs on the loop"
    assert on_triton["degraded"] is False
    for ours, theirs in zip(on_triton["predictions"], in_process["predictions"], strict=True):
        assert ours["label"] == theirs["label"]
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-4)
        assert [m["label"] for m in ours["members"]] == [m["label"] for m in theirs["members"]]


def test_an_optional_member_triton_does_not_serve_is_left_out(
    triton: TritonEndpoint,
    repository: Path,
    make_settings: Callable[..., Settings],
    test_split: Split,
    tmp_path: Path,
    auth_headers: dict[str, str],
) -> None:
    document = yaml.safe_load((repository / "members.yaml").read_text())
    document["stacker"] = str(repository / document["stacker"])
    document["members"][1]["model"] = "absent"
    path = tmp_path / "members.yaml"
    path.write_text(yaml.safe_dump(document))
    settings = make_settings(members_path=path, triton_url=triton.url, triton_startup_timeout_s=1.0)
    with (
        serve(create_app(settings)) as url,
        httpx.Client(base_url=url, headers=auth_headers, timeout=30) as http,
    ):
        answer = http.post("/v1/classify", json={"inputs": test_split.inputs[:1].tolist()})
        members = {m["name"]: m for m in http.get("/v1/members").json()["members"]}
    assert answer.status_code == 200
    assert answer.json()["degraded"] is True
    left_out = [(o["member"], o["reason"]) for o in answer.json()["left_out"]]
    assert left_out == [("mlp", "not_loaded")]
    assert "'absent' is not ready on Triton" in members["mlp"]["failure"]
