"""The ensemble end to end: real members over HTTP, their deadlines, failures and breakers."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ensemble.app import create_app
from ensemble.settings import Settings
from ensemble.stacking import Split
from ensemble.training import TrainingReport
from tests.live_server import serve
from tests.members import FlakyModel, MeetingModel, copy_demo, failing_torchscript
from tests.metrics import metric_value

Inputs = dict[str, list[float]]


@contextlib.contextmanager
def running(settings: Settings, headers: dict[str, str]) -> Iterator[httpx.Client]:
    """The service with these settings, and a client of it."""
    with (
        serve(create_app(settings)) as url,
        httpx.Client(base_url=url, headers=headers, timeout=30) as http,
    ):
        yield http


def stand_in(name: str, **fields: object) -> dict[str, object]:
    """A member change: the stand-in `tests.members:<name>` runs in the member's place."""
    python = {"runtime": "python", "factory": f"tests.members:{name}"}
    return {**python, "path": None, "sha256": None, **fields}


def classify(client: httpx.Client, inputs: list[list[float]], **body: object) -> httpx.Response:
    return client.post("/v1/classify", json={"inputs": inputs, **body})


def test_every_member_answers_and_the_ensemble_is_right_on_held_out_digits(
    client: httpx.Client, test_split: Split
) -> None:
    inputs = test_split.inputs[:64].tolist()
    answer = classify(client, inputs).json()
    assert answer["degraded"] is False
    assert answer["left_out"] == []
    assert answer["members"] == ["cnn", "mlp", "linear"]
    labels = [p["label"] for p in answer["predictions"]]
    correct = sum(label == str(t) for label, t in zip(labels, test_split.targets[:64], strict=True))
    assert correct >= 60, f"{correct}/64 right"
    for prediction in answer["predictions"]:
        assert [m["member"] for m in prediction["members"]] == ["cnn", "mlp", "linear"]
        agreeing = sum(m["label"] == prediction["label"] for m in prediction["members"])
        assert prediction["agreement"] == pytest.approx(agreeing / 3, abs=1e-3)


@pytest.mark.parametrize("aggregation", ["mean", "weighted", "vote", "stacking"])
def test_each_aggregation_answers_and_says_which_it_was(
    client: httpx.Client, digit_inputs: Inputs, aggregation: str
) -> None:
    inputs = [digit_inputs[d] for d in "0123456789"]
    answer = classify(client, inputs, aggregation=aggregation).json()
    assert answer["aggregation"] == aggregation
    assert answer["aggregation_note"] is None
    assert (
        sum(p["label"] == d for p, d in zip(answer["predictions"], "0123456789", strict=True)) >= 9
    )


def test_the_best_aggregation_beats_the_best_member(demo_ensemble: TrainingReport) -> None:
    accuracy = demo_ensemble.accuracy
    best = max(accuracy[a] for a in ("mean", "weighted", "vote", "stacking"))
    assert best > demo_ensemble.best_member, accuracy
    assert demo_ensemble.best_member >= 0.95


def test_an_optional_member_that_errors_is_left_out_and_named(
    make_settings: Callable[..., Settings],
    members_path: Path,
    tmp_path: Path,
    digit_inputs: Inputs,
    auth_headers: dict[str, str],
) -> None:
    broken = failing_torchscript(tmp_path / "broken.pt")
    path = copy_demo(members_path, tmp_path, linear={"path": str(broken), "sha256": None})
    with running(make_settings(members_path=path), auth_headers) as http:
        answer = classify(http, [digit_inputs["7"]]).json()
    assert answer["degraded"] is True
    assert answer["members"] == ["cnn", "mlp"]
    (left_out,) = answer["left_out"]
    assert left_out["member"] == "linear"
    assert left_out["reason"] in {"error", "circuit_open"}
    assert answer["predictions"][0]["label"] == "7"


def test_an_optional_member_that_stalls_is_left_out_at_its_deadline(
    make_settings: Callable[..., Settings],
    members_path: Path,
    tmp_path: Path,
    digit_inputs: Inputs,
    auth_headers: dict[str, str],
) -> None:
    path = copy_demo(members_path, tmp_path, linear=stand_in("stalling", deadline_ms=150))
    with running(make_settings(members_path=path), auth_headers) as http:
        started = time.perf_counter()
        answer = classify(http, [digit_inputs["4"]]).json()
        elapsed = time.perf_counter() - started
        metrics = http.get("/metrics").text
    assert answer["left_out"][0]["member"] == "linear"
    assert answer["left_out"][0]["reason"] == "deadline"
    assert answer["predictions"][0]["label"] == "4"
    # The stall lasts 5 s; the request ends at the member's 150 ms deadline.
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    assert metric_value(metrics, "ensemble_member_deadline_misses_total", member="linear") == 1


def test_a_required_member_that_stalls_fails_the_request_with_504_at_its_deadline(
    make_settings: Callable[..., Settings],
    members_path: Path,
    tmp_path: Path,
    digit_inputs: Inputs,
    auth_headers: dict[str, str],
) -> None:
    path = copy_demo(members_path, tmp_path, cnn=stand_in("stalling", deadline_ms=200))
    with running(make_settings(members_path=path), auth_headers) as http:
        started = time.perf_counter()
        response = classify(http, [digit_inputs["4"]])
        elapsed = time.perf_counter() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "member_timeout"
    assert "cnn" in response.json()["error"]["message"]
    assert elapsed < 1.0, f"{elapsed:.2f} s"


def test_a_required_member_that_errors_fails_the_request_with_503(
    make_settings: Callable[..., Settings],
    members_path: Path,
    tmp_path: Path,
    digit_inputs: Inputs,
    auth_headers: dict[str, str],
) -> None:
    broken = failing_torchscript(tmp_path / "broken.pt")
    path = copy_demo(members_path, tmp_path, cnn={"path": str(broken), "sha256": None})
    with running(make_settings(members_path=path), auth_headers) as http:
        response = classify(http, [digit_inputs["1"]])
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "member_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


def test_a_breaker_stops_calling_a_failing_member_and_probes_it_back(
    make_settings: Callable[..., Settings],
    members_path: Path,
    tmp_path: Path,
    digit_inputs: Inputs,
    auth_headers: dict[str, str],
) -> None:
    flaky = stand_in("flaky", breaker_failures=3, breaker_reset_s=0.5, weight=0.1)
    path = copy_demo(members_path, tmp_path, linear=flaky)
    FlakyModel.failing = False
    FlakyModel.instances.clear()
    with running(make_settings(members_path=path), auth_headers) as http:
        (model,) = FlakyModel.instances
        FlakyModel.failing = True
        reasons = [
            classify(http, [digit_inputs["2"]]).json()["left_out"][0]["reason"] for _ in range(6)
        ]
        calls_while_open = model.calls
        assert reasons == ["error"] * 3 + ["circuit_open"] * 3
        assert http.get("/v1/members").json()["members"][2]["breaker"] == "open"
        FlakyModel.failing = False
        time.sleep(0.6)
        probe = classify(http, [digit_inputs["2"]]).json()
        after = classify(http, [digit_inputs["2"]]).json()
        metrics = http.get("/metrics").text
    # Open, the member was not called at all; the probe after reset_s closed it again.
    assert calls_while_open == 2 + 3  # the warm-up's two, then the three that failed
    assert probe["degraded"] is False
    assert after["degraded"] is False
    assert metric_value(metrics, "ensemble_breaker_state", member="linear") == 0
    assert (
        metric_value(
            metrics, "ensemble_member_calls_total", member="linear", outcome="circuit_open"
        )
        == 3
    )


def test_a_hedged_call_answers_for_a_straggling_member(
    make_settings: Callable[..., Settings],
    members_path: Path,
    tmp_path: Path,
    digit_inputs: Inputs,
    auth_headers: dict[str, str],
) -> None:
    member = stand_in("straggling", weight=0.1, workers=2, deadline_ms=1500, hedge_after_ms=50)
    path = copy_demo(members_path, tmp_path, linear=member)
    with running(make_settings(members_path=path), auth_headers) as http:
        started = time.perf_counter()
        answer = classify(http, [digit_inputs["5"]]).json()
        elapsed = time.perf_counter() - started
        metrics = http.get("/metrics").text
    # The first call sleeps 2 s; the hedge, on the member's second worker, answers at once.
    assert answer["degraded"] is False
    assert answer["members"] == ["cnn", "mlp", "linear"]
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    assert (
        metric_value(metrics, "ensemble_member_hedges_total", member="linear", answered_by="hedge")
        == 1
    )


def test_stacking_without_a_member_it_needs_falls_back_to_the_weighted_mean(
    make_settings: Callable[..., Settings],
    members_path: Path,
    tmp_path: Path,
    digit_inputs: Inputs,
    auth_headers: dict[str, str],
) -> None:
    broken = failing_torchscript(tmp_path / "broken.pt")
    path = copy_demo(members_path, tmp_path, linear={"path": str(broken), "sha256": None})
    with running(make_settings(members_path=path), auth_headers) as http:
        answer = classify(http, [digit_inputs["8"]], aggregation="stacking").json()
    assert answer["aggregation"] == "weighted"
    assert "linear" in answer["aggregation_note"]
    assert answer["degraded"] is True


def test_members_run_at_the_same_time(
    make_settings: Callable[..., Settings],
    members_path: Path,
    tmp_path: Path,
    digit_inputs: Inputs,
    auth_headers: dict[str, str],
) -> None:
    # Each stand-in waits inside its call until all three are inside at once: one after
    # another, the first would wait alone and fail.
    changes = {name: stand_in("meeting") for name in ("cnn", "mlp", "linear")}
    path = copy_demo(members_path, tmp_path, **changes)
    MeetingModel.spans.clear()
    with running(make_settings(members_path=path), auth_headers) as http:
        answer = classify(http, [digit_inputs["0"]]).json()
    assert answer["degraded"] is False
    spans = MeetingModel.spans
    assert sorted(name for name, _, _ in spans) == ["cnn", "linear", "mlp"]
    latest_start = max(started for _, started, _ in spans)
    earliest_end = min(ended for _, _, ended in spans)
    assert latest_start < earliest_end, f"the calls did not overlap: {spans}"


def test_an_optional_member_that_does_not_load_leaves_the_service_ready_and_degraded(
    make_settings: Callable[..., Settings],
    members_path: Path,
    tmp_path: Path,
    digit_inputs: Inputs,
    auth_headers: dict[str, str],
) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an ONNX model")
    path = copy_demo(members_path, tmp_path, mlp={"path": str(corrupt), "sha256": None})
    with running(make_settings(members_path=path), auth_headers) as http:
        assert http.get("/readyz").status_code == 200
        answer = classify(http, [digit_inputs["6"]]).json()
        members = http.get("/v1/members").json()["members"]
    assert answer["left_out"][0]["member"] == "mlp"
    assert answer["left_out"][0]["reason"] == "not_loaded"
    assert members[1]["loaded"] is False
    assert "corrupt.onnx" in members[1]["failure"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mlp": {"runtime": "tensorflow"}}, "members[1] ('mlp').runtime"),
        ({"linear": {"path": "/nowhere/linear.pt"}}, "members[2] ('linear').path"),
        ({"mlp": {"name": "cnn"}}, "each member name must be unique; repeated: cnn"),
        ({"cnn": {"sha256": "0" * 64}}, "expected " + "0" * 64),
    ],
)
def test_a_members_file_that_cannot_be_served_fails_readiness_saying_why(
    make_settings: Callable[..., Settings],
    members_path: Path,
    tmp_path: Path,
    changes: dict[str, dict[str, object]],
    message: str,
) -> None:
    path = copy_demo(members_path, tmp_path, **changes)
    with serve(create_app(make_settings(members_path=path)), wait_ready=False) as url:
        deadline = time.monotonic() + 30
        while (response := httpx.get(f"{url}/readyz")).json()["error"]["code"] == "not_ready":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "model_load_failed"
    assert message in error["message"]


def test_members_describes_every_member(client: httpx.Client) -> None:
    info = client.get("/v1/members").json()
    assert info["labels"] == [str(d) for d in range(10)]
    assert info["input_size"] == 64
    assert info["stacking"] is True
    by_name = {m["name"]: m for m in info["members"]}
    assert by_name["cnn"]["required"] is True
    assert by_name["mlp"]["runtime"] == "onnxruntime"
    assert all(m["loaded"] and m["breaker"] == "closed" for m in info["members"])


@pytest.mark.parametrize("inline_below_ms", [0.0, 1e6])
def test_fast_members_run_on_the_event_loop_and_python_members_never_do(
    make_settings: Callable[..., Settings],
    members_path: Path,
    tmp_path: Path,
    digit_inputs: Inputs,
    auth_headers: dict[str, str],
    inline_below_ms: float,
) -> None:
    path = copy_demo(members_path, tmp_path, linear=stand_in("flaky", weight=0.1))
    FlakyModel.failing = False
    settings = make_settings(members_path=path, inline_below_ms=inline_below_ms)
    with running(settings, auth_headers) as http:
        inline = {m["name"]: m["inline"] for m in http.get("/v1/members").json()["members"]}
        answer = classify(http, [digit_inputs["3"]]).json()
    fast = inline_below_ms > 0
    assert inline == {"cnn": fast, "mlp": fast, "linear": False}
    assert answer["degraded"] is False
    assert answer["predictions"][0]["label"] == "3"


def test_metrics_cover_each_member_and_the_ensemble(
    client: httpx.Client, digit_inputs: Inputs
) -> None:
    classify(client, [digit_inputs["9"], digit_inputs["3"]])
    text = client.get("/metrics").text
    for member in ("cnn", "mlp", "linear"):
        assert metric_value(text, "ensemble_member_calls_total", member=member, outcome="ok") >= 1
        assert metric_value(text, "ensemble_member_duration_seconds_count", member=member) >= 1
        assert metric_value(text, "ensemble_member_batch_size_count", member=member) >= 1
        assert metric_value(text, "ensemble_breaker_state", member=member) == 0
    assert metric_value(text, "ensemble_agreement_ratio_count") >= 2
    assert (
        metric_value(text, "ensemble_aggregation_duration_seconds_count", aggregation="weighted")
        >= 1
    )
    # The batching pack's service-wide metrics sum the members'.
    assert metric_value(text, "inference_batch_size_count") >= 3
    assert metric_value(text, "inference_queue_capacity") == 3 * 256
