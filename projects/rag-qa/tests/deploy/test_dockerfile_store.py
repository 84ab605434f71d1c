"""The images keep LanceDB in a volume the service user owns, and embed offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.deploy.test_dockerfile import IDS, arguments, runtime_stage
from tests.deploy.tools import DOCKERFILES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_lancedb_writes_to_a_volume_the_service_user_owns(dockerfile: Path) -> None:
    runtime = runtime_stage(dockerfile)
    env = " ".join(rest for key, rest in runtime if key == "ENV")
    path = re.search(r"APP_LANCEDB_PATH=(\S+)", env)
    assert path, "the image does not say where LanceDB lives"
    volumes = [v.strip('"') for rest in arguments(dockerfile, "VOLUME") for v in json.loads(rest)]
    assert any(path.group(1).startswith(volume + "/") for volume in volumes), volumes
    runs = " ".join(rest for key, rest in runtime if key == "RUN")
    user = next(rest for key, rest in reversed(runtime) if key == "USER")
    assert f"mkdir -p {path.group(1)}" in runs
    assert f"chown -R {user}" in runs
    assert "HF_HUB_OFFLINE=1" in env  # the embedder comes from its wheel, never a download
