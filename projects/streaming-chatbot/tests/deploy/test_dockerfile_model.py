"""The images serve the model their build prepares."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.deploy.test_dockerfile import IDS, instructions, runtime_stage
from tests.deploy.tools import CHART, DOCKERFILES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_the_image_serves_the_model_its_build_prepares(dockerfile: Path) -> None:
    build = " ".join(rest for key, rest in instructions(dockerfile) if key == "RUN")
    prepared = re.search(r"-m streaming_chatbot prepare-model --output (\S+)", build)
    assert prepared, "the build does not prepare the model"
    copies = [rest for key, rest in runtime_stage(dockerfile) if key == "COPY"]
    source, target = next(c.split()[-2:] for c in copies if "--from=build" in c and "models" in c)
    served = target.rstrip("/") + prepared.group(1).removeprefix(source.rstrip("/"))
    env = " ".join(rest for key, rest in runtime_stage(dockerfile) if key == "ENV")
    assert f"APP_MODEL_PATH={served}" in env
    chart = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart["model"]["path"] == served
