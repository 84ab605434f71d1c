"""The smoke requests (tests/smoke.json), which the CI workflow sends to the image it built,
pass against the service the tests run; and a smoke check that does not hold fails."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tests import smoke


@pytest.fixture
def files(request: pytest.FixtureRequest) -> Path | None:
    """Where the files the steps take from the container are (conftest's smoke_files)."""
    return request.getfixturevalue("smoke_files") if smoke.container_files() else None


def test_the_smoke_requests_pass(
    base_url: str, auth_headers: dict[str, str], files: Path | None
) -> None:
    answers = smoke.run(base_url, api_key=auth_headers.get("X-API-Key"), files=files)
    assert len(answers) == len(smoke.STEPS)


def test_an_expectation_the_answer_does_not_hold_fails(
    base_url: str,
    auth_headers: dict[str, str],
    files: Path | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps = copy.deepcopy(smoke.STEPS)
    steps[0]["expect"] = {"no.such.field": "anything"}
    monkeypatch.setattr(smoke, "STEPS", steps[:1])
    with pytest.raises(smoke.SmokeFailure, match=r"no\.such\.field"):
        smoke.run(base_url, api_key=auth_headers.get("X-API-Key"), files=files)
