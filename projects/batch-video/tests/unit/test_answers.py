"""What the answers the project was generated with decided: API keys, traces, the device
the model runs on by default, the Python it needs. Each test carries the answer's marker,
so `pytest -m <answer>` runs what an answer changes."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest

from batch_video.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.api_key_auth
def test_no_api_key_is_asked_for() -> None:
    assert "api_keys" not in Settings.model_fields
    assert importlib.util.find_spec("batch_video.auth") is None


@pytest.mark.tracing
def test_traces_are_exported_once_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from batch_video.tracing import configure_tracing

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert Settings.model_fields["tracing_enabled"].default is False
    on = Settings.model_construct(tracing_enabled=True, service_name="traced")
    provider = configure_tracing(on)
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "traced"
    assert configure_tracing(Settings.model_construct(tracing_enabled=False)) is None


@pytest.mark.default_device
def test_the_model_runs_on_the_cpu_by_default() -> None:
    field = Settings.model_fields.get("device")
    if field is None:
        pytest.skip("the service has no device setting")
    assert field.default == "cpu"


@pytest.mark.python_version
def test_the_project_and_its_images_use_python_3_11() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.11"
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        text = (ROOT / dockerfile).read_text()
        assert "ARG BASE_IMAGE=python:3.11." in text, dockerfile
