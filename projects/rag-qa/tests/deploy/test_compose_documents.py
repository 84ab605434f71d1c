"""The Compose stack keeps the documents in a named volume; Milvus is a profile away."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.tools import PROJECT_NAME, ROOT

COMPOSE = ROOT / "deploy" / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_documents_live_in_a_named_volume_and_milvus_is_opt_in(compose: dict[str, Any]) -> None:
    service = compose["services"][PROJECT_NAME]
    environment = service["environment"]
    assert service["read_only"] is True
    volume, target = service["volumes"][0].split(":")[:2]
    assert volume in compose["volumes"]
    assert environment["APP_LANCEDB_PATH"].startswith(target + "/")
    assert environment["APP_VECTOR_STORE"] == "${APP_VECTOR_STORE:-lancedb}"
    milvus = compose["services"]["milvus"]
    assert milvus["profiles"] == ["milvus"]
    assert milvus["environment"]["ETCD_USE_EMBED"] == "true"
    assert milvus["environment"]["COMMON_STORAGETYPE"] == "local"
    assert milvus["volumes"][0].split(":")[0] in compose["volumes"]
    assert milvus["image"].split(":")[1] == chart_milvus_tag()


def chart_milvus_tag() -> str:
    subchart = ROOT / "deploy" / "helm" / PROJECT_NAME / "charts" / "milvus" / "values.yaml"
    return str(yaml.safe_load(subchart.read_text())["image"]["tag"])
